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
