//! `tls = "acme"` against pebble on loopback: issuance through the edge's HTTP-01 answers, a
//! real handshake with pebble's issuing root, `renew` as a no-op when nothing is due, a forced
//! renewal under a client loop (new serial, no failed request), a second project with its own
//! domain and certificate on the same shared edge, and an unreachable directory refused with the
//! live site untouched.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::common::*;

/// `curl` to https://a.test:port/ with `--resolve` and `--cacert root`: (status, body).
fn fetch(port: u16, root: &std::path::Path) -> (String, String) {
    fetch_host("a.test", port, root)
}

/// [`fetch`] for another host name.
fn fetch_host(host: &str, port: u16, root: &std::path::Path) -> (String, String) {
    // HTTP/1.1: an HTTP/2 connection that an old edge worker holds when the certificate
    // reload happens can be closed with GOAWAY before its first request (curl: "Error in the
    // HTTP2 framing layer"; browsers retry it). README "HTTPS and domains" documents this gap;
    // this loop checks what the reload promises for HTTP/1.1 clients.
    let out = Command::new("curl")
        .args(["-sS", "--http1.1", "--max-time", "5", "--resolve"])
        .arg(format!("{host}:{port}:127.0.0.1"))
        .arg("--cacert")
        .arg(root)
        .args(["-w", "\n%{http_code}"])
        .arg(format!("https://{host}:{port}/"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "000"));
    if code == "000" {
        // No HTTP answer: say why (curl's exit status and message).
        return (
            code.to_string(),
            format!(
                "curl {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        );
    }
    (code.to_string(), body.to_string())
}

/// The serial number of the certificate the edge serves for a.test.
fn serial(port: u16) -> String {
    serial_of("a.test", port)
}

/// The serial number of the certificate the edge serves for `host` (SNI).
fn serial_of(host: &str, port: u16) -> String {
    let out = Command::new("sh")
        .args([
            "-c",
            &format!(
                "openssl s_client -connect 127.0.0.1:{port} -servername {host} </dev/null 2>/dev/null \
                 | openssl x509 -noout -serial"
            ),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn acme_issue_renew_and_unreachable_directory() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    if !tools_ready(&["pebble", "pebble-challtestsrv", "openssl", "curl"]) {
        return;
    }
    let p = Project::new("acme");
    let https = free_port();
    let pebble = Pebble::start(p.port);
    let settings = |directory: &str| {
        format!(
            "domains = [\"a.test\"]\ntls = \"acme\"\nacme_directory = \"{directory}\"\n\
             acme_root = \"{}\"\nacme_email = \"ops@a.test\"\nhttp_port = {}\nhttps_port = {https}\n",
            pebble.tls_root.display(),
            p.port
        )
    };
    p.write_toml(&settings(&pebble.dir_url));
    let out = p.run(&["up"]);
    assert!(
        out.status.success(),
        "{}\n{}\npebble:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        pebble.log()
    );
    let root = pebble.issuing_root();
    let index = std::fs::read_to_string(p.site("index.html")).unwrap();
    let (code, body) = fetch(https, &root);
    assert_eq!((code.as_str(), body.as_str()), ("200", index.as_str()));
    let first = serial(https);
    assert!(first.starts_with("serial="), "{first}");

    // A second project with its own domain on the same (shared) edge: its own account and
    // certificate through the same HTTP-01 listener; SNI picks each project's certificate.
    let q = Project::new("acmeb");
    q.write_toml(
        &settings(&pebble.dir_url)
            .replace("[\"a.test\"]", "[\"b.test\"]")
            .replace("ops@a.test", "ops@b.test"),
    );
    std::fs::write(q.site("index.html"), "<p>project B</p>\n").unwrap();
    let out = q.run(&["up"]);
    assert!(
        out.status.success(),
        "{}\npebble:\n{}",
        String::from_utf8_lossy(&out.stderr),
        pebble.log()
    );
    let (code, body) = fetch_host("b.test", https, &root);
    assert_eq!(
        (code.as_str(), body.as_str()),
        ("200", "<p>project B</p>\n")
    );
    let other = serial_of("b.test", https);
    assert!(
        other.starts_with("serial=") && other != first,
        "{other} / {first}"
    );
    assert_eq!(
        serial(https),
        first,
        "A's certificate changed with B's issuance"
    );
    let status = p.ok(&["status"]);
    assert!(
        status.contains(&format!("on edge    {}: b.test; live ", q.name)),
        "{status}"
    );
    q.ok(&["down"]);
    let (code, body) = fetch(https, &root);
    assert_eq!((code.as_str(), body.as_str()), ("200", index.as_str()));

    // Nothing due: renew is a no-op, an unchanged deploy too (same certificate).
    let out = p.ok(&["renew"]);
    assert!(out.contains("nothing to do"), "{out}");
    let out = p.ok(&["up"]);
    assert!(!out.contains("requesting a certificate"), "{out}");
    assert_eq!(serial(https), first);

    // Forced renewal under a client loop: a new serial, every request answered 200.
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (stop, root) = (stop.clone(), root.clone());
        std::thread::spawn(move || {
            let (mut ok, mut bad) = (0u32, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                match fetch(https, &root) {
                    (c, _) if c == "200" => ok += 1,
                    (c, b) => bad.push(format!("{c} {b}")),
                }
            }
            (ok, bad)
        })
    };
    let out = p.ok(&["renew", "--force"]);
    assert!(out.contains("renewed"), "{out}");
    stop.store(true, Ordering::Relaxed);
    let (ok, bad) = client.join().unwrap();
    assert!(ok > 0 && bad.is_empty(), "ok {ok}, failed: {bad:?}");
    let second = serial(https);
    assert_ne!(
        second, first,
        "the renewal did not install a new certificate"
    );

    // The directory unreachable: a clear error naming acme_directory; the site keeps serving.
    let closed = format!("https://127.0.0.1:{}/dir", free_port());
    p.write_toml(&settings(&closed));
    let e = p.fails(&["renew", "--force"]);
    assert!(e.contains("acme_directory") && e.contains(&closed), "{e}");
    let (code, body) = fetch(https, &root);
    assert_eq!((code.as_str(), body.as_str()), ("200", index.as_str()));
    assert_eq!(serial(https), second);

    p.write_toml(&settings(&pebble.dir_url));
    p.ok(&["down"]);
}

/// The host's address on the docker bridge (where a container on `bridge` reaches the host).
fn bridge_gateway() -> String {
    let gw = inspect("bridge", "{{range .IPAM.Config}}{{.Gateway}}{{end}}");
    if !gw.is_empty() {
        return gw;
    }
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "docker0"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .map_or_else(|| panic!("no address of docker0: {text}"), String::from)
}

/// `status` until it contains `want` (the renewer's file), within `secs`.
fn status_until(p: &Project, want: &str, secs: u64) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let status = p.ok(&["status"]);
        if status.contains(want) || std::time::Instant::now() > deadline {
            return status;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// The renewer container: after one `up`, sitebuild is not run again (only `status`), and the
/// renewer (a short interval and renewal forced through the environment of that `up`) renews
/// on its own: a new serial under a client loop with no failed request; it has no Docker
/// socket, runs as uid 101 with a read-only root, no capabilities, no-new-privileges, in the
/// edge's PID namespace; `status` shows its result. With pebble stopped, the old certificate
/// keeps serving and `status` shows the failure. `down` removes it with the edge.
#[test]
fn renewer_renews_without_sitebuild() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    if !tools_ready(&["pebble", "pebble-challtestsrv", "openssl", "curl", "ip"]) {
        return;
    }
    let p = Project::new("acmer");
    let https = free_port();
    let mut pebble = Pebble::start_on(p.port, &bridge_gateway());
    p.write_toml(&format!(
        "domains = [\"a.test\"]\ntls = \"acme\"\nacme_directory = \"{}\"\nacme_root = \"{}\"\n\
         acme_email = \"ops@a.test\"\nhttp_port = {}\nhttps_port = {https}\n",
        pebble.dir_url,
        pebble.tls_root.display(),
        p.port
    ));
    let out = p
        .cmd(&["up"])
        .env("SITEBUILD_RENEWER_INTERVAL", "10")
        .env("SITEBUILD_RENEWER_FORCE", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}\npebble:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        pebble.log()
    );
    let root = pebble.issuing_root();
    let index = std::fs::read_to_string(p.site("index.html")).unwrap();
    let (code, body) = fetch(https, &root);
    assert_eq!((code.as_str(), body.as_str()), ("200", index.as_str()));
    let first = serial(https);
    assert!(first.starts_with("serial="), "{first}");

    let edge = format!("sitebuild-edge-{}", p.port);
    let renewer = format!("{edge}-renewer");
    let edge_id = inspect(&edge, "{{.Id}}");
    assert_eq!(inspect(&renewer, "{{.Config.User}}"), "101:101");
    assert_eq!(inspect(&renewer, "{{.HostConfig.ReadonlyRootfs}}"), "true");
    assert_eq!(inspect(&renewer, "{{.HostConfig.CapDrop}}"), "[ALL]");
    assert!(inspect(&renewer, "{{.HostConfig.SecurityOpt}}").contains("no-new-privileges"));
    assert_eq!(
        inspect(&renewer, "{{.HostConfig.PidMode}}"),
        format!("container:{edge_id}")
    );
    let mounts = inspect(
        &renewer,
        "{{range .Mounts}}{{.Source}} {{.Destination}};{{end}}",
    );
    assert!(!mounts.contains("docker.sock"), "{mounts}");
    assert!(mounts.contains("/etc/sitebuild-edge"), "{mounts}");
    assert_eq!(inspect(&renewer, "{{.State.Running}}"), "true");

    // No sitebuild from here on but `status`: the renewer renews under a client loop.
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (stop, root) = (stop.clone(), root.clone());
        std::thread::spawn(move || {
            let (mut ok, mut bad) = (0u32, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                match fetch(https, &root) {
                    (c, _) if c == "200" => ok += 1,
                    (c, b) => bad.push(format!(
                        "{c} {} (served: {})",
                        b.lines().next().unwrap_or(""),
                        serial(https)
                    )),
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            (ok, bad)
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_mins(2);
    let mut renewed = first.clone();
    while renewed == first && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(500));
        renewed = serial(https);
    }
    // Let a second renewal happen under the loop too.
    std::thread::sleep(std::time::Duration::from_secs(12));
    stop.store(true, Ordering::Relaxed);
    let (ok, bad) = client.join().unwrap();
    let logs = String::from_utf8_lossy(&docker(&["logs", &renewer]).stderr).into_owned();
    assert_ne!(
        renewed, first,
        "no renewal by the renewer; its log:\n{logs}"
    );
    assert!(
        ok > 0 && bad.is_empty(),
        "ok {ok}, failed: {bad:?}\nrenewer:\n{logs}"
    );
    eprintln!("renewer: {ok} requests during the renewals, 0 failed");
    let status = status_until(&p, "renewer renewed", 30);
    assert!(
        status.contains(&format!("renewal    {}: renewer renewed", p.name)),
        "{status}"
    );
    assert!(
        status.contains(&format!("renewer    {renewer} (running)")),
        "{status}"
    );

    // The ACME server gone: the renewer fails, the served certificate stays.
    pebble.stop();
    let status = status_until(&p, "renewer failed", 60);
    assert!(
        status.contains("renewer failed") && status.contains("the served certificate is unchanged"),
        "{status}\n{logs}"
    );
    let kept = serial(https);
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert_eq!(serial(https), kept);
    let (code, body) = fetch(https, &root);
    assert_eq!((code.as_str(), body.as_str()), ("200", index.as_str()));

    p.ok(&["down"]);
    assert!(
        !docker(&["inspect", &renewer]).status.success(),
        "the renewer outlived its edge"
    );
}
