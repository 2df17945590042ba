//! Zero-downtime deploys under constant load, faults, SIGKILL at every stage, the lock, and
//! rollback, against the real engine.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

fn body_with(marker: &str) -> Vec<u8> {
    format!("<!doctype html><html><body><p>{marker}</p></body></html>\n").into_bytes()
}

fn write_index(p: &Project, body: &[u8]) {
    std::fs::write(p.site("index.html"), body).unwrap();
}

fn assert_clean_load(what: &str, report: &LoadReport) {
    eprintln!("{what}: {report:?}");
    assert!(
        report.ok > 50,
        "{what}: too few requests to mean anything: {report:?}"
    );
    assert_eq!(report.failures(), 0, "{what}: failed requests: {report:?}");
}

/// Converged: one edge, one site container, no lock, the expected body served.
fn assert_converged(p: &Project, body: &[u8]) {
    assert_eq!(p.role("edge").len(), 1, "one edge");
    assert_eq!(
        p.role("site").len(),
        1,
        "one site container: {:?}",
        p.role("site")
    );
    assert!(p.role("lock").is_empty(), "no lock left");
    assert_eq!(p.get("/").body, body);
}

#[test]
fn twenty_deploys_under_load_drop_nothing() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    let p = Project::new("swap");
    // drain must outlast the edge's keepalive_min_timeout (3 s): an old edge worker still
    // proxies a kept-alive connection's next request to the old container for up to that long.
    p.write_toml("drain = 4\n");
    let (a, b) = (body_with("VERSION-A"), body_with("VERSION-B"));
    write_index(&p, &a);
    p.ok(&["deploy"]);
    // New connections (one request each) and kept-alive ones (like `wrk -c16`) at once.
    let load = Load::start(p.addr(), "/", vec![a.clone(), b.clone()], 4);
    let keepalive = KeepAliveLoad::start(p.addr(), "/", vec![a.clone(), b.clone()], 16);
    let started = Instant::now();
    for i in 0..20 {
        let body = if i % 2 == 0 { &b } else { &a };
        write_index(&p, body);
        let out = p.ok(&["deploy"]);
        assert!(out.contains("live at"), "{out}");
        assert_eq!(&p.get("/").body, body, "deploy {i} is live");
    }
    let report = load.finish();
    let ka = keepalive.finish();
    eprintln!("20 deploys in {:.1} s", started.elapsed().as_secs_f64());
    eprintln!("20 deploys, keep-alive load: {ka:?}");
    assert_clean_load("20 deploys", &report);
    assert!(ka.ok > 1000, "keep-alive: too few requests: {ka:?}");
    assert_eq!(ka.failures(), 0, "keep-alive: failed requests: {ka:?}");
    assert_converged(&p, &a);
    // Unchanged: a no-op (and quick, without the lock).
    let out = p.ok(&["deploy"]);
    assert!(out.contains("nothing changed"), "{out}");
    // Images pruned to keep_images (3): A and B were reused, so at most 3 remain.
    assert!(p.images().len() <= 3, "{:?}", p.images());
}

#[test]
fn faults_before_the_switch_never_touch_the_live_version() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    let p = Project::new("fault");
    p.write_toml("drain = 1\n");
    let live = std::fs::read(p.site("index.html")).unwrap();
    p.ok(&["deploy"]);
    let load = Load::start(p.addr(), "/", vec![live.clone()], 3);
    let crashing = crashing_base_image();
    for (case, expect) in [
        ("nginx-t-fails", "nginx -t failed"),
        ("crash-loop", "stopped"),
        ("health-never-200", "no 200 from /healthz"),
    ] {
        apply_fixture(&p, case);
        // A content change too, so there is something new to deploy.
        std::fs::write(p.site("extra.html"), case).unwrap();
        let mut cmd = p.cmd(&["deploy"]);
        if case == "crash-loop" {
            cmd.env("SITEBUILD_BASE_IMAGE", &crashing);
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{case} must fail: {err}");
        assert!(err.contains(expect), "{case}: {err}");
        if case == "crash-loop" {
            assert!(
                err.contains("simulated crash"),
                "the container's output is shown: {err}"
            );
        }
        assert!(
            err.contains("never stopped") || case == "nginx-t-fails",
            "{case}: {err}"
        );
        assert_eq!(
            p.role("site").len(),
            1,
            "{case}: the failed container was removed"
        );
        assert!(p.role("lock").is_empty(), "{case}: lock released");
        reset(&p);
        p.write_toml("drain = 1\n");
    }
    let report = load.finish();
    assert_clean_load("faults", &report);
    assert_converged(&p, &live);
}

/// Start `sitebuild deploy` paused at `point`; returns once it says so.
fn start_paused(p: &Project, point: &str) -> Child {
    let mut child = p
        .cmd(&["deploy"])
        .env("SITEBUILD_PAUSE_AT", point)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_mins(2);
    loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("sitebuild exited before pausing at {point}"))
            .unwrap();
        if line.contains(&format!("paused at {point}")) {
            break;
        }
        assert!(Instant::now() < deadline, "never paused at {point}");
    }
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    child
}

#[test]
fn sigkill_at_any_stage_keeps_serving_and_the_next_run_converges() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    let p = Project::new("kill");
    p.write_toml("drain = 1\n");
    let v0 = body_with("KILL-V0");
    write_index(&p, &v0);
    p.ok(&["deploy"]);
    let load = Load::start(p.addr(), "/", vec![v0.clone()], 3);

    let mut current = v0.clone();
    for (i, point) in ["after-start", "after-candidate", "after-switch"]
        .iter()
        .enumerate()
    {
        let next = body_with(&format!("KILL-V{}", i + 1));
        load.allow(next.clone());
        write_index(&p, &next);
        let mut child = start_paused(&p, point);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Still serving: the old version, or the new one if the switch happened.
        let served = p.get("/").body;
        if *point == "after-switch" {
            assert_eq!(served, next, "{point}: the switch had happened");
        } else {
            assert_eq!(served, current, "{point}: the old version serves");
        }
        let status = p.ok(&["status"]);
        eprintln!("after SIGKILL at {point}:\n{status}");
        // The next run removes the leftovers and the stale lock, and converges.
        let out = p.ok(&["deploy"]);
        eprintln!("{out}");
        assert_converged(&p, &next);
        current = next;
    }

    // SIGKILL during the image build, once the site layer is written and the image is being
    // loaded (the build is not under the lock; nothing changes).
    let next = body_with("KILL-BUILD");
    load.allow(next.clone());
    write_index(&p, &next);
    let mut child = p
        .cmd(&["-v", "deploy"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().contains("site layer: ") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        p.get("/").body,
        current,
        "killed mid-build: the old version serves"
    );
    p.ok(&["deploy"]);
    assert_converged(&p, &next);

    let report = load.finish();
    assert_clean_load("SIGKILL at every stage", &report);
}

#[test]
fn concurrent_deploys_serialize_and_the_later_one_wins() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    let p = Project::new("lock");
    p.write_toml("drain = 0\nlock_timeout = 3\n");
    p.ok(&["deploy"]);

    // A deploy that holds the lock (paused) makes another one wait, then time out clearly.
    std::fs::write(p.site("one.html"), "1").unwrap();
    let mut holder = start_paused(&p, "after-start");
    std::fs::write(p.site("two.html"), "2").unwrap();
    let err = p.fails(&["deploy"]);
    assert!(err.contains("waiting for another deploy"), "{err}");
    assert!(err.contains("held the lock for more than 3 s"), "{err}");
    holder.kill().unwrap();
    holder.wait().unwrap();

    // Two deploys at once: both succeed, one after the other; the final state is the later one.
    p.write_toml("drain = 1\nlock_timeout = 120\n");
    let (a, b) = (body_with("RACE-A"), body_with("RACE-B"));
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    for (dir, body) in [(&dir_a, &a), (&dir_b, &b)] {
        copy_tree(&fixtures().join("valid"), &dir.path().join("site"));
        std::fs::write(dir.path().join("site/index.html"), body).unwrap();
        std::fs::copy(
            p.path().join("sitebuild.toml"),
            dir.path().join("sitebuild.toml"),
        )
        .unwrap();
    }
    let spawn = |dir: &tempfile::TempDir| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_sitebuild"));
        c.arg("--dir").arg(dir.path()).arg("deploy");
        c.env("SITEBUILD_BASE_IMAGE", base_image());
        c.stderr(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (ca, cb) = (spawn(&dir_a), spawn(&dir_b));
    let (oa, ob) = (
        ca.wait_with_output().unwrap(),
        cb.wait_with_output().unwrap(),
    );
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert!(oa.status.success(), "{}", text(&oa));
    assert!(ob.status.success(), "{}", text(&ob));
    let (ta, tb) = (text(&oa), text(&ob));
    let a_waited = ta.contains("waiting for another deploy");
    let b_waited = tb.contains("waiting for another deploy");
    assert!(a_waited ^ b_waited, "exactly one waited:\nA: {ta}\nB: {tb}");
    let winner = if a_waited { &a } else { &b };
    assert_converged(&p, winner);
}

#[test]
fn rollback_goes_back_through_the_gate() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    let p = Project::new("rb");
    p.write_toml("drain = 0\n");
    let (v1, v2) = (body_with("RB-1"), body_with("RB-2"));
    write_index(&p, &v1);
    p.ok(&["deploy"]);
    let fp1 = inspect(
        &format!("{}:latest", p.name),
        "{{index .Config.Labels \"dev.sitebuild.fingerprint\"}}",
    );
    write_index(&p, &v2);
    p.ok(&["deploy"]);
    assert_eq!(p.get("/").body, v2);

    let out = p.ok(&["rollback"]);
    assert!(
        out.contains(&format!("rolling back to {}", &fp1[..12])),
        "{out}"
    );
    assert_eq!(p.get("/").body, v1);
    assert_converged(&p, &v1);

    // Back to v2 by fingerprint prefix.
    let fp2 = inspect(
        &format!("{}:latest", p.name),
        "{{index .Config.Labels \"dev.sitebuild.fingerprint\"}}",
    );
    p.ok(&["rollback", &fp2[..8]]);
    assert_eq!(p.get("/").body, v2);
    let err = p.fails(&["rollback", "ffffffff"]);
    assert!(
        err.contains("no kept image has fingerprint ffffffff"),
        "{err}"
    );
}
