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

    /// Where the published port is reached: loopback, or `SITEBUILD_PROBE_HOST` when the
    /// engine is elsewhere (GitLab's docker:dind service).
    pub fn addr(&self) -> SocketAddr {
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

/// Counts from a [`Load`] run.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    pub ok: u64,
    pub connection_errors: u64,
    pub non_200: u64,
    /// 200 responses whose body was none of the expected versions.
    pub unexpected_body: u64,
    pub first_error: Option<String>,
}

/// Constant HTTP load on loopback from a few threads, one request per connection
/// (`Connection: close`), every response checked against the allowed bodies.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    allowed: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    threads: Vec<std::thread::JoinHandle<LoadReport>>,
}

impl Load {
    pub fn start(addr: SocketAddr, path: &str, allowed: Vec<Vec<u8>>, threads: usize) -> Load {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let allowed = std::sync::Arc::new(std::sync::Mutex::new(allowed));
        let handles = (0..threads)
            .map(|_| {
                let stop = stop.clone();
                let allowed = allowed.clone();
                let path = path.to_string();
                std::thread::spawn(move || {
                    let mut r = LoadReport::default();
                    while !stop.load(Ordering::Relaxed) {
                        match get(addr, &path, &[], Duration::from_secs(5)) {
                            Err(e) => {
                                r.connection_errors += 1;
                                r.first_error.get_or_insert(format!("{e:#}"));
                            }
                            Ok(resp) if resp.status != 200 => {
                                r.non_200 += 1;
                                r.first_error.get_or_insert(format!(
                                    "status {}: {}",
                                    resp.status,
                                    resp.text()
                                ));
                            }
                            Ok(resp) => {
                                if allowed.lock().unwrap().contains(&resp.body) {
                                    r.ok += 1;
                                } else {
                                    r.unexpected_body += 1;
                                    r.first_error
                                        .get_or_insert(format!("unexpected body: {}", resp.text()));
                                }
                            }
                        }
                    }
                    r
                })
            })
            .collect();
        Load {
            stop,
            allowed,
            threads: handles,
        }
    }

    /// Allow another body from now on (e.g. before deploying a new version).
    pub fn allow(&self, body: Vec<u8>) {
        self.allowed.lock().unwrap().push(body);
    }

    pub fn finish(self) -> LoadReport {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut total = LoadReport::default();
        for t in self.threads {
            let r = t.join().unwrap();
            total.ok += r.ok;
            total.connection_errors += r.connection_errors;
            total.non_200 += r.non_200;
            total.unexpected_body += r.unexpected_body;
            if total.first_error.is_none() {
                total.first_error = r.first_error;
            }
        }
        total
    }
}

impl LoadReport {
    pub fn failures(&self) -> u64 {
        self.connection_errors + self.non_200 + self.unexpected_body
    }
}

/// Lay an invalid fixture over the project: files replace, `REMOVE` lists deletions,
/// `name = "KEEP"` becomes the project's name.
pub fn apply_fixture(p: &Project, case: &str) {
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

pub fn overlay(from: &Path, to: &Path, p: &Project) {
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
pub fn reset(p: &Project) {
    let _ = std::fs::remove_dir_all(p.path().join("site"));
    let _ = std::fs::remove_dir_all(p.path().join("nginx"));
    copy_tree(&fixtures().join("valid"), &p.path().join("site"));
    p.write_toml("");
}

/// A base image whose nginx passes `nginx -t` but exits at once when serving (crash loop):
/// `sitebuild/nginx:offline` with a wrapper compiled from tests/fixtures/crashing-nginx.c.
pub fn crashing_base_image() -> String {
    let tag = "sbtest-crashing-nginx:1".to_string();
    if docker(&["image", "inspect", &tag]).status.success() {
        return tag;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/crashing-nginx.c");
    let cc = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(dir.path().join("nginx"))
        .arg(&src)
        .output()
        .expect("gcc is needed to build the crash-loop fixture");
    assert!(
        cc.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&cc.stderr)
    );
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!(
            "FROM {}\nCOPY nginx.real /usr/sbin/nginx.real\nCOPY nginx /usr/sbin/nginx\n",
            base_image()
        ),
    )
    .unwrap();
    // The offline base's nginx is the host's Debian nginx: the same binary, renamed.
    std::fs::copy("/usr/sbin/nginx", dir.path().join("nginx.real")).unwrap();
    let out = docker(&[
        "build",
        "-q",
        "--label",
        "dev.sitebuild.test=crashing-nginx",
        "-t",
        &tag,
        dir.path().to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    tag
}

/// Is `tool` on PATH?
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Tools the README test command installs: all present → true. Missing: a test failure under
/// CI=true (never a silent skip), else a note and false (skip).
pub fn tools_ready(list: &[&str]) -> bool {
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
pub struct Registry {
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
    pub fn start(user: &str, password: &str) -> Registry {
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
