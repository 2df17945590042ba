//! Shared helpers for the real-engine integration tests: unique project names and ports, a
//! fixture project in a temp dir, HTTP fetches, and cleanup by label (even when a test fails).

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

pub use sitebuild::http::{Response, get};

/// The base image tests build on (made offline by scripts/offline-base.sh).
pub fn base_image() -> String {
    std::env::var("SITEBUILD_TEST_BASE_IMAGE").unwrap_or_else(|_| "sitebuild/nginx:offline".into())
}

/// True when a Docker engine answers. Under CI=true a missing engine fails the test with a clear
/// message; elsewhere the test is skipped with a note on stderr.
pub fn engine_ready() -> bool {
    let ok = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "CI=true but no Docker engine answers `docker version`: the real-engine tests cannot run. \
                 Start the daemon (sudo service docker start) or fix DOCKER_HOST."
            );
        }
        eprintln!("SKIPPED: no Docker engine (set CI=true to make this a failure)");
        return false;
    }
    let base = base_image();
    let has_base = Command::new("docker")
        .args(["image", "inspect", &base])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        has_base,
        "base image {base} is missing: run scripts/offline-base.sh (the README test command does)"
    );
    true
}

/// A free TCP port on loopback (the OS picks it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn unique_name(prefix: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("sbtest-{prefix}-{:x}{:x}", std::process::id(), n)
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sites")
}

/// Copy a directory tree (files and dirs; symlinks are recreated).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let ft = entry.file_type().unwrap();
        if ft.is_dir() {
            copy_tree(&entry.path(), &target);
        } else if ft.is_symlink() {
            let link = std::fs::read_link(entry.path()).unwrap();
            std::os::unix::fs::symlink(link, target).unwrap();
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A project in a temp dir with a unique name and port; everything it created in the engine is
/// removed by label when it is dropped.
pub struct Project {
    pub dir: tempfile::TempDir,
    pub name: String,
    pub port: u16,
}

impl Project {
    /// `site/` = the valid fixture, `sitebuild.toml` = name + port.
    pub fn new(prefix: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let name = unique_name(prefix);
        let port = free_port();
        copy_tree(&fixtures().join("valid"), &dir.path().join("site"));
        let p = Project { dir, name, port };
        p.write_toml("");
        p
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn site(&self, rel: &str) -> PathBuf {
        self.path().join("site").join(rel)
    }

    /// sitebuild.toml with this project's name and port plus `extra` lines.
    pub fn write_toml(&self, extra: &str) {
        std::fs::write(
            self.path().join("sitebuild.toml"),
            format!("name = \"{}\"\nport = {}\n{extra}", self.name, self.port),
        )
        .unwrap();
    }

    /// `sitebuild --dir <project> <args>` with the test base image.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sitebuild"));
        c.arg("--dir").arg(self.path()).args(args);
        c.env("SITEBUILD_BASE_IMAGE", base_image());
        c.env_remove("SITEBUILD_PORT");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Run and require success; returns stdout + stderr.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "sitebuild {args:?} failed:\n{text}");
        text
    }

    /// Run and require failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success(),
            "sitebuild {args:?} should have failed; stdout:\n{}\nstderr:\n{text}",
            String::from_utf8_lossy(&out.stdout)
        );
        text
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn get(&self, path: &str) -> Response {
        self.get_with(path, &[])
    }

    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        get(self.addr(), path, headers, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("GET {path} on {}: {e:#}", self.addr()))
    }

    /// IDs of this project's containers (any state), found by label.
    pub fn containers(&self) -> Vec<String> {
        docker_lines(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=dev.sitebuild.project={}", self.name),
        ])
    }

    /// IDs of this project's containers with this role (site, edge, lock).
    pub fn role(&self, role: &str) -> Vec<String> {
        docker_lines(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=dev.sitebuild.project={}", self.name),
            "--filter",
            &format!("label=dev.sitebuild.role={role}"),
        ])
    }

    pub fn images(&self) -> Vec<String> {
        docker_lines(&[
            "images",
            "-q",
            "--filter",
            &format!("label=dev.sitebuild.project={}", self.name),
        ])
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let ids = self.containers();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids.iter().map(String::as_str));
            let _ = docker(&args);
        }
        let _ = docker(&["network", "rm", &format!("{}-net", self.name)]);
        let _ = docker(&["volume", "rm", "-f", &format!("{}-edge", self.name)]);
        let mut imgs = self.images();
        imgs.sort();
        imgs.dedup();
        if !imgs.is_empty() {
            let mut args = vec!["rmi", "-f"];
            args.extend(imgs.iter().map(String::as_str));
            let _ = docker(&args);
        }
    }
}

pub fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().unwrap()
}

pub fn docker_lines(args: &[&str]) -> Vec<String> {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// `docker inspect -f FORMAT target`, trimmed.
pub fn inspect(target: &str, format: &str) -> String {
    let out = docker(&["inspect", "-f", format, target]);
    assert!(
        out.status.success(),
        "docker inspect {target}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
