//! Tools the README test command installs, and a real registry on loopback.

use std::process::Command;
use std::time::Duration;

use super::{free_port, get};

/// Is `tool` on PATH?
pub(crate) fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Tools the README test command installs: all present → true. Missing: a test failure under
/// CI=true (never a silent skip), else a note and false (skip).
pub(crate) fn tools_ready(list: &[&str]) -> bool {
    let missing: Vec<&&str> = list.iter().filter(|t| !have(t)).collect();
    if missing.is_empty() {
        return true;
    }
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "missing {missing:?}; scripts/test.sh installs them"
    );
    eprintln!("SKIPPED: missing {missing:?} (scripts/test.sh installs them)");
    false
}

/// A curl that retries the streams a server's GOAWAY refused (>= 8.5: curl PR #12054), for HTTP/2
/// load across edge reloads: `SITEBUILD_TEST_H2_CURL` (scripts/test.sh sets it to Debian forky's
/// curl, scripts/current-curl.sh), else `curl` on PATH when it is recent enough. None: a test
/// failure under CI=true, else a note (skip).
pub(crate) fn h2_curl() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("SITEBUILD_TEST_H2_CURL").map_or_else(
        || std::path::PathBuf::from("curl"),
        std::path::PathBuf::from,
    );
    let version = Command::new(&path)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let first = String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()?
                .to_string();
            let v = first.split_whitespace().nth(1)?.to_string();
            let mut parts = v.split('.').map(|n| n.parse::<u32>().unwrap_or(0));
            Some((parts.next()?, parts.next()?, v))
        });
    match version {
        Some((major, minor, _)) if (major, minor) >= (8, 5) => Some(path),
        other => {
            let why = format!(
                "{} is {}: HTTP/2 load across reloads needs curl >= 8.5 (older curl does not retry \
                 the streams a GOAWAY refused); scripts/current-curl.sh installs one, \
                 SITEBUILD_TEST_H2_CURL names it",
                path.display(),
                other.map_or_else(|| "missing".to_string(), |(_, _, v)| format!("curl {v}"))
            );
            assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "{why}");
            eprintln!("SKIPPED: {why}");
            None
        }
    }
}

/// A real registry (Debian's docker-registry) on a loopback port with one htpasswd user; stopped
/// when dropped.
pub(crate) struct Registry {
    child: std::process::Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    pub(crate) fn start(user: &str, password: &str) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let htpasswd = Command::new("htpasswd")
            .args(["-Bbn", user, password])
            .output()
            .unwrap();
        assert!(htpasswd.status.success(), "htpasswd failed");
        std::fs::write(dir.path().join("htpasswd"), htpasswd.stdout).unwrap();
        std::fs::write(
            dir.path().join("config.yml"),
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {d}/data\n\
                 http:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd:\n    realm: sitebuild-test\n    path: {d}/htpasswd\n",
                d = dir.path().display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let reg = Registry {
            child,
            port,
            _dir: dir,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while get(
            ([127, 0, 0, 1], port).into(),
            "/v2/",
            &[],
            Duration::from_secs(1),
        )
        .is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the registry did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }
}
