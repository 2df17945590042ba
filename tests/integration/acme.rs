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
