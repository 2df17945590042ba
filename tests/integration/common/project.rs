//! A fixture project in a temp dir with a unique name and port, the sitebuild binary run on it,
//! and cleanup by label when it is dropped.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use super::{Response, base_image, docker, docker_lines, get};

/// A free TCP port on loopback (the OS picks it).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn unique_name(prefix: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("sbtest-{prefix}-{:x}{:x}", std::process::id(), n)
}

pub(crate) fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sites")
}

/// Copy a directory tree (files and dirs; symlinks are recreated).
pub(crate) fn copy_tree(from: &Path, to: &Path) {
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
pub(crate) struct Project {
    pub dir: tempfile::TempDir,
    pub name: String,
    pub port: u16,
}

impl Project {
    /// `site/` = the valid fixture, `sitebuild.toml` = name + port.
    pub(crate) fn new(prefix: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let name = unique_name(prefix);
        let port = free_port();
        copy_tree(&fixtures().join("valid"), &dir.path().join("site"));
        let p = Project { dir, name, port };
        p.write_toml("");
        p
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn site(&self, rel: &str) -> PathBuf {
        self.path().join("site").join(rel)
    }

    /// sitebuild.toml with this project's name and port plus `extra` lines.
    pub(crate) fn write_toml(&self, extra: &str) {
        std::fs::write(
            self.path().join("sitebuild.toml"),
            format!("name = \"{}\"\nport = {}\n{extra}", self.name, self.port),
        )
        .unwrap();
    }

    /// `sitebuild --dir <project> <args>` with the test base image. The binary is the one cargo
    /// built for this test, or `SITEBUILD_TEST_BIN` (`bench/soak` runs a release build so).
    pub(crate) fn cmd(&self, args: &[&str]) -> Command {
        let bin = std::env::var_os("SITEBUILD_TEST_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_sitebuild").into());
        let mut c = Command::new(bin);
        c.arg("--dir").arg(self.path()).args(args);
        c.env("SITEBUILD_BASE_IMAGE", base_image());
        c.env_remove("SITEBUILD_PORT");
        c
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Run and require success; returns stdout + stderr.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
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
    pub(crate) fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success(),
            "sitebuild {args:?} should have failed; stdout:\n{}\nstderr:\n{text}",
            String::from_utf8_lossy(&out.stdout)
        );
        text
    }

    /// Where the published port is reached: loopback, or `SITEBUILD_PROBE_HOST` when the
    /// engine is elsewhere (GitLab's docker:dind service).
    pub(crate) fn addr(&self) -> SocketAddr {
        use std::net::ToSocketAddrs;
        match std::env::var("SITEBUILD_PROBE_HOST") {
            Ok(host) if !host.is_empty() => (host.as_str(), self.port)
                .to_socket_addrs()
                .expect("SITEBUILD_PROBE_HOST resolves")
                .next()
                .unwrap(),
            _ => SocketAddr::from(([127, 0, 0, 1], self.port)),
        }
    }

    pub(crate) fn get(&self, path: &str) -> Response {
        self.get_with(path, &[])
    }

    pub(crate) fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        get(self.addr(), path, headers, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("GET {path} on {}: {e:#}", self.addr()))
    }

    /// IDs of this project's containers (any state), found by label.
    pub(crate) fn containers(&self) -> Vec<String> {
        docker_lines(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=dev.sitebuild.project={}", self.name),
        ])
    }

    /// IDs of this project's containers with this role (site, edge, lock).
    pub(crate) fn role(&self, role: &str) -> Vec<String> {
        docker_lines(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=dev.sitebuild.project={}", self.name),
            "--filter",
            &format!("label=dev.sitebuild.role={role}"),
        ])
    }

    pub(crate) fn images(&self) -> Vec<String> {
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
            // -v: a `watch` dev container's scratch volume is anonymous; without it every killed
            // `watch` left an empty volume behind.
            let mut args = vec!["rm", "-f", "-v"];
            args.extend(ids.iter().map(String::as_str));
            let _ = docker(&args);
        }
        // Previews (`--preview`) are instances named `<name>-preview-<p>`.
        let previews = docker_lines(&[
            "ps",
            "-aq",
            "--filter",
            &format!("name=^{}-preview-", self.name),
        ]);
        if !previews.is_empty() {
            let mut args = vec!["rm", "-f", "-v"];
            args.extend(previews.iter().map(String::as_str));
            let _ = docker(&args);
        }
        // (Network and volume name filters match substrings.)
        for kind in ["network", "volume"] {
            for n in docker_lines(&[
                kind,
                "ls",
                "-q",
                "--filter",
                &format!("name={}-preview-", self.name),
            ]) {
                let _ = docker(&[kind, "rm", &n]);
            }
        }
        let _ = docker(&["network", "rm", &format!("{}-net", self.name)]);
        // A shared edge on this project's port (projects with `domains` use `http_port`; tests
        // give it the port of one of them), its lock and volume.
        let shared = format!("sitebuild-edge-{}", self.port);
        if docker(&["inspect", &shared]).status.success() {
            let _ = docker(&["rm", "-f", &shared]);
        }
        let _ = docker(&["rm", "-f", &format!("{shared}-lock")]);
        let _ = docker(&["rm", "-f", &format!("{shared}-renewer")]);
        let _ = docker(&["volume", "rm", "-f", &shared]);
        // A shared edge of another test project may still be attached (a failed test): detach it.
        let net = format!("{}-net", self.name);
        let attached = docker(&[
            "network",
            "inspect",
            "-f",
            "{{range .Containers}}{{.Name}} {{end}}",
            &net,
        ]);
        for name in String::from_utf8_lossy(&attached.stdout).split_whitespace() {
            if name.starts_with("sitebuild-edge-") {
                let _ = docker(&["network", "disconnect", "-f", &net, name]);
            }
        }
        let _ = docker(&["network", "rm", &net]);
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

/// Lay an invalid fixture over the project: files replace, `REMOVE` lists deletions,
/// `name = "KEEP"` becomes the project's name.
pub(crate) fn apply_fixture(p: &Project, case: &str) {
    let dir = fixtures().join("invalid").join(case);
    assert!(dir.is_dir(), "fixture {case}");
    overlay(&dir, p.path(), p);
    if let Ok(list) = std::fs::read_to_string(dir.join("REMOVE")) {
        for rel in list.lines().filter(|l| !l.trim().is_empty()) {
            std::fs::remove_file(p.path().join(rel.trim())).unwrap();
        }
        let _ = std::fs::remove_file(p.path().join("REMOVE"));
    }
}

pub(crate) fn overlay(from: &Path, to: &Path, p: &Project) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            overlay(&entry.path(), &target, p);
        } else if entry.file_name() != "REMOVE" {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            let text = text.replace(
                "name = \"KEEP\"",
                &format!("name = \"{}\"\nport = {}", p.name, p.port),
            );
            std::fs::write(target, text).unwrap();
        }
    }
}

/// Reset the project to the valid fixture and config.
pub(crate) fn reset(p: &Project) {
    let _ = std::fs::remove_dir_all(p.path().join("site"));
    let _ = std::fs::remove_dir_all(p.path().join("nginx"));
    copy_tree(&fixtures().join("valid"), &p.path().join("site"));
    p.write_toml("");
}

/// A command's stdout and stderr as one text (what a user sees), for assertions and messages.
pub(crate) fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
