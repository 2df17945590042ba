//! The binary without an engine: help, render, gixy on the rendered config, unreadable files.

mod common;

use std::process::Command;

use assert_cmd::prelude::*;
use predicates::prelude::*;

fn sitebuild() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sitebuild"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("SITEBUILD_")) {
        c.env_remove(k);
    }
    c
}

fn project(toml: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    common::copy_tree(&common::fixtures().join("valid"), &d.path().join("site"));
    std::fs::write(d.path().join("sitebuild.toml"), toml).unwrap();
    d
}

#[test]
fn every_command_has_help_with_an_example() {
    for cmd in ["render", "build", "up", "status", "down"] {
        sitebuild()
            .args([cmd, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains("Example"));
    }
    sitebuild()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("--dir"));
    sitebuild()
        .args(["up", "--help"])
        .assert()
        .stdout(predicate::str::contains("--port"));
}

#[test]
fn render_prints_and_writes_the_config() {
    let d = project("server_name = \"example.com\"\n");
    let out = sitebuild()
        .args(["--dir", d.path().to_str().unwrap(), "render"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let conf = String::from_utf8(out).unwrap();
    assert!(conf.contains("server_name example.com;"));
    assert!(conf.contains("listen 8080 default_server;"));
    assert!(conf.contains("server_tokens off;"));
    assert!(
        conf.contains("error_page 404 /404.html;"),
        "the fixture has a 404.html"
    );

    let file = d.path().join("out.conf");
    sitebuild()
        .args(["--dir", d.path().to_str().unwrap(), "render", "--out"])
        .arg(&file)
        .assert()
        .success();
    assert_eq!(std::fs::read_to_string(file).unwrap(), conf);
}

#[test]
fn template_override_in_nginx_dir_is_used() {
    let d = project("");
    std::fs::create_dir_all(d.path().join("nginx")).unwrap();
    std::fs::write(
        d.path().join("nginx/nginx.conf.j2"),
        "# custom for {{ server_name }}\nevents {}\nhttp { server { listen {{ listen_port }}; location = /healthz { return 200; } } }\n",
    )
    .unwrap();
    sitebuild()
        .args(["--dir", d.path().to_str().unwrap(), "render"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("# custom for _\n"));
}

#[test]
fn render_errors_name_the_key_and_source() {
    let d = project("server_name = \"a.com;\"\n");
    sitebuild()
        .args(["--dir", d.path().to_str().unwrap(), "render"])
        .assert()
        .failure()
        .stderr(
            predicate::str::contains("invalid `server_name` (from ")
                .and(predicate::str::contains("sitebuild.toml")),
        );
    let d = project("");
    sitebuild()
        .args(["--dir", d.path().to_str().unwrap(), "render"])
        .env("SITEBUILD_PORT", "70000")
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "invalid `port` (from SITEBUILD_PORT): 70000 is out of range",
        ));
    sitebuild()
        .args(["--dir", "/nonexistent/project", "render"])
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "/nonexistent/project does not exist",
        ));
}

/// gixy-next finds nothing in the rendered default config (every variant), and does find the
/// classic add_header-in-location mistake (so this check can fail).
#[test]
fn rendered_config_passes_gixy() {
    let gixy_ok = Command::new("gixy")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !gixy_ok {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "gixy (PyPI gixy-next) is not installed; the README test command installs it"
        );
        eprintln!("SKIPPED: gixy not installed (pip install gixy-next)");
        return;
    }
    let gixy = |conf: &str| -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let out = Command::new("gixy")
            .args(["-f", "json"])
            .arg(&path)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    for toml in [
        "",
        "spa = true\n",
        "server_name = \"example.com www.example.com\"\n",
    ] {
        for with_404 in [true, false] {
            let d = project(toml);
            if !with_404 {
                std::fs::remove_file(d.path().join("site/404.html")).unwrap();
            }
            let out = sitebuild()
                .args(["--dir", d.path().to_str().unwrap(), "render"])
                .output()
                .unwrap();
            assert!(out.status.success());
            let report = gixy(&String::from_utf8(out.stdout).unwrap());
            assert_eq!(
                report, "[]",
                "gixy findings for {toml:?} (404: {with_404}):\n{report}"
            );
        }
    }
    let bad = "events {}\nhttp { add_header X-Frame-Options DENY; server { listen 8080; location / { add_header X-A b; } } }\n";
    let report = gixy(bad);
    assert!(report.contains("add_header_redefinition"), "{report}");
}

/// A file sitebuild cannot read: run as `nobody` (root reads everything).
#[test]
fn unreadable_file_is_named() {
    use std::os::unix::fs::PermissionsExt;
    let d = project("");
    let secret = d.path().join("site/secret.txt");
    std::fs::write(&secret, "x").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_sitebuild"),
        ]);
        c
    } else {
        sitebuild()
    };
    cmd.args(["--dir", d.path().to_str().unwrap(), "build"])
        .env("DOCKER_HOST", "unix:///nonexistent")
        .assert()
        .failure()
        .stderr(
            predicate::str::contains("secret.txt").and(predicate::str::contains("cannot read")),
        );
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[test]
fn render_k8s_writes_manifests_and_refuses_bad_values() {
    let d = project("replicas = 3\ningress_host = \"www.example.com\"\nnamespace = \"web\"\n");
    let out = d.path().join("k8s");
    sitebuild()
        .args([
            "--dir",
            d.path().to_str().unwrap(),
            "render",
            "--k8s",
            "--image",
            "registry.example.com/site",
            "--out",
        ])
        .arg(&out)
        .assert()
        .success();
    let deployment = std::fs::read_to_string(out.join("deployment.yaml")).unwrap();
    assert!(deployment.contains("replicas: 3"), "{deployment}");
    assert!(
        deployment.contains("image: \"registry.example.com/site:"),
        "{deployment}"
    );
    assert!(deployment.contains("readOnlyRootFilesystem: true"));
    let ingress = std::fs::read_to_string(out.join("ingress.yaml")).unwrap();
    assert!(ingress.contains("www.example.com"));
    assert!(out.join("service.yaml").exists());

    for (toml, key) in [
        ("replicas = 0\n", "`replicas`"),
        ("replicas = -1\n", "`replicas`"),
        ("ingress_host = \"a b\"\n", "`ingress_host`"),
    ] {
        let d = project(toml);
        sitebuild()
            .args(["--dir", d.path().to_str().unwrap(), "render", "--k8s"])
            .assert()
            .failure()
            .stderr(predicate::str::contains(key).and(predicate::str::contains("sitebuild.toml")));
    }
}
