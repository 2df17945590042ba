//! HTTPS on the edge with `tls = "files"`: a certificate made by openssl, real handshakes with
//! curl (`--resolve` + `--cacert`), the HTTP→HTTPS redirect, HSTS only when enabled, no TLS
//! below 1.2, and bad certificate input refused with the live site untouched.

use std::path::Path;
use std::process::Command;

use crate::common::*;

/// A self-signed certificate for `names` (the first is the subject) and its key, in `dir`.
pub(crate) fn make_cert(dir: &Path, stem: &str, names: &[&str]) -> (String, String) {
    let (crt, key) = (format!("{stem}.crt"), format!("{stem}.key"));
    let san = names
        .iter()
        .map(|n| format!("DNS:{n}"))
        .collect::<Vec<_>>()
        .join(",");
    let out = Command::new("openssl")
        .current_dir(dir)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args([
            "-nodes",
            "-days",
            "30",
            "-subj",
            &format!("/CN={}", names[0]),
        ])
        .args(["-addext", &format!("subjectAltName={san}")])
        .args(["-keyout", &key, "-out", &crt])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (crt, key)
}

/// `curl -s` with `--resolve host:port:127.0.0.1`; returns (exit ok, stdout).
pub(crate) fn curl(host: &str, port: u16, args: &[&str]) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5", "--resolve"])
        .arg(format!("{host}:{port}:127.0.0.1"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn tls_files_https_redirect_hsts_and_bad_input() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    if !tools_ready(&["openssl", "curl"]) {
        return;
    }
    let p = Project::new("tls");
    let https = free_port();
    let (a, www) = ("a.sbtest.example", "www.a.sbtest.example");
    let (crt, key) = make_cert(p.path(), "site", &[a, www]);
    let settings = |extra: &str| {
        format!(
            "domains = [\"{a}\", \"{www}\"]\ntls = \"files\"\ntls_cert = \"{crt}\"\n\
             tls_key = \"{key}\"\nhttp_port = {}\nhttps_port = {https}\n{extra}",
            p.port
        )
    };
    p.write_toml(&settings(""));
    let out = p.ok(&["up"]);
    assert!(out.contains(&format!("https://{a}:{https}/")), "{out}");

    let index = std::fs::read_to_string(p.site("index.html")).unwrap();
    let url = |host: &str| format!("https://{host}:{https}/");
    let cacert = p.path().join(&crt);
    let cacert = cacert.to_str().unwrap();
    for host in [a, www] {
        let (ok, body) = curl(host, https, &["--cacert", cacert, &url(host)]);
        assert!(ok, "HTTPS to {host} failed");
        assert_eq!(body, index, "{host}");
    }
    // HTTP/2 where curl offers it (ALPN), no HSTS by default.
    let (_, head) = curl(
        a,
        https,
        &["--cacert", cacert, "-D", "-", "-o", "/dev/null", &url(a)],
    );
    assert!(head.starts_with("HTTP/2 200"), "{head}");
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("strict-transport-security"),
        "{head}"
    );
    // Nothing below TLS 1.2.
    let (ok, _) = curl(
        a,
        https,
        &["--cacert", cacert, "--tlsv1.1", "--tls-max", "1.1", &url(a)],
    );
    assert!(!ok, "a TLS 1.1 handshake succeeded");
    // Plain HTTP: the domains are redirected (keeping the path), /healthz answers as is.
    let (_, head) = curl(
        a,
        p.port,
        &[
            "-D",
            "-",
            "-o",
            "/dev/null",
            &format!("http://{a}:{}/x?y=1", p.port),
        ],
    );
    assert!(head.starts_with("HTTP/1.1 301"), "{head}");
    assert!(
        head.contains(&format!("Location: https://{a}:{https}/x?y=1")),
        "{head}"
    );
    assert_eq!(p.get("/healthz").status, 200);
    // status: domains and the certificate.
    let status = p.ok(&["status"]);
    assert!(
        status.contains(&format!("domains    {a}, {www}")),
        "{status}"
    );
    assert!(
        status.contains("tls        files: issuer CN=a.sbtest.example"),
        "{status}"
    );

    // HSTS on: the same content, the edge config changes (a deploy that only reloads the edge).
    p.write_toml(&settings("hsts = 31536000"));
    p.ok(&["up"]);
    let (_, head) = curl(
        a,
        https,
        &["--cacert", cacert, "-D", "-", "-o", "/dev/null", &url(a)],
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("strict-transport-security: max-age=31536000"),
        "{head}"
    );

    // A new certificate is picked up without new content.
    let (crt2, key2) = make_cert(p.path(), "next", &[a, www]);
    p.write_toml(&settings("").replace(&crt, &crt2).replace(&key, &key2));
    p.ok(&["up"]);
    let next = p.path().join(&crt2);
    let (ok, _) = curl(a, https, &["--cacert", next.to_str().unwrap(), &url(a)]);
    assert!(ok, "the new certificate is served");
    let (ok, _) = curl(a, https, &["--cacert", cacert, &url(a)]);
    assert!(!ok, "the old certificate is gone");

    // Bad input: each a clear error, the live site untouched.
    let (_, other_key) = make_cert(p.path(), "other", &[a, www]);
    let (narrow, narrow_key) = make_cert(p.path(), "narrow", &[a]);
    let cases = [
        (
            settings("").replace(&format!("\"{key}\""), &format!("\"{other_key}\"")),
            "does not belong to the certificate",
        ),
        (
            settings("")
                .replace(&format!("\"{crt}\""), &format!("\"{narrow}\""))
                .replace(&format!("\"{key}\""), &format!("\"{narrow_key}\"")),
            "does not cover \"www.a.sbtest.example\"",
        ),
        (
            settings("").replace(&format!("\"{crt}\""), "\"missing.crt\""),
            "cannot read",
        ),
        (
            settings("").replace(&format!("\"{a}\","), "\"a.sbtest.example; return 200\","),
            "could inject nginx syntax",
        ),
        (
            settings("").replace(&format!("\"{a}\","), "\"*.sbtest.example\","),
            "wildcard",
        ),
    ];
    for (toml, want) in cases {
        p.write_toml(&toml);
        let e = p.fails(&["up"]);
        assert!(e.contains(want), "{want}: {e}");
        let (ok, body) = curl(a, https, &["--cacert", next.to_str().unwrap(), &url(a)]);
        assert!(ok && body == index, "live site changed after: {want}");
    }

    // The HTTPS port taken by another program: refused before anything changes.
    let q = Project::new("tls2");
    let holder = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let taken = holder.local_addr().unwrap().port();
    q.write_toml(&format!(
        "domains = [\"b.sbtest.example\"]\ntls = \"files\"\ntls_cert = \"{}\"\n\
         tls_key = \"{}\"\nhttp_port = {}\nhttps_port = {taken}\n",
        p.path().join("b.crt").display(),
        p.path().join("b.key").display(),
        q.port
    ));
    make_cert(p.path(), "b", &["b.sbtest.example"]);
    let e = q.fails(&["up"]);
    assert!(
        e.contains("already in use") && e.contains("https_port"),
        "{e}"
    );
    assert!(q.containers().is_empty(), "{:?}", q.containers());
    drop(holder);

    p.write_toml(&settings(""));
    p.ok(&["down"]);
}

/// testssl.sh (Debian's `testssl`) against the edge's HTTPS port: protocols, cipher categories,
/// server defaults and the known vulnerabilities. No finding about the server's TLS setup is
/// rated HIGH or CRITICAL, and nothing below TLS 1.2 is offered. Findings about the certificate
/// itself (`cert_*`: self-signed here, 30 days, no OCSP/CRL) concern the test's openssl
/// certificate, not sitebuild, and are listed but not judged.
#[test]
fn testssl_finds_nothing_high_or_critical() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    if !tools_ready(&["openssl", "testssl"]) {
        return;
    }
    let p = Project::new("testssl");
    let https = free_port();
    let host = "ts.sbtest.example";
    let (crt, key) = make_cert(p.path(), "site", &[host]);
    p.write_toml(&format!(
        "domains = [\"{host}\"]\ntls = \"files\"\ntls_cert = \"{crt}\"\ntls_key = \"{key}\"\n\
         http_port = {}\nhttps_port = {https}\n",
        p.port
    ));
    p.ok(&["deploy"]);
    let json = p.path().join("testssl.json");
    let out = Command::new("testssl")
        .args([
            "--quiet",
            "--color",
            "0",
            "--warnings",
            "off",
            "--ip",
            "127.0.0.1",
        ])
        .arg("--jsonfile-pretty")
        .arg(&json)
        .args(["-p", "-s", "-S", "-U"])
        .arg(format!("{host}:{https}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&json).unwrap_or_else(|e| panic!("no JSON ({e}):\n{text}")),
    )
    .unwrap();
    let findings: Vec<&serde_json::Value> = report["scanResult"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s.as_object().unwrap().values())
        .filter_map(|v| v.as_array())
        .flatten()
        .collect();
    assert!(findings.len() > 30, "testssl ran its checks:\n{text}");
    let field = |f: &serde_json::Value, k: &str| f[k].as_str().unwrap_or_default().to_string();
    let bad: Vec<String> = findings
        .iter()
        .filter(|f| matches!(field(f, "severity").as_str(), "HIGH" | "CRITICAL"))
        .filter(|f| !field(f, "id").starts_with("cert_"))
        .map(|f| {
            format!(
                "{} {}: {}",
                field(f, "id"),
                field(f, "severity"),
                field(f, "finding")
            )
        })
        .collect();
    assert!(bad.is_empty(), "testssl: {bad:#?}\n{text}");
    for old in ["SSLv2", "SSLv3", "TLS1", "TLS1_1"] {
        let f = findings
            .iter()
            .find(|f| field(f, "id") == old)
            .unwrap_or_else(|| panic!("testssl has no {old} finding:\n{text}"));
        assert!(
            field(f, "finding").starts_with("not offered"),
            "{old}: {}",
            field(f, "finding")
        );
    }
    for new in ["TLS1_2", "TLS1_3"] {
        let f = findings.iter().find(|f| field(f, "id") == new).unwrap();
        assert!(field(f, "finding").starts_with("offered"), "{new}: {f}");
    }
}
