//! `sitebuild init` on a repository that knows nothing about sitebuild: a third-party-style
//! static site (`public/` with assets, no Rust, no sitebuild files).

use std::path::Path;
use std::process::Command;

use assert_cmd::prelude::*;
use predicates::prelude::*;

use crate::common::tools_ready;

fn sitebuild(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sitebuild"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("SITEBUILD_")) {
        c.env_remove(k);
    }
    c.env_remove("GITHUB_OUTPUT")
        .env_remove("GITHUB_STEP_SUMMARY")
        .arg("--dir")
        .arg(dir);
    c
}

/// A repository as someone else wrote it: a README, a static site in public/ with assets.
fn third_party_repo() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("acme-docs")
        .tempdir()
        .unwrap();
    for (path, body) in [
        ("README.md", "# ACME docs\n"),
        (
            "public/index.html",
            "<!doctype html><title>ACME</title><link rel=stylesheet href=css/site.css><h1>ACME</h1>",
        ),
        ("public/css/site.css", "h1 { color: #333 }\n"),
        (
            "public/img/logo.svg",
            "<svg xmlns='http://www.w3.org/2000/svg'/>\n",
        ),
        ("public/about/index.html", "<h1>About</h1>"),
    ] {
        let p = d.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    d
}

fn check(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn init_both_writes_config_and_pipelines_that_lint_clean() {
    let repo = third_party_repo();
    let out = sitebuild(repo.path())
        .args(["--json", "init", "--ci", "both"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(report["site_dir"], "public", "{report}");
    assert_eq!(report["generator"], "static files", "{report}");
    assert_eq!(report["build_command"], serde_json::Value::Null, "{report}");
    assert_eq!(
        report["files"],
        serde_json::json!([
            "sitebuild.toml",
            ".github/workflows/sitebuild.yml",
            ".gitlab-ci.yml"
        ])
    );
    assert!(
        report["next"].as_str().unwrap().contains("git add"),
        "{report}"
    );
    let toml = std::fs::read_to_string(repo.path().join("sitebuild.toml")).unwrap();
    assert!(toml.contains("site_dir = \"public\""), "{toml}");
    let workflow = repo.path().join(".github/workflows/sitebuild.yml");
    let gitlab = repo.path().join(".gitlab-ci.yml");
    assert!(workflow.is_file() && gitlab.is_file());

    // sitebuild itself accepts what init wrote: the config loads and renders.
    sitebuild(repo.path())
        .arg("render")
        .assert()
        .success()
        .stdout(predicate::str::contains("listen 8080"));

    if tools_ready(&["actionlint", "check-jsonschema"]) {
        check(
            Command::new("actionlint")
                .arg(&workflow)
                .current_dir(repo.path()),
        );
        check(
            Command::new("check-jsonschema")
                .args(["--builtin-schema", "vendor.github-workflows"])
                .arg(&workflow),
        );
        check(
            Command::new("check-jsonschema")
                .args(["--builtin-schema", "vendor.gitlab-ci"])
                .arg(&gitlab),
        );
    }

    // Again without --force: an error naming the file and --force; nothing changes.
    std::fs::write(repo.path().join("sitebuild.toml"), "name = \"mine\"\n").unwrap();
    sitebuild(repo.path())
        .args(["init", "--ci", "both"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("sitebuild.toml already exists"))
        .stderr(predicate::str::contains("--force"));
    assert_eq!(
        std::fs::read_to_string(repo.path().join("sitebuild.toml")).unwrap(),
        "name = \"mine\"\n"
    );
    // With --force: overwritten.
    sitebuild(repo.path())
        .args(["-q", "init", "--ci", "both", "--force"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(repo.path().join("sitebuild.toml")).unwrap(),
        toml
    );
}

#[test]
fn init_ci_selects_files_and_rejects_unknown_values() {
    let repo = third_party_repo();
    sitebuild(repo.path())
        .args(["init", "--ci", "gitlab"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "git add sitebuild.toml .gitlab-ci.yml",
        ));
    assert!(!repo.path().join(".github").exists());
    sitebuild(repo.path())
        .args(["init", "--ci", "bitbucket"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "possible values: github, gitlab, both",
        ));
}

#[test]
fn init_without_index_html_lists_where_it_looked() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("README.md"), "no site here\n").unwrap();
    std::fs::create_dir_all(d.path().join("public")).unwrap();
    std::fs::write(d.path().join("public/app.js"), "").unwrap();
    let assert = sitebuild(d.path()).arg("init").assert().code(1);
    let err = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    for place in [
        "public/index.html",
        "_site/index.html",
        "dist/index.html",
        "docs/index.html",
        "hugo.toml",
        "astro.config.mjs",
    ] {
        assert!(err.contains(place), "{place} missing from:\n{err}");
    }
    assert!(!d.path().join("sitebuild.toml").exists(), "nothing written");
}
