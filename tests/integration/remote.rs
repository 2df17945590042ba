//! Remote engines: the same deploy over `DOCKER_HOST=tcp://…`, plain and with mutual TLS
//! (`DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`). The local engine's socket is exposed on loopback
//! with socat (plain TCP) and with `tests/fixtures/tls_forward.py` (mutual TLS, with a CA, server
//! and client certificate made here with openssl), so these are real remote-API round trips.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

struct Forward(Child);

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn forward(listen: &str) -> Forward {
    let child = Command::new("socat")
        .args([listen, "UNIX-CONNECT:/var/run/docker.sock"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Forward(child)
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "forward on {port} did not come up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// ca.pem, server cert/key (for 127.0.0.1) and the docker CLI's client names: cert.pem, key.pem.
fn make_certs(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=sitebuild test CA",
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca.pem",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (name, ext, cn) in [
        ("server", "server.ext", "localhost"),
        ("client", "client.ext", "client"),
    ] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={cn}"),
                "-keyout",
                &format!("{name}-key.pem"),
                "-out",
                &format!("{name}.csr"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca-key.pem",
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                ext,
                "-out",
                &format!("{name}.pem"),
            ],
        );
    }
    std::fs::copy(dir.join("client.pem"), dir.join("cert.pem")).unwrap();
    std::fs::copy(dir.join("client-key.pem"), dir.join("key.pem")).unwrap();
}

fn deploy_through(p: &Project, envs: &[(&str, String)]) -> String {
    let mut cmd = p.cmd(&["deploy"]);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "deploy over {envs:?} failed:\n{text}");
    text
}

#[test]
fn deploy_over_tcp_and_mutual_tls() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    if !tools_ready(&["socat", "openssl", "python3"]) {
        return;
    }
    let p = Project::new("remote");
    p.write_toml("drain = 0\n");

    // Plain TCP.
    let port = free_port();
    let _plain = forward(&format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"));
    wait_port(port);
    let host = format!("tcp://127.0.0.1:{port}");
    let out = deploy_through(&p, &[("DOCKER_HOST", host.clone())]);
    assert!(out.contains("live at"), "{out}");
    assert_eq!(
        p.get("/").body,
        std::fs::read(p.site("index.html")).unwrap()
    );
    let status = {
        let mut c = p.cmd(&["status"]);
        c.env("DOCKER_HOST", &host);
        String::from_utf8_lossy(&c.output().unwrap().stdout).into_owned()
    };
    assert!(status.contains(&format!("engine {host}")), "{status}");

    // Mutual TLS: the client must present a certificate signed by the CA.
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let tls_port = free_port();
    let c = |f: &str| certs.path().join(f).display().to_string();
    let _tls = Forward(
        Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls_forward.py"))
            .args([
                tls_port.to_string(),
                c("server.pem"),
                c("server-key.pem"),
                c("ca.pem"),
            ])
            .spawn()
            .unwrap(),
    );
    wait_port(tls_port);
    let tls_host = format!("tcp://127.0.0.1:{tls_port}");
    std::fs::write(p.site("index.html"), "<!doctype html><p>over TLS</p>").unwrap();
    let out = deploy_through(
        &p,
        &[
            ("DOCKER_HOST", tls_host.clone()),
            ("DOCKER_TLS_VERIFY", "1".into()),
            ("DOCKER_CERT_PATH", certs.path().display().to_string()),
        ],
    );
    assert!(out.contains("live at"), "{out}");
    assert_eq!(p.get("/").text(), "<!doctype html><p>over TLS</p>");

    // Without TLS settings the TLS endpoint refuses to talk: a clear error, nothing changes.
    std::fs::write(p.site("index.html"), "<!doctype html><p>never</p>").unwrap();
    let mut cmd = p.cmd(&["deploy"]);
    cmd.env("DOCKER_HOST", &tls_host);
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("cannot reach the Docker engine at {tls_host}")),
        "{err}"
    );
    assert_eq!(p.get("/").text(), "<!doctype html><p>over TLS</p>");
}
