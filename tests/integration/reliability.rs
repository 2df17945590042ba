//! Reliability under abuse (issue 16): downloads in flight across a switch, SIGKILL of
//! `sitebuild deploy` at random moments, `docker kill` and a crash of the edge, an engine that
//! fails or stalls chosen requests. Real engine, loopback only, every run bounded in time.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sha2::Digest;

use crate::common::*;

fn body_with(marker: &str) -> Vec<u8> {
    format!("<!doctype html><html><body><p>{marker}</p></body></html>\n").into_bytes()
}

/// `len` bytes that do not compress (xorshift64 from `seed`).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// What a slow client got.
#[derive(Debug)]
struct Download {
    status: u16,
    content_length: usize,
    body: Vec<u8>,
    /// How the transfer ended: "complete", "EOF" (the server closed early) or the read error.
    end: String,
    /// When the last byte (or the error) came.
    ended: Instant,
}

/// A client that reads `path` slowly: the response head and the first 64 KB, then nothing
/// until `go` is set (the transfer is in flight at the edge, its buffers full), then `rate`
/// bytes per second until the body is complete or the connection ends.
fn slow_download(
    addr: SocketAddr,
    path: &str,
    go: Arc<AtomicBool>,
    rate: usize,
) -> std::thread::JoinHandle<Download> {
    let path = path.to_string();
    std::thread::spawn(move || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = Vec::new();
        let mut chunk = vec![0u8; 16 * 1024];
        let head_end = loop {
            if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = s.read(&mut chunk).unwrap();
            assert!(n > 0, "EOF before the response head");
            raw.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        let content_length = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().unwrap())
            })
            .unwrap_or_else(|| panic!("no Content-Length: {head}"));
        let mut body = raw.split_off(head_end);
        let mut end = String::new();
        let mut started: Option<Instant> = None;
        let mut paced = 0usize;
        while body.len() < content_length {
            let waiting = !go.load(Ordering::Relaxed);
            if waiting && body.len() >= 64 * 1024 {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            match s.read(&mut chunk) {
                Ok(0) => {
                    end = "EOF".into();
                    break;
                }
                Ok(n) => {
                    body.extend_from_slice(&chunk[..n]);
                    if !waiting {
                        paced += n;
                        // Keep to `rate` from the moment `go` was set.
                        let due = Duration::from_secs_f64(paced as f64 / rate as f64);
                        let since = started.get_or_insert_with(Instant::now).elapsed();
                        if due > since {
                            std::thread::sleep(due.saturating_sub(since));
                        }
                    }
                }
                Err(e) => {
                    end = format!("read error: {e} ({:?})", e.kind());
                    break;
                }
            }
        }
        if end.is_empty() {
            end = "complete".into();
        }
        Download {
            status,
            content_length,
            body,
            end,
            ended: Instant::now(),
        }
    })
}

fn live_short(p: &Project) -> String {
    p.get("/healthz")
        .header("x-sitebuild-live")
        .unwrap_or_default()
        .to_string()
}

#[test]
fn downloads_in_flight_across_a_switch() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    let p = Project::new("inflight");
    // drain = 0: the old site container is stopped right after the switch. The edge has the
    // whole response already (proxy buffering), so what bounds a download in flight is the
    // edge's worker_shutdown_timeout (10 s after the reload), not drain.
    p.write_toml("drain = 0\n");
    let small = noise(3 << 20, 1);
    let large = noise(24 << 20, 2);
    std::fs::write(p.site("small.bin"), &small).unwrap();
    std::fs::write(p.site("large.bin"), &large).unwrap();
    p.ok(&["deploy"]);
    let before = live_short(&p);

    let go = Arc::new(AtomicBool::new(false));
    let rate = 1 << 20; // 1 MB/s
    let dl_small = slow_download(p.addr(), "/small.bin", go.clone(), rate);
    let dl_large = slow_download(p.addr(), "/large.bin", go.clone(), rate);
    std::thread::sleep(Duration::from_millis(500));

    // New content: a deploy switches while both downloads are in flight.
    std::fs::write(p.site("index.html"), body_with("INFLIGHT-NEW")).unwrap();
    let deploy = std::thread::spawn({
        let mut cmd = p.cmd(&["deploy"]);
        move || cmd.output().unwrap()
    });
    let deadline = Instant::now() + Duration::from_mins(2);
    let switched = loop {
        let now = live_short(&p);
        if !now.is_empty() && now != before {
            break Instant::now();
        }
        assert!(Instant::now() < deadline, "no switch within 2 minutes");
        std::thread::sleep(Duration::from_millis(20));
    };
    go.store(true, Ordering::Relaxed);
    let out = deploy.join().unwrap();
    assert!(
        out.status.success(),
        "deploy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let old_site_gone = Instant::now();

    let small_got = dl_small.join().unwrap();
    let large_got = dl_large.join().unwrap();
    let after = |d: &Download| d.ended.duration_since(switched).as_secs_f64();
    eprintln!(
        "small: {} of {} bytes, {}, ended {:.1} s after the switch (old site container removed {:.1} s after it)",
        small_got.body.len(),
        small_got.content_length,
        small_got.end,
        after(&small_got),
        old_site_gone.duration_since(switched).as_secs_f64()
    );
    eprintln!(
        "large: {} of {} bytes, {}, ended {:.1} s after the switch",
        large_got.body.len(),
        large_got.content_length,
        large_got.end,
        after(&large_got)
    );
    // The small one outlived the old site container and still completed, byte for byte.
    assert_eq!(small_got.status, 200);
    assert_eq!(small_got.end, "complete");
    assert_eq!(sha256(&small_got.body), sha256(&small));
    assert!(
        after(&small_got) > 1.0,
        "it was still in flight after the switch"
    );
    // The large one needed ~24 s after the switch: the old edge worker closes it when
    // worker_shutdown_timeout (10 s after the reload) runs out, and the client sees a clean EOF
    // before Content-Length: a truncated body (what was sent is the right prefix). When
    // docker-proxy's and the kernel's socket buffers already hold the rest at the cut (~11 MB
    // here, more on a quiet machine: one full-suite run got all 24 MB), it completes instead.
    // Either way the client never gets wrong bytes, a reset or an error status.
    assert_eq!(large_got.status, 200);
    assert_eq!(large_got.content_length, large.len());
    assert_eq!(large_got.body[..], large[..large_got.body.len()]);
    match large_got.end.as_str() {
        "EOF" => assert!(large_got.body.len() < large.len()),
        "complete" => assert_eq!(sha256(&large_got.body), sha256(&large)),
        other => panic!("the large download ended with {other:?}: {large_got:?}"),
    }
    // The cut comes from worker_shutdown_timeout (10 s after the reload; the edge holds the
    // whole response in its temp file, so the old site container's removal ~1 s after the
    // switch does not cut it); the client sees the EOF once it has read what was already on its
    // way (docker-proxy's and the kernel's socket buffers). The switch mark is when a poll of
    // /healthz first sees the new version: on a loaded machine that lags the reload (8.2 s seen
    // with four builds running beside the suite), so the bound is loose, yet far above the
    // removal.
    let cut = after(&large_got);
    assert!(cut > 5.0, "EOF {cut:.1} s after the switch");
    // A new download after the switch is complete.
    let again = p.get("/large.bin");
    assert_eq!(sha256(&again.body), sha256(&large));
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
    assert_eq!(
        p.containers().len(),
        2,
        "nothing else of the project: {:?}",
        p.containers()
    );
    assert_eq!(p.get("/").body, body);
}

/// xorshift64: a seeded sequence for the kill moments (no rand crate needed).
struct Seeded(u64);

impl Seeded {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v:?}: expected a number"))
    })
}

/// `SITEBUILD_KILLS=N` (default 8; 50 for the figures in BENCHMARKS.md) deploys of new content
/// killed (SIGKILL) at a random moment (seed printed; `SITEBUILD_KILL_SEED` repeats a run), each
/// followed by a deploy that must converge, under constant load that must see no failure.
#[test]
fn sigkill_at_random_moments_keeps_serving_and_converges() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    let kills = env_u64("SITEBUILD_KILLS").unwrap_or(8);
    let seed = env_u64("SITEBUILD_KILL_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    eprintln!("random kills: SITEBUILD_KILLS={kills} SITEBUILD_KILL_SEED={seed}");
    let mut rng = Seeded(seed | 1);
    let p = Project::new("rkill");
    p.write_toml("drain = 1\n");
    let v0 = body_with("RKILL-0");
    std::fs::write(p.site("index.html"), &v0).unwrap();
    p.ok(&["deploy"]);
    // How long a deploy of new content takes here: kills land anywhere in it.
    let v1 = body_with("RKILL-1");
    std::fs::write(p.site("index.html"), &v1).unwrap();
    let t = Instant::now();
    p.ok(&["deploy"]);
    let span = (t.elapsed().as_millis() as u64).max(500);
    eprintln!("a deploy takes {span} ms: kills at 0..{span} ms");

    let load = Load::start(p.addr(), "/", vec![v0.clone(), v1.clone()], 3);
    let mut current = v1;
    let mut finished_first = 0;
    let mut phases = std::collections::BTreeMap::<&str, u32>::new();
    let started = Instant::now();
    for i in 0..kills {
        let next = body_with(&format!("RKILL-{}", i + 2));
        load.allow(next.clone());
        std::fs::write(p.site("index.html"), &next).unwrap();
        let at = rng.below(span);
        let mut child = p
            .cmd(&["deploy"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(at));
        let done = child.try_wait().unwrap().is_some();
        child.kill().unwrap(); // SIGKILL (no-op if it had finished)
        child.wait().unwrap();
        if done {
            finished_first += 1;
        }
        let served = p.get("/").body;
        assert!(
            served == current || served == next,
            "kill {i} at {at} ms: serves neither version: {}",
            String::from_utf8_lossy(&served)
        );
        let out = p.ok(&["deploy"]);
        assert_converged(&p, &next);
        // Where the kill landed, from what the next deploy had to clean up.
        let landed = if done {
            "after the deploy had finished"
        } else if out.contains("interrupted switch") {
            "between the edge's new config and its reload"
        } else if out.contains("interrupted build") {
            "after the build's commit"
        } else if out.contains("from an interrupted deploy") {
            "after the new container was created"
        } else if out.contains("stale deploy lock") {
            "holding the lock, before the new container"
        } else if out.contains("built ") {
            "before or during the build"
        } else {
            "elsewhere (nothing to clean up)"
        };
        *phases.entry(landed).or_insert(0) += 1;
        eprintln!("kill {i} at {at} ms: {landed}; converged");
        current = next;
    }
    let report = load.finish();
    eprintln!(
        "{kills} kills (seed {seed}, {finished_first} after the deploy had finished) in {:.1} s, where: {phases:?}, load: {report:?}",
        started.elapsed().as_secs_f64()
    );
    assert!(report.ok > 50, "too few requests: {report:?}");
    assert_eq!(report.failures(), 0, "failed requests: {report:?}");
}

fn serves(p: &Project) -> bool {
    get(p.addr(), "/", &[], Duration::from_millis(500)).is_ok_and(|r| r.status == 200)
}

/// Time from `since` until `GET /` answers 200 again after it stopped answering (polled every
/// 10 ms), within `timeout`.
fn back_after(p: &Project, since: Instant, timeout: Duration) -> Option<Duration> {
    while serves(p) {
        if since.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    while since.elapsed() < timeout {
        if serves(p) {
            return Some(since.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// The edge under load: a crash (SIGKILL of its nginx from outside Docker, like the OOM killer)
/// is restarted by its `unless-stopped` policy; `docker kill` is a manual stop to Docker (no
/// policy restarts it, measured on 20.10), so the edge stays down until the next sitebuild
/// command starts it. Both downtimes are printed; the next deploy converges.
#[test]
fn edge_crash_and_docker_kill_under_load() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    let p = Project::new("edgekill");
    p.write_toml("drain = 1\n");
    let v0 = body_with("EDGE-0");
    std::fs::write(p.site("index.html"), &v0).unwrap();
    p.ok(&["deploy"]);
    let edge = p.role("edge").pop().unwrap();
    assert_eq!(
        inspect(&edge, "{{.HostConfig.RestartPolicy.Name}}"),
        "unless-stopped"
    );

    // 1. A crash: SIGKILL of the edge's main process from the host (needs root, as in CI's
    //    docker group is not enough: skipped with a note otherwise).
    let load = Load::start(p.addr(), "/", vec![v0.clone()], 3);
    std::thread::sleep(Duration::from_secs(1));
    let pid = inspect(&edge, "{{.State.Pid}}");
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()
        .is_ok_and(|s| s.success());
    let t = Instant::now();
    if killed {
        let down = back_after(&p, t, Duration::from_secs(30))
            .expect("the edge came back by its restart policy within 30 s");
        std::thread::sleep(Duration::from_secs(1));
        let report = load.finish();
        eprintln!(
            "edge crash (kill -9 of its nginx): serving again after {} ms; load: {report:?}",
            down.as_millis()
        );
        assert_eq!(inspect(&edge, "{{.RestartCount}}"), "1");
        assert_eq!(p.get("/").body, v0, "the live version after the restart");
    } else {
        let _ = load.finish();
        eprintln!("SKIPPED the crash case: `kill -9` of the edge's process needs root");
    }

    // 2. `docker kill`: stays down until a sitebuild command; `deploy` starts it.
    let t = Instant::now();
    docker_lines(&["kill", &edge]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(inspect(&edge, "{{.State.Status}}"), "exited");
    assert!(get(p.addr(), "/", &[], Duration::from_secs(1)).is_err());
    let d = Instant::now();
    let out = p.ok(&["deploy"]);
    let took = d.elapsed();
    assert!(out.contains("starting the stopped edge"), "{out}");
    assert!(serves(&p), "serving after the deploy");
    let down = t.elapsed();
    eprintln!(
        "docker kill of the edge: down until `sitebuild deploy` (run 3 s later, took {} ms) started it: {} ms",
        took.as_millis(),
        down.as_millis()
    );
    assert_converged(&p, &v0);
    // And a deploy of new content goes through the restarted edge.
    let v1 = body_with("EDGE-1");
    std::fs::write(p.site("index.html"), &v1).unwrap();
    p.ok(&["deploy"]);
    assert_converged(&p, &v1);
}

/// What the faulty engine proxy does to the first request that matches.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Answer 500 (the engine's JSON error shape) without forwarding.
    Fail,
    /// Never forward it nor answer: the engine hangs on that request.
    Stall,
}

type Matcher = Box<dyn Fn(&str) -> bool + Send>;

/// A unix socket in front of the engine's (`/var/run/docker.sock`) that forwards bytes both
/// ways, except for the first request matching an armed rule, which it fails or stalls.
struct FaultyEngine {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    rule: Arc<std::sync::Mutex<Option<(Matcher, Fault)>>>,
    hits: Arc<std::sync::atomic::AtomicUsize>,
}

impl FaultyEngine {
    fn start() -> FaultyEngine {
        use std::os::unix::net::{UnixListener, UnixStream};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("engine.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let rule: Arc<std::sync::Mutex<Option<(Matcher, Fault)>>> = Arc::default();
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (r, h) = (rule.clone(), hits.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { return };
                let (rule, hits) = (r.clone(), h.clone());
                std::thread::spawn(move || {
                    let mut upstream = UnixStream::connect("/var/run/docker.sock").unwrap();
                    let (mut up_read, mut down_write) =
                        (upstream.try_clone().unwrap(), client.try_clone().unwrap());
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut up_read, &mut down_write);
                        let _ = down_write.shutdown(std::net::Shutdown::Both);
                    });
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match client.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let text = String::from_utf8_lossy(&buf[..n]).to_string();
                        let fault = {
                            let mut armed = rule.lock().unwrap();
                            match armed.as_ref() {
                                Some((matches, _)) if matches(&text) => {
                                    armed.take().map(|(_, f)| f)
                                }
                                _ => None,
                            }
                        };
                        match fault {
                            None => {
                                if upstream.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                            Some(Fault::Fail) => {
                                hits.fetch_add(1, Ordering::SeqCst);
                                let body = r#"{"message":"injected fault (test proxy)"}"#;
                                let _ = write!(
                                    client,
                                    "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                    body.len()
                                );
                                break;
                            }
                            Some(Fault::Stall) => {
                                hits.fetch_add(1, Ordering::SeqCst);
                                // Hold the connection; read and drop until the client gives up.
                                while matches!(client.read(&mut buf), Ok(n) if n > 0) {}
                                break;
                            }
                        }
                    }
                    let _ = upstream.shutdown(std::net::Shutdown::Both);
                    let _ = client.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        FaultyEngine {
            _dir: dir,
            path,
            rule,
            hits,
        }
    }

    fn url(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    fn arm(&self, matches: impl Fn(&str) -> bool + Send + 'static, fault: Fault) {
        *self.rule.lock().unwrap() = Some((Box::new(matches), fault));
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// The engine fails or stalls chosen requests mid-deploy (through [`FaultyEngine`]): each time
/// a clear error within the bound, the live site untouched (under load: no failed request),
/// the lock released, and the next deploy converges.
#[test]
fn engine_failing_or_stalling_mid_deploy() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    if std::env::var("DOCKER_HOST").is_ok_and(|h| h != "unix:///var/run/docker.sock")
        || !std::path::Path::new("/var/run/docker.sock").exists()
    {
        eprintln!("SKIPPED: the engine is not on /var/run/docker.sock");
        return;
    }
    let p = Project::new("engfault");
    p.write_toml("drain = 1\n");
    let v0 = body_with("ENGINE-0");
    std::fs::write(p.site("index.html"), &v0).unwrap();
    p.ok(&["deploy"]);
    let proxy = FaultyEngine::start();
    let load = Load::start(p.addr(), "/", vec![v0.clone()], 3);
    let v1 = body_with("ENGINE-1");
    load.allow(v1.clone());
    std::fs::write(p.site("index.html"), &v1).unwrap();
    let through_proxy = |what: &str| {
        let t = Instant::now();
        let out = p
            .cmd(&["deploy"])
            .env("DOCKER_HOST", proxy.url())
            .env("SITEBUILD_ENGINE_TIMEOUT", "5")
            .output()
            .unwrap();
        let took = t.elapsed();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        eprintln!(
            "{what}: {:.1} s, exit {:?}:\n{err}",
            took.as_secs_f64(),
            out.status.code()
        );
        (out.status.success(), err, took)
    };
    let candidate = format!("/containers/create?name={}-", p.name);
    let is_candidate_create = move |req: &str| {
        req.starts_with("POST ")
            && req.contains(&candidate)
            && !req.contains("-lock")
            && !req.contains("-check-")
            && !req.contains("-probe-")
            && !req.contains("-edge")
    };

    // 1. The engine answers 500 to the candidate's create.
    proxy.arm(is_candidate_create.clone(), Fault::Fail);
    let (ok, err, took) = through_proxy("create fails");
    assert!(!ok);
    assert_eq!(proxy.hits(), 1);
    assert!(err.contains("cannot create container"), "{err}");
    assert!(err.contains("injected fault"), "{err}");
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert_eq!(p.get("/").body, v0, "the live version serves");
    assert!(p.role("lock").is_empty(), "lock released");

    // 2. The engine hangs on the candidate's create: the request timeout ends it.
    proxy.arm(is_candidate_create, Fault::Stall);
    let (ok, err, took) = through_proxy("create stalls");
    assert!(!ok);
    assert_eq!(proxy.hits(), 2);
    assert!(
        err.contains(&format!(
            "the Docker engine at {} did not answer within 5 s: create container",
            proxy.url()
        )),
        "{err}"
    );
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert_eq!(p.get("/").body, v0, "the live version serves");
    assert!(p.role("lock").is_empty(), "lock released");

    // 3. The engine hangs on the switch (the edge's `nginx -s reload` exec): the edge's volume
    //    already names the new container, but the edge still routes to the old one.
    proxy.arm(
        |req: &str| req.contains("/exec") && req.contains("reload"),
        Fault::Stall,
    );
    let (ok, err, took) = through_proxy("switch stalls");
    assert!(!ok);
    assert_eq!(proxy.hits(), 3);
    assert!(err.contains("did not answer within 5 s: run"), "{err}");
    assert!(err.contains("-s reload"), "{err}");
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert_eq!(p.get("/").body, v0, "the old version still serves");
    assert!(p.role("lock").is_empty(), "lock released");

    // 4. The next deploy (through the proxy, no fault) finishes the switch before it removes
    //    anything, and converges.
    let (ok, err, _) = through_proxy("next deploy");
    assert!(ok, "{err}");
    let report = load.finish();
    eprintln!("engine trouble, load: {report:?}");
    assert_converged(&p, &v1);
    assert!(report.ok > 50, "too few requests: {report:?}");
    assert_eq!(report.failures(), 0, "failed requests: {report:?}");
}

/// The edge's cache lives on its `/tmp` tmpfs, and nginx writes a response it caches there
/// while it serves it (`use_temp_path=off`). A write that fails for room (`No space left on
/// device`) ends the response where it is: the client gets a truncated body. Found by the soak
/// (slow readers cut ~128 KiB short): with 64 MiB of `/tmp` and the shared edge's
/// `max_size=64m` the cache could never reach its bound (so nothing was evicted) before the
/// tmpfs ran out. Here two versions of a site with 32 MiB of large files each (64 MiB of
/// distinct cacheable bytes) are fetched in turn on the shared edge: every response complete.
#[test]
fn edge_cache_fills_never_run_out_of_room() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    let p = Project::new("cachefill");
    let host = "cachefill.sbtest.example";
    p.write_toml(&format!(
        "domains = [\"{host}\"]\ntls = \"off\"\nhttp_port = {}\nhttps_port = {}\n",
        p.port,
        free_port()
    ));
    let big = noise(30 << 20, 5);
    let mid = noise(2 << 20, 6);
    std::fs::write(p.site("big.bin"), &big).unwrap();
    std::fs::write(p.site("mid.bin"), &mid).unwrap();
    let edge = format!("sitebuild-edge-{}", p.port);
    let fetch = |path: &str| {
        get(p.addr(), path, &[("Host", host)], Duration::from_secs(20))
            .map_err(|e| format!("{e:#}"))
    };
    for version in ["CACHEFILL-A", "CACHEFILL-B", "CACHEFILL-A2"] {
        std::fs::write(p.site("index.html"), body_with(version)).unwrap();
        p.ok(&["deploy"]);
        // A new fingerprint: new cache keys, so each file is filled into the cache again.
        for (path, want) in [("/big.bin", &big), ("/mid.bin", &mid)] {
            for round in ["miss", "hit"] {
                let got = fetch(path);
                let df = docker(&[
                    "exec",
                    &edge,
                    "sh",
                    "-c",
                    "df -k /tmp 2>/dev/null || busybox df -k /tmp",
                ]);
                eprintln!(
                    "{version} {path} ({round}): {} ; edge /tmp: {}",
                    match &got {
                        Ok(r) => format!("{} {} bytes", r.status, r.body.len()),
                        Err(e) => e.clone(),
                    },
                    String::from_utf8_lossy(&df.stdout)
                        .lines()
                        .last()
                        .unwrap_or("")
                );
                let r = got.unwrap_or_else(|e| {
                    let logs = docker(&["logs", "--tail", "5", &edge]);
                    panic!(
                        "{version} GET {path} ({round}): {e}\nedge log: {}",
                        String::from_utf8_lossy(&logs.stderr)
                    )
                });
                assert_eq!(r.status, 200, "{version} {path}");
                assert_eq!(sha256(&r.body), sha256(want), "{version} {path} ({round})");
            }
        }
    }
    let logs = docker(&["logs", &edge]);
    let logs = String::from_utf8_lossy(&logs.stderr);
    assert!(
        !logs.contains("No space left"),
        "the edge ran out of room: {logs}"
    );
}
