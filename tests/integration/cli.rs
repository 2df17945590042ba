//! The binary without an engine: help, render, gixy on the rendered config, unreadable files.

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
    crate::common::copy_tree(
        &crate::common::fixtures().join("valid"),
        &d.path().join("site"),
    );
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
        conf.contains("error_page 404 $sitebuild_not_found;")
            && conf.contains("location = \"/404.html\""),
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
    // With _redirects, _headers (tests/sites/rules), clean URLs and every trailing_slash.
    for toml in [
        "",
        "clean_urls = true\n",
        "clean_urls = true\ntrailing_slash = \"always\"\n",
        "trailing_slash = \"never\"\nspa = true\n",
    ] {
        let d = tempfile::tempdir().unwrap();
        crate::common::copy_tree(
            &crate::common::fixtures().join("rules"),
            &d.path().join("site"),
        );
        std::fs::write(d.path().join("sitebuild.toml"), toml).unwrap();
        let out = sitebuild()
            .args(["--dir", d.path().to_str().unwrap(), "render"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let conf = String::from_utf8(out.stdout).unwrap();
        assert!(conf.contains("_redirects line"), "{conf}");
        let report = gixy(&conf);
        assert_eq!(
            report, "[]",
            "gixy findings with rules, {toml:?}:\n{report}"
        );
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
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
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

#[test]
fn version_names_the_commit() {
    let out = sitebuild().arg("--version").assert().success();
    let line = String::from_utf8_lossy(&out.get_output().stdout)
        .trim()
        .to_string();
    let want = format!("sitebuild {} (", env!("CARGO_PKG_VERSION"));
    assert!(line.starts_with(&want) && line.ends_with(')'), "{line}");
    // This test runs from the git checkout: the commit is HEAD's (when git is installed).
    let head = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    if let Ok(head) = head
        && head.status.success()
    {
        let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
        assert!(line.contains(&format!("({head})")), "{line} vs HEAD {head}");
    }
    // Subcommands print the same version (clap names them `sitebuild-build`).
    let version = line.strip_prefix("sitebuild ").unwrap();
    sitebuild()
        .args(["build", "--version"])
        .assert()
        .success()
        .stdout(predicate::str::contains(version));
}

#[test]
fn completions_for_each_shell() {
    for (shell, marker) in [
        ("bash", "_sitebuild()"),
        ("zsh", "#compdef sitebuild"),
        ("fish", "complete -c sitebuild"),
        ("elvish", "edit:completion:arg-completer[sitebuild]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = sitebuild().args(["completions", shell]).assert().success();
        let text = String::from_utf8_lossy(&out.get_output().stdout).to_string();
        assert!(text.contains(marker), "{shell}: no {marker:?}");
        // (fish spells flags `-l dir`.)
        for word in ["deploy", "rollback", "init", "dir", "image"] {
            assert!(text.contains(word), "{shell}: no {word}");
        }
    }
    // bash really loads it and completes subcommands.
    let script = String::from_utf8(
        sitebuild()
            .args(["completions", "bash"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let out = Command::new("bash")
        .args([
            "-c",
            &format!(
                "{script}\nCOMP_WORDS=(sitebuild dep); COMP_CWORD=1; COMP_LINE='sitebuild dep'; COMP_POINT=13; \
                 _sitebuild sitebuild dep sitebuild; printf '%s\\n' \"${{COMPREPLY[@]}}\""
            ),
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l == "deploy"),
        "bash completion of `sitebuild dep`: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    sitebuild()
        .args(["completions", "tcsh"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("possible values"));
}

#[test]
fn man_page_is_roff_and_lists_the_commands() {
    let out = sitebuild().arg("man").assert().success();
    let page = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(page.contains(".TH sitebuild 1"), "{page}");
    for word in ["deploy", "rollback", "init", "completions", "\\-\\-dir"] {
        assert!(page.contains(word), "man page lacks {word}");
    }
    // man itself formats it without warnings, when installed.
    if crate::common::have("man") {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sitebuild.1");
        std::fs::write(&file, &page).unwrap();
        let out = Command::new("man")
            .arg("--warnings")
            .arg("-l")
            .arg(&file)
            .env("MANWIDTH", "80")
            .env("MAN_KEEP_FORMATTING", "0")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("sitebuild"));
    }
    // Hidden from --help (it is for packagers), but documented in the README.
    sitebuild()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("completions"))
        .stdout(predicate::str::contains(" man ").not());
}

#[test]
fn no_color_output_has_no_escape_sequences() {
    // sitebuild's own output has no colour; clap's (help, usage errors) honours NO_COLOR even
    // when colour is forced.
    let out = sitebuild()
        .args(["deploy", "--bogus"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "usage error");
    assert!(
        !out.stderr.contains(&0x1b),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every file the code embeds (`include_str!`/`include_bytes!`) is in the crate `cargo
/// package` makes, so `cargo install sitebuild` from crates.io compiles.
#[test]
fn the_published_crate_holds_every_embedded_file() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO"))
        .current_dir(root)
        .args(["package", "--list", "--locked", "--allow-dirty"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo package --list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: std::collections::BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let mut embedded = Vec::new();
    let mut dirs = vec![root.join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for macro_name in ["include_str!(\"", "include_bytes!(\""] {
                for (i, _) in text.match_indices(macro_name) {
                    let rest = &text[i + macro_name.len()..];
                    let rel = &rest[..rest.find('"').unwrap()];
                    let file = std::path::absolute(path.parent().unwrap().join(rel)).unwrap();
                    let file = file
                        .components()
                        .fold(std::path::PathBuf::new(), |mut p, c| {
                            if c == std::path::Component::ParentDir {
                                p.pop();
                            } else {
                                p.push(c);
                            }
                            p
                        });
                    embedded.push(
                        file.strip_prefix(root)
                            .unwrap()
                            .to_string_lossy()
                            .replace('\\', "/"),
                    );
                }
            }
        }
    }
    assert!(
        embedded.len() >= 6,
        "found the embedded files: {embedded:?}"
    );
    let missing: Vec<&String> = embedded.iter().filter(|f| !listed.contains(*f)).collect();
    assert!(
        missing.is_empty(),
        "embedded but not packaged (add them to `include` in Cargo.toml): {missing:?}"
    );
}
