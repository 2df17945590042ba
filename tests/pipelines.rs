//! The CI pipelines are part of the product: they lint clean (and a broken copy does not),
//! the GitHub workflow really runs under act against the local engine and a local registry,
//! and the commands of GitLab's build job run here with GitLab's variables.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn broken_copy(src: &Path, from: &str, to: &str) -> tempfile::NamedTempFile {
    let text = std::fs::read_to_string(src).unwrap();
    assert!(text.contains(from), "{from:?} not in {}", src.display());
    let f = tempfile::Builder::new().suffix(".yml").tempfile().unwrap();
    std::fs::write(f.path(), text.replacen(from, to, 1)).unwrap();
    f
}

#[test]
fn pipelines_lint_clean_and_broken_copies_fail() {
    if !tools_ready(&["actionlint", "shellcheck", "check-jsonschema"]) {
        return;
    }
    let workflow = repo().join(".github/workflows/sitebuild.yml");
    let gitlab = repo().join(".gitlab-ci.yml");

    let (ok, out) = run(Command::new("actionlint").arg(&workflow));
    assert!(ok, "actionlint:\n{out}");
    let (ok, out) = run(Command::new("check-jsonschema")
        .args(["--builtin-schema", "vendor.github-workflows"])
        .arg(&workflow));
    assert!(ok, "{out}");
    let (ok, out) = run(Command::new("check-jsonschema")
        .args(["--builtin-schema", "vendor.gitlab-ci"])
        .arg(&gitlab));
    assert!(ok, "{out}");
    let (ok, out) = run(Command::new("shellcheck")
        .args(["scripts/ci/build.sh", "scripts/ci/deploy.sh"])
        .current_dir(repo()));
    assert!(ok, "{out}");

    // The checks can fail: a job needing a job that does not exist, a bad expression, a
    // misspelled key in GitLab.
    let bad = broken_copy(&workflow, "needs: test", "needs: tests");
    let (ok, out) = run(Command::new("actionlint").arg(bad.path()));
    assert!(
        !ok && out.contains("tests"),
        "actionlint must reject it:\n{out}"
    );
    let bad = broken_copy(
        &workflow,
        "runs-on: ubuntu-latest",
        "runs_on: ubuntu-latest",
    );
    let (ok, _) = run(Command::new("check-jsonschema")
        .args(["--builtin-schema", "vendor.github-workflows"])
        .arg(bad.path()));
    assert!(!ok, "the schema must reject runs_on");
    let bad = broken_copy(
        &gitlab,
        "resource_group: production",
        "resource_groups: production",
    );
    let (ok, _) = run(Command::new("check-jsonschema")
        .args(["--builtin-schema", "vendor.gitlab-ci"])
        .arg(bad.path()));
    assert!(!ok, "the schema must reject resource_groups");
}

fn tags(port: u16, repo: &str, user: &str, password: &str) -> Vec<String> {
    let out = Command::new("curl")
        .args([
            "-s",
            "-u",
            &format!("{user}:{password}"),
            &format!("http://127.0.0.1:{port}/v2/{repo}/tags/list"),
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let mut t: Vec<String> = v["tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    t.sort();
    t
}

fn git_out(args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo())
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Remove the images a pipeline run built for `name`, and the tags it pushed from this engine.
fn cleanup_images(name: &str, pushed_repo: &str) {
    let ids = docker_lines(&[
        "images",
        "-q",
        "--filter",
        &format!("label=dev.sitebuild.project={name}"),
    ]);
    let refs = docker_lines(&[
        "images",
        "--format",
        "{{.Repository}}:{{.Tag}}",
        pushed_repo,
    ]);
    let mut args = vec!["rmi", "-f"];
    args.extend(refs.iter().map(String::as_str));
    args.extend(ids.iter().map(String::as_str));
    if args.len() > 2 {
        let _ = docker(&args);
    }
}

#[test]
fn github_workflow_runs_under_act_and_pushes_to_a_local_registry() {
    if std::env::var("SITEBUILD_UNDER_ACT").is_ok() {
        eprintln!("inside an act run of this workflow: not starting act again");
        return;
    }
    if !engine_ready() || !tools_ready(&["act", "docker-registry", "htpasswd", "curl", "git"]) {
        return;
    }
    let reg = Registry::start("sb", "secret");
    let name = unique_name("act");
    let image_repo = format!("127.0.0.1:{}/sbtest/{name}", reg.port);
    let event = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        event.path(),
        format!(
            r#"{{"before": "{}", "ref": "refs/heads/main"}}"#,
            git_out(&["rev-parse", "HEAD~1"])
        ),
    )
    .unwrap();
    let target = repo().join("target/act");
    let (ok, out) = run(Command::new("act")
        .current_dir(repo())
        .args([
            "push",
            "-W",
            ".github/workflows/sitebuild.yml",
            "-P",
            "ubuntu-latest=-self-hosted",
            "-e",
        ])
        .arg(event.path())
        .args(["--var", &format!("SITEBUILD_IMAGE_REPO={image_repo}")])
        .args([
            "--var",
            "SITEBUILD_REGISTRY_USER=sb",
            "--secret",
            "SITEBUILD_REGISTRY_PASSWORD=secret",
        ])
        .args(["--var", &format!("SITEBUILD_BASE_IMAGE={}", base_image())])
        .args([
            "--env",
            &format!("SITEBUILD_NAME={name}"),
            "--env",
            "SITEBUILD_UNDER_ACT=1",
        ])
        .args(["--env", &format!("CARGO_TARGET_DIR={}", target.display())]));
    let pushed = tags(reg.port, &format!("sbtest/{name}"), "sb", "secret");
    cleanup_images(&name, &image_repo);
    assert!(ok, "act failed:\n{out}");
    assert!(out.contains("Job succeeded"), "{out}");
    for job in ["sitebuild/test", "sitebuild/build"] {
        assert!(
            out.contains(&format!("[{job}] 🏁  Job succeeded")),
            "{job} must run and pass:\n{out}"
        );
    }
    let fp = out
        .lines()
        .find_map(|l| l.split("::set-output:: fingerprint=").nth(1))
        .expect("the build step sets the fingerprint output")
        .trim()
        .to_string();
    let short_sha = git_out(&["rev-parse", "--short=7", "HEAD"]);
    let mut want = vec![
        fp[..12].to_string(),
        "latest".to_string(),
        format!("sha-{short_sha}"),
    ];
    want.sort();
    assert_eq!(pushed, want, "tags in the registry");
}

/// The `script:` lines of a job in .gitlab-ci.yml (via Python's YAML parser).
fn gitlab_script(job: &str) -> Vec<String> {
    let py = format!(
        "import json,sys\ntry:\n    import yaml\n    load=lambda f: yaml.safe_load(f)\nexcept ImportError:\n    from ruamel.yaml import YAML\n    load=lambda f: YAML(typ='safe').load(f)\nprint(json.dumps(load(open(sys.argv[1]))['{job}']['script']))\n"
    );
    let out = Command::new("python3")
        .args(["-c", &py])
        .arg(repo().join(".gitlab-ci.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn gitlab_build_and_deploy_job_commands_run_here() {
    if !engine_ready() || !tools_ready(&["docker-registry", "htpasswd", "curl", "git", "python3"]) {
        return;
    }
    let reg = Registry::start("gl", "token");
    let name = unique_name("gl");
    let image_repo = format!("127.0.0.1:{}/group/{name}", reg.port);
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_sitebuild"))
        .parent()
        .unwrap()
        .to_path_buf();
    let work = tempfile::tempdir().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let gitlab_env = |c: &mut Command| {
        c.current_dir(repo())
            .env("PATH", &path)
            .env("SITEBUILD_NAME", &name)
            .env("SITEBUILD_BASE_IMAGE", base_image())
            .env("CI", "true")
            .env("GITLAB_CI", "true")
            .env("CI_PIPELINE_SOURCE", "push")
            .env("CI_COMMIT_BRANCH", "main")
            .env("CI_DEFAULT_BRANCH", "main")
            .env("CI_COMMIT_BEFORE_SHA", git_out(&["rev-parse", "HEAD~1"]))
            .env(
                "CI_COMMIT_SHORT_SHA",
                git_out(&["rev-parse", "--short=8", "HEAD"]),
            )
            .env("CI_REGISTRY_IMAGE", &image_repo)
            .env("CI_REGISTRY_USER", "gl")
            .env("CI_REGISTRY_PASSWORD", "token")
            .env_remove("GITHUB_ACTIONS")
            .env_remove("GITHUB_OUTPUT")
            .env_remove("GITHUB_STEP_SUMMARY");
    };

    // build: exactly the job's script lines, one bash -e session, like the runner.
    let script = gitlab_script("build");
    let dotenv = repo().join("sitebuild.env");
    let mut c = Command::new("bash");
    c.args(["-ec", &script.join("\n")]);
    gitlab_env(&mut c);
    let (ok, out) = run(&mut c);
    let pushed = tags(reg.port, &format!("group/{name}"), "gl", "token");
    let report = std::fs::read_to_string(&dotenv).unwrap_or_default();
    let _ = std::fs::remove_file(&dotenv);
    cleanup_images(&name, &image_repo);
    assert!(ok, "gitlab build script failed:\n{out}");
    assert!(
        report.contains("SITEBUILD_CHANGED="),
        "dotenv report: {report}"
    );
    let short = git_out(&["rev-parse", "--short=8", "HEAD"]);
    assert!(
        pushed.contains(&format!("sha-{short}")) && pushed.contains(&"latest".to_string()),
        "{pushed:?}"
    );
    assert_eq!(pushed.len(), 3, "fingerprint, sha-…, latest: {pushed:?}");

    // deploy without SITEBUILD_DOCKER_HOST: skipped with a notice, success.
    let script = gitlab_script("deploy");
    let mut c = Command::new("bash");
    c.args(["-ec", &script.join("\n")]);
    gitlab_env(&mut c);
    c.env("SITEBUILD_CHANGED", "true")
        .env_remove("SITEBUILD_DOCKER_HOST")
        .current_dir(work.path());
    c.current_dir(repo());
    let (ok, out) = run(&mut c);
    assert!(ok, "{out}");
    assert!(
        out.contains("deploy skipped: no remote engine configured"),
        "{out}"
    );
}
