//! An ACME server on loopback for the `tls = "acme"` tests: Debian's pebble and its DNS
//! (pebble-challtestsrv answering every name with 127.0.0.1), on free ports, with a throwaway
//! openssl certificate for pebble's own HTTPS. Stopped when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

pub(crate) struct Pebble {
    server: Child,
    dns: Child,
    /// The ACME directory URL.
    pub(crate) dir_url: String,
    /// pebble's own TLS certificate (give it as `acme_root`).
    pub(crate) tls_root: PathBuf,
    mgmt: u16,
    dir: tempfile::TempDir,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for c in [&mut self.server, &mut self.dns] {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Pebble {
    /// Start pebble validating http-01 on `http_port` (the edge's `http_port`).
    pub(crate) fn start(http_port: u16) -> Pebble {
        Pebble::start_on(http_port, "127.0.0.1")
    }

    /// [`Pebble::start`] with its ACME directory on `ip` (e.g. the docker bridge's gateway, so
    /// a container reaches it too); its HTTPS certificate names that address.
    pub(crate) fn start_on(http_port: u16, ip: &str) -> Pebble {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let out = Command::new("openssl")
            .current_dir(d)
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
            .args(["-subj", "/CN=localhost"])
            .arg("-addext")
            .arg(format!("subjectAltName=DNS:localhost,IP:127.0.0.1,IP:{ip}"))
            // Not a CA: rustls refuses a CA certificate as a server's own (CaUsedAsEndEntity).
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .args(["-keyout", "key.pem", "-out", "cert.pem"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (dns, cmgmt, acme, mgmt, tls) = (
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
        );
        let log = |name: &str| std::fs::File::create(d.join(name)).unwrap();
        let dns_child = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{cmgmt}")])
            .stdout(log("challtestsrv.log"))
            .stderr(log("challtestsrv.err"))
            .spawn()
            .unwrap();
        std::fs::write(
            d.join("pebble.json"),
            format!(
                r#"{{"pebble":{{"listenAddress":"{ip}:{acme}","managementListenAddress":"127.0.0.1:{mgmt}",
 "certificate":"cert.pem","privateKey":"key.pem","httpPort":{http_port},"tlsPort":{tls},
 "ocspResponderURL":"","externalAccountBindingRequired":false}}}}"#
            ),
        )
        .unwrap();
        let pebble = Command::new("pebble")
            .current_dir(d)
            .args(["-config", "pebble.json", "-dnsserver"])
            .arg(format!("127.0.0.1:{dns}"))
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(log("pebble.log"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut p = Pebble {
            server: pebble,
            dns: dns_child,
            dir_url: format!("https://{ip}:{acme}/dir"),
            tls_root: d.join("cert.pem"),
            mgmt,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !p.curl(&p.dir_url).0 {
            let dns_exited = p.dns.try_wait().unwrap();
            assert!(
                dns_exited.is_none(),
                "pebble-challtestsrv exited: {dns_exited:?}"
            );
            assert!(
                Instant::now() < deadline,
                "pebble did not start: {}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    /// Stop pebble (the ACME server becomes unreachable).
    pub(crate) fn stop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }

    fn curl(&self, url: &str) -> (bool, String) {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "5", "--cacert"])
            .arg(&self.tls_root)
            .arg(url)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// The root that signs issued certificates (new at every start), written to a file.
    pub(crate) fn issuing_root(&self) -> PathBuf {
        let (ok, pem) = self.curl(&format!("https://127.0.0.1:{}/roots/0", self.mgmt));
        assert!(ok && pem.contains("BEGIN CERTIFICATE"), "{pem}");
        let path = self.dir.path().join("issuing-root.pem");
        std::fs::write(&path, pem).unwrap();
        path
    }

    /// pebble's output so far (for failure messages).
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }
}
