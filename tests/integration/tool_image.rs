//! The tool image (scripts/tool-image.sh): built here without a pull, it runs `sitebuild build`
//! on a mounted project against the mounted engine socket, the image it builds serves the site,
//! and it carries what CI jobs need (a shell, ssh, ssh-keyscan, CA certificates).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::*;

/// Removes the tool image when dropped (the site images go with the [`Project`]).
struct ToolImage(String);

impl Drop for ToolImage {
    fn drop(&mut self) {
        let _ = docker(&["rmi", "-f", &self.0]);
    }
}

/// Removes a container when dropped.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.0]);
    }
}

#[test]
fn tool_image_builds_a_mounted_project_that_serves() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    if !tools_ready(&["shellcheck"]) {
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("shellcheck")
        .arg(repo.join("scripts/tool-image.sh"))
        .output()
        .unwrap();
    assert!(out.status.success(), "shellcheck:\n{}", text(&out));

    let p = Project::new("tool");
    let tag = format!("sitebuild/sitebuild:{}", p.name);
    let out = Command::new(repo.join("scripts/tool-image.sh"))
        .args(["--bin", env!("CARGO_BIN_EXE_sitebuild"), &tag])
        .output()
        .unwrap();
    let _image = ToolImage(tag.clone());
    assert!(out.status.success(), "tool-image.sh:\n{}", text(&out));
    assert!(
        text(&out).contains(&format!("built {tag}")),
        "{}",
        text(&out)
    );
    assert_eq!(
        inspect(&tag, "{{json .Config.Entrypoint}} {{.Config.WorkingDir}}"),
        r#"["/usr/local/bin/sitebuild"] /work"#
    );

    // The README's command line, on the project's directory and the engine's socket.
    let out = Command::new("docker")
        .args([
            "run",
            "--rm",
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
            "-v",
            &format!("{}:/work", p.path().display()),
            "-e",
            &format!("SITEBUILD_BASE_IMAGE={}", base_image()),
            &tag,
            "--json",
            "build",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "build in the tool image:\n{}",
        text(&out)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("--json output: {e}\n{}", text(&out)));
    let image = report["image"].as_str().unwrap().to_string();
    assert!(image.starts_with(&format!("{}:", p.name)), "{report}");
    assert_eq!(report["built"], true, "{report}");
    assert!(
        inspect(&image, "{{index .Config.Labels \"dev.sitebuild.project\"}}") == p.name,
        "the built image carries the project label"
    );

    // The same fingerprint as the host binary computes: nothing to build the second time.
    let again = p.ok(&["--json", "build"]);
    let again: serde_json::Value = serde_json::from_str(again.lines().last().unwrap()).unwrap();
    assert_eq!(
        again["image"], report["image"],
        "same fingerprint on the host"
    );
    assert_eq!(again["built"], false, "{again}");

    // A container from the built image serves the project's bytes.
    let port = free_port();
    let out = docker(&[
        "run",
        "-d",
        "--label",
        &format!("dev.sitebuild.project={}", p.name),
        "-p",
        &format!("127.0.0.1:{port}:8080"),
        &image,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let _site = Container(String::from_utf8_lossy(&out.stdout).trim().to_string());
    let original = std::fs::read(p.site("index.html")).unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut last = String::new();
    let mut served = false;
    for _ in 0..50 {
        match get(addr, "/", &[], Duration::from_secs(2)) {
            Ok(r) if r.status == 200 => {
                assert_eq!(r.body, original, "byte-for-byte");
                served = true;
                break;
            }
            Ok(r) => last = format!("status {}", r.status),
            Err(e) => last = format!("{e:#}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(served, "the site container never answered: {last}");

    // What CI jobs need inside: a shell with the usual tools, ssh, ssh-keyscan, CA certificates.
    let out = docker(&[
        "run",
        "--rm",
        "--entrypoint",
        "/bin/sh",
        &tag,
        "-c",
        "ssh -V 2>&1 && ssh-keyscan 2>&1 | head -n 1; test -s /etc/ssl/certs/ca-certificates.crt && \
         mkdir -p ~/.ssh && printf ok && sitebuild --version",
    ]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("OpenSSH"), "ssh -V: {t}");
    assert!(t.contains("usage: ssh-keyscan"), "ssh-keyscan: {t}");
    assert!(
        t.contains(&format!("oksitebuild {}", env!("CARGO_PKG_VERSION"))),
        "the shell, the certificates and sitebuild: {t}"
    );
}
