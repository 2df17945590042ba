//! Hostile clients against the edge (README "Under abuse"): slowloris and slow bodies from one
//! address while a normal client keeps its rate, and malformed requests that must get a 4xx
//! (never a 5xx, never a file outside the site, never a restart).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// Requests per second and failures of one normal client (a new connection per request) for
/// `secs`, paced to at most `pace` requests per second (0: as fast as it can).
fn measure(p: &Project, secs: u64, pace: u32) -> (f64, u64, Option<String>) {
    let (mut ok, mut failed, mut first) = (0u64, 0u64, None);
    let started = Instant::now();
    let mut sent = 0u32;
    while started.elapsed() < Duration::from_secs(secs) {
        if pace > 0 {
            let due = started + Duration::from_secs(1) * sent / pace;
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            sent += 1;
        }
        match get(p.addr(), "/", &[], Duration::from_secs(5)) {
            Ok(r) if r.status == 200 => ok += 1,
            Ok(r) => {
                failed += 1;
                first.get_or_insert(format!("status {}", r.status));
            }
            Err(e) => {
                failed += 1;
                first.get_or_insert(format!("{e:#}"));
            }
        }
    }
    (ok as f64 / started.elapsed().as_secs_f64(), failed, first)
}

/// slowhttptest with `mode` (`-H` slow headers, `-B` slow body) from one address for `secs`,
/// bounded by `timeout`; returns its child.
fn attack(p: &Project, mode: &str, secs: u64) -> std::process::Child {
    let url = format!("http://{}/", p.addr());
    let verb = if mode == "-B" { "POST" } else { "GET" };
    let (secs, bound) = (secs.to_string(), (secs + 10).to_string());
    Command::new("timeout")
        .args([
            &bound,
            "slowhttptest",
            "-c",
            "4000",
            mode,
            "-i",
            "10",
            "-r",
            "400",
            "-s",
            "8192",
            "-t",
            verb,
            "-u",
            &url,
            "-x",
            "24",
            "-p",
            "3",
            "-l",
            &secs,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

const PACE: u32 = 200;

#[test]
fn slow_clients_do_not_starve_a_normal_one() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    if !tools_ready(&["slowhttptest", "timeout"]) {
        return;
    }
    let p = Project::new("hostile");
    p.ok(&["deploy"]);
    // The normal client is paced (200 req/s, a visitor's browser rather than a benchmark): on
    // 2 shared cores a client running flat out measures the CPU slowhttptest and Docker's
    // userland proxy take, not whether the edge still serves. Its flat-out rate is printed too.
    for mode in ["-H", "-B"] {
        let (flat_out, _, _) = measure(&p, 5, 0);
        let (unloaded, failed, first) = measure(&p, 8, PACE);
        assert_eq!(failed, 0, "unloaded: {first:?}");
        let mut slow = attack(&p, mode, 30);
        // Let it open its 4000 connections (400/s) before measuring.
        std::thread::sleep(Duration::from_secs(5));
        let (loaded, failed, first) = measure(&p, 15, PACE);
        let (flat_out_loaded, _, _) = measure(&p, 5, 0);
        let _ = slow.wait();
        eprintln!(
            "slowhttptest {mode}: paced client {loaded:.0} req/s under attack, {unloaded:.0} \
             unloaded ({:.0} %), {failed} failed; flat out {flat_out_loaded:.0} vs {flat_out:.0} req/s",
            100.0 * loaded / unloaded
        );
        assert_eq!(failed, 0, "{mode}: the normal client failed: {first:?}");
        assert!(
            loaded >= 0.9 * unloaded,
            "{mode}: {loaded:.0} req/s under attack < 90 % of {unloaded:.0} unloaded"
        );
    }
    let edge = format!("{}-edge", p.name);
    assert_eq!(inspect(&edge, "{{.RestartCount}}"), "0");
    assert_eq!(inspect(&edge, "{{.State.Running}}"), "true");
}

/// Send `raw` on a new connection, read the answer (up to 5 s); the status and the whole text.
fn raw(p: &Project, raw: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&p.addr(), Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(raw);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[test]
fn malformed_requests_get_4xx_never_5xx() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    let p = Project::new("malformed");
    p.ok(&["deploy"]);
    let index = p.get("/").text();
    let long = "a".repeat(16 * 1024);
    let get = |target: &str| {
        format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    };
    let cases: Vec<(&str, String)> = vec![
        ("huge header (16 KB)", format!("GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: {long}\r\nConnection: close\r\n\r\n")),
        ("huge URI (16 KB)", get(&format!("/{long}"))),
        ("100 headers of 8 KB", format!("GET / HTTP/1.1\r\nHost: localhost\r\n{}Connection: close\r\n\r\n", format!("X-A: {}\r\n", "b".repeat(8000)).repeat(100))),
        ("bad method", "BREW / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".into()),
        ("garbage method", "G\x01T / HTTP/1.1\r\nHost: localhost\r\n\r\n".into()),
        ("TRACE", "TRACE / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".into()),
        ("`..` traversal", get("/../../../../etc/passwd")),
        ("`%2e%2e` traversal", get("/%2e%2e/%2e%2e/%2e%2e/etc/passwd")),
        ("`%2e%2e%2f` traversal", get("/assets/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd")),
        ("`%00` in the path", get("/index.html%00.txt")),
        ("overlong UTF-8 `%c0%ae`", get("/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd")),
        ("duplicate Host", "GET / HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\nConnection: close\r\n\r\n".into()),
        ("no Host (HTTP/1.1)", "GET / HTTP/1.1\r\nConnection: close\r\n\r\n".into()),
        ("bad HTTP version", "GET / HTTP/9.9\r\nHost: localhost\r\n\r\n".into()),
        ("body over 1 KB", format!("POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4096\r\nConnection: close\r\n\r\n{}", "x".repeat(4096))),
        ("bad Content-Length", "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\nConnection: close\r\n\r\n".into()),
        ("Content-Length + chunked", "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n".into()),
        ("absolute-form URI, other host", get("http://evil.example/")),
        ("absolute-form URI, file outside", get("http://evil.example/../../etc/passwd")),
        ("CONNECT to another host", "CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n".into()),
    ];
    let mut table = String::new();
    let mut bad = Vec::new();
    for (name, req) in &cases {
        let (status, text) = raw(&p, req.as_bytes());
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        table.push_str(&format!("| {name} | {status} |\n"));
        let leaked = text.contains("root:x:0:0") || text.contains("evil.example");
        let ok = match status {
            400..=499 => true,
            // nginx's fixed answer to an HTTP major version above 1: the protocol's own status
            // for "not this version", not a failure of the server.
            505 => *name == "bad HTTP version",
            // Only the absolute-form URI may be served, and only with the site's own page.
            200 => name.starts_with("absolute-form") && body == index,
            _ => false,
        };
        if !ok || leaked {
            bad.push(format!("{name}: {status}\n{text}"));
        }
    }
    eprintln!("| request | status |\n| --- | --- |\n{table}");
    assert!(
        bad.is_empty(),
        "unexpected answers:\n{}",
        bad.join("\n---\n")
    );
    assert_eq!(p.get("/").status, 200, "still serving");
    assert_eq!(
        inspect(&format!("{}-edge", p.name), "{{.RestartCount}}"),
        "0"
    );
}
