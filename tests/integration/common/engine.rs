//! The real engine: is it there, the base images tests build on, `docker` CLI helpers, and the
//! turn each test area takes on it.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Condvar, Mutex, PoisonError};

use super::unique_name;

/// The base image tests build on (made offline by scripts/offline-base.sh).
pub(crate) fn base_image() -> String {
    std::env::var("SITEBUILD_TEST_BASE_IMAGE").unwrap_or_else(|_| "sitebuild/nginx:offline".into())
}

/// True when a Docker engine answers. Under CI=true a missing engine fails the test with a clear
/// message; elsewhere the test is skipped with a note on stderr.
fn engine_ready() -> bool {
    let ok = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but no Docker engine answers `docker version`: the real-engine tests cannot run. \
             Start the daemon (sudo service docker start) or fix DOCKER_HOST."
        );
        eprintln!("SKIPPED: no Docker engine (set CI=true to make this a failure)");
        return false;
    }
    let base = base_image();
    let has_base = Command::new("docker")
        .args(["image", "inspect", &base])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        has_base,
        "base image {base} is missing: run scripts/offline-base.sh (the README test command does)"
    );
    true
}

pub(crate) fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().unwrap()
}

pub(crate) fn docker_lines(args: &[&str]) -> Vec<String> {
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
pub(crate) fn inspect(target: &str, format: &str) -> String {
    let out = docker(&["inspect", "-f", format, target]);
    assert!(
        out.status.success(),
        "docker inspect {target}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A base image whose nginx passes `nginx -t` but exits at once when serving (crash loop):
/// `sitebuild/nginx:offline` with a wrapper compiled from tests/fixtures/crashing-nginx.c.
pub(crate) fn crashing_base_image() -> String {
    let tag = "sbtest-crashing-nginx:2".to_string();
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
    // The base's own nginx, renamed (the base has no command: name one to create the container).
    let src = unique_name("crashing-src");
    let created = docker(&[
        "create",
        "--name",
        &src,
        "--entrypoint",
        "/usr/sbin/nginx",
        &base_image(),
        "-v",
    ]);
    assert!(
        created.status.success(),
        "docker create: {}",
        String::from_utf8_lossy(&created.stderr)
    );
    let cp = docker(&[
        "cp",
        &format!("{src}:/usr/sbin/nginx"),
        dir.path().join("nginx.real").to_str().unwrap(),
    ]);
    let _ = docker(&["rm", "-f", "-v", &src]);
    assert!(
        cp.status.success(),
        "docker cp: {}",
        String::from_utf8_lossy(&cp.stderr)
    );
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

/// Tests of different areas (modules) never overlap; tests of one area run in parallel, as
/// when every area was its own test binary. A deploy under load and a swarm rollout (which
/// changes the engine's swarm state) are never measured against each other.
pub(crate) struct Area(&'static str);

static CURRENT: Mutex<(Option<&'static str>, usize)> = Mutex::new((None, 0));
static CHANGED: Condvar = Condvar::new();

impl Area {
    fn enter(area: &'static str) -> Area {
        let mut cur = CURRENT.lock().unwrap_or_else(PoisonError::into_inner);
        while cur.0.is_some_and(|a| a != area) {
            cur = CHANGED.wait(cur).unwrap_or_else(PoisonError::into_inner);
        }
        *cur = (Some(area), cur.1 + 1);
        Area(area)
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        let mut cur = CURRENT.lock().unwrap_or_else(PoisonError::into_inner);
        cur.1 -= 1;
        if cur.1 == 0 {
            cur.0 = None;
            CHANGED.notify_all();
        }
        let _ = self.0;
    }
}

/// [`engine_ready`], then the area's turn on the engine: `let Some(_engine) =
/// engine(module_path!()) else { return };` at the start of every real-engine test.
pub(crate) fn engine(area: &'static str) -> Option<Area> {
    engine_ready().then(|| Area::enter(area))
}
