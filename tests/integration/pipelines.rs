//! The CI pipelines are part of the product: they lint clean (and a broken copy does not),
//! the GitHub workflow really runs under act against the local engine and a local registry,
//! and the commands of GitLab's build job run here with GitLab's variables.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::*;

/// The pipeline tests that build on the engine run one at a time: two of them build this
/// repository's own site, and the classic builder shares the identical COPY layer between
/// them, so one test's `down --images` (which prunes untagged parents) could remove the layer
/// the other's build had just taken from the cache.
fn one_build_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static BUILDS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    BUILDS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

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
    let release = repo().join(".github/workflows/release.yml");
    let gitlab = repo().join(".gitlab-ci.yml");
    let action = repo().join("action.yml");
    let component = component_jobs();

    for wf in [&workflow, &release] {
        let (ok, out) = run(Command::new("actionlint").arg(wf));
        assert!(ok, "actionlint:\n{out}");
        let (ok, out) = run(Command::new("check-jsonschema")
            .args(["--builtin-schema", "vendor.github-workflows"])
            .arg(wf));
        assert!(ok, "{out}");
    }
    let (ok, out) = run(Command::new("check-jsonschema")
        .args(["--builtin-schema", "vendor.github-actions"])
        .arg(&action));
    assert!(ok, "{out}");
    for file in [&gitlab, &component.path().to_path_buf()] {
        let (ok, out) = run(Command::new("check-jsonschema")
            .args(["--builtin-schema", "vendor.gitlab-ci"])
            .arg(file));
        assert!(ok, "{}: {out}", file.display());
    }
    let (ok, out) = run(Command::new("shellcheck")
        .args([
            "scripts/ci/build.sh",
            "scripts/ci/deploy.sh",
            "scripts/action/install.sh",
            "scripts/action/run.sh",
            "scripts/tool-image.sh",
        ])
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
    // (The component's jobs document, as JSON: see component_jobs.)
    let bad = broken_copy(
        component.path(),
        "\"resource_group\":\"production\"",
        "\"resource_groups\":\"production\"",
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
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    let _builds = one_build_at_a_time();
    if !tools_ready(&["act", "docker-registry", "htpasswd", "curl", "git"]) {
        return;
    }
    let reg = Registry::start("sb", "secret");
    let name = unique_name("act");
    let image_repo = format!("127.0.0.1:{}/sbtest/{name}", reg.port);
    let event = tempfile::NamedTempFile::new().unwrap();
    // `before` = the first commit: the site changed, so the deploy job runs (the Action,
    // `uses: ./`, deploying the pushed image to this engine on a free port).
    std::fs::write(
        event.path(),
        format!(
            r#"{{"before": "{}", "ref": "refs/heads/main"}}"#,
            git_out(&["rev-list", "--max-parents=0", "HEAD"])
                .lines()
                .last()
                .unwrap_or_default()
        ),
    )
    .unwrap();
    let site_port = free_port();
    // The Action's cache step (actions/cache, skipped under act) is still fetched by act, and
    // github.com is not reachable here: a local stand-in of that repository.
    let cache_stub = cache_stub();
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
        .arg("--local-repository")
        .arg(format!("actions/cache@v5={}", cache_stub.path().display()))
        .args([
            "--secret",
            "SITEBUILD_DOCKER_HOST=unix:///var/run/docker.sock",
            "--var",
            &format!("SITE_PORT={site_port}"),
        ])
        .args([
            "--env",
            &format!("SITEBUILD_NAME={name}"),
            "--env",
            "SITEBUILD_UNDER_ACT=1",
        ])
        .args(["--env", &format!("CARGO_TARGET_DIR={}", target.display())])
        // The binary under test first on PATH: the build job and the Action use a sitebuild of
        // this commit when the runner has one (as a self-hosted runner would) instead of
        // compiling a release build from scratch (~5 min here).
        .args(["--env", &format!("PATH={}", path_with_binary_first())]));
    let pushed = tags(reg.port, &format!("sbtest/{name}"), "sb", "secret");
    // What the deploy job served, then its containers, network and volume, by label.
    let served = get(
        ([127, 0, 0, 1], site_port).into(),
        "/",
        &[],
        std::time::Duration::from_secs(5),
    );
    let containers = docker_lines(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=dev.sitebuild.project={name}"),
    ]);
    if !containers.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(containers.iter().map(String::as_str));
        let _ = docker(&args);
    }
    let _ = docker(&["network", "rm", &format!("{name}-net")]);
    let _ = docker(&["volume", "rm", "-f", &format!("{name}-edge")]);
    cleanup_images(&name, &image_repo);
    assert!(ok, "act failed:\n{out}");
    assert!(out.contains("Job succeeded"), "{out}");
    assert!(
        out.contains(&format!(
            "using {}: sitebuild",
            env!("CARGO_BIN_EXE_sitebuild")
        )),
        "the build job uses the binary under test from PATH (else it compiles a release build \
         for minutes):\n{out}"
    );
    for job in ["sitebuild/test", "sitebuild/build", "sitebuild/deploy"] {
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
    // The deploy job ran the Action with the pushed reference: pulled, deployed, served.
    assert!(
        out.contains(&format!("--image {image_repo}:{}", &fp[..12])),
        "the Action deploys the pushed image:\n{out}"
    );
    let served =
        served.unwrap_or_else(|e| panic!("the deployed site does not answer: {e:#}\n{out}"));
    assert_eq!(served.status, 200, "{out}");
}

/// The Action's cache step (actions/cache, skipped under act) is still fetched by act, and
/// github.com is not reachable here: a local stand-in of that repository.
fn cache_stub() -> tempfile::TempDir {
    let stub = tempfile::tempdir().unwrap();
    std::fs::write(
        stub.path().join("action.yml"),
        "name: cache stand-in\ndescription: never runs under act\nruns:\n  using: composite\n  steps:\n    - run: echo skipped\n      shell: bash\n",
    )
    .unwrap();
    stub
}

/// act printed `[sitebuild/<job> …] 🏁  Job succeeded` (it pads job names to one width).
fn job_succeeded(out: &str, job: &str) -> bool {
    out.lines().any(|l| {
        l.strip_prefix(&format!("[sitebuild/{job}"))
            .is_some_and(|rest| rest.starts_with([' ', ']']) && l.contains("🏁  Job succeeded"))
    })
}

/// PATH with the directory of the sitebuild binary under test first.
fn path_with_binary_first() -> String {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_sitebuild"));
    format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Python: the effective jobs of .gitlab-ci.yml as GitLab resolves them: the included component
/// (templates/sitebuild.yml, `$[[ inputs.x ]]` replaced by the include's inputs or the spec's
/// defaults) merged with this file's jobs of the same name (theirs win), then `extends`.
const RESOLVE_GITLAB: &str = r"
import json, re, sys
try:
    import yaml
    load_all = lambda t: list(yaml.safe_load_all(t))
except ImportError:
    from ruamel.yaml import YAML
    load_all = lambda t: list(YAML(typ='safe').load_all(t))
root = sys.argv[1]
local = load_all(open(root + '/.gitlab-ci.yml').read())[0]
comp = {}
for inc in local.get('include', []):
    text = open(root + '/' + inc['local']).read()
    spec = load_all(text)[0]['spec']['inputs']
    given = inc.get('inputs', {})
    def value(m):
        name = m.group(1)
        v = given.get(name, spec[name].get('default'))
        return str(v).lower() if isinstance(v, bool) else str(v)
    body = text.split('\n---\n', 1)[1]
    comp.update(load_all(re.sub(r'\$\[\[\s*inputs\.([\w-]+)\s*\]\]', value, body))[0])
def merge(a, b):
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for k, v in b.items():
            out[k] = merge(a.get(k), v)
        return out
    return b
def job(name):
    base = merge(comp.get(name, {}), local.get(name, {}))
    ext = base.get('extends', [])
    out = {}
    for e in ([ext] if isinstance(ext, str) else ext):
        out = merge(out, job(e))
    return merge(out, base)
if sys.argv[2] == '--component-jobs':
    print(json.dumps(load_all(open(root + '/templates/sitebuild.yml').read().split('\n---\n', 1)[1])[0]))
else:
    j = job(sys.argv[2])
    print(json.dumps({'script': j['script'], 'variables': j.get('variables', {})}))
";

fn resolve_gitlab(arg: &str) -> serde_json::Value {
    let out = Command::new("python3")
        .args(["-c", RESOLVE_GITLAB])
        .arg(repo())
        .arg(arg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The jobs document of the component (its second YAML document), as a file to validate.
fn component_jobs() -> tempfile::NamedTempFile {
    let f = tempfile::Builder::new().suffix(".yml").tempfile().unwrap();
    // JSON is YAML: the schema check reads it as the jobs document.
    std::fs::write(f.path(), resolve_gitlab("--component-jobs").to_string()).unwrap();
    f
}

/// A job of the pipeline as one bash script: its variables (the dind engine's DOCKER_* ones
/// left out: here the engine is the local one; CI/CD variables already set win over the YAML,
/// as in GitLab), then its `script:` lines.
fn gitlab_script(job: &str) -> String {
    let j = resolve_gitlab(job);
    let mut lines = Vec::new();
    for (k, v) in j["variables"].as_object().unwrap() {
        if k.starts_with("DOCKER_") {
            continue;
        }
        let v = v.as_str().unwrap_or_default();
        lines.push(format!("export {k}=\"${{{k}:-{v}}}\""));
    }
    for l in j["script"].as_array().unwrap() {
        lines.push(l.as_str().unwrap().to_string());
    }
    lines.join("\n")
}

#[test]
fn gitlab_build_and_deploy_job_commands_run_here() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    let _builds = one_build_at_a_time();
    if !tools_ready(&["docker-registry", "htpasswd", "curl", "git", "python3"]) {
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
    c.args(["-ec", &script]);
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
    c.args(["-ec", &script]);
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

    // review / stop-review in a merge request pipeline, against this engine: production first
    // (a preview is of something), then the review app answers at the URL of its dotenv report
    // (what environment:url shows), then stop-review removes it.
    let prod_port = free_port();
    let mut c = Command::new(env!("CARGO_BIN_EXE_sitebuild"));
    gitlab_env(&mut c);
    c.env("SITEBUILD_PORT", prod_port.to_string())
        .args(["deploy"]);
    let (ok, out) = run(&mut c);
    let mr = |c: &mut Command| {
        gitlab_env(c);
        c.env("CI_PIPELINE_SOURCE", "merge_request_event")
            .env("CI_MERGE_REQUEST_IID", "7")
            .env("SITEBUILD_DOCKER_HOST", "unix:///var/run/docker.sock")
            .env_remove("CI_COMMIT_BRANCH");
    };
    let review_env = repo().join("review.env");
    let review = if ok {
        let mut c = Command::new("bash");
        c.args(["-ec", &gitlab_script("review")]);
        mr(&mut c);
        run(&mut c)
    } else {
        (false, out)
    };
    let report = std::fs::read_to_string(&review_env).unwrap_or_default();
    let _ = std::fs::remove_file(&review_env);
    let url = report
        .lines()
        .find_map(|l| l.strip_prefix("SITEBUILD_URL="))
        .unwrap_or_default()
        .to_string();
    let port: u16 = url
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .trim_end_matches('/')
        .parse()
        .unwrap_or(0);
    let served = get(
        ([127, 0, 0, 1], port).into(),
        "/",
        &[],
        std::time::Duration::from_secs(5),
    );
    let mut c = Command::new("bash");
    c.args(["-ec", &gitlab_script("stop-review")]);
    mr(&mut c);
    let stopped = run(&mut c);
    let gone = get(
        ([127, 0, 0, 1], port).into(),
        "/",
        &[],
        std::time::Duration::from_secs(2),
    );
    let mut c = Command::new(env!("CARGO_BIN_EXE_sitebuild"));
    gitlab_env(&mut c);
    c.args(["down", "--images"]);
    let down = run(&mut c);
    assert!(review.0, "review job failed:\n{}", review.1);
    assert!(
        review.1.contains("--preview mr-7") || review.1.contains("mr-7"),
        "{}",
        review.1
    );
    assert!(
        url.starts_with("http://") && port >= 20000,
        "SITEBUILD_URL in review.env: {report}"
    );
    let served =
        served.unwrap_or_else(|e| panic!("the review app at {url} does not answer: {e:#}"));
    assert_eq!(served.status, 200);
    assert!(stopped.0, "stop-review failed:\n{}", stopped.1);
    assert!(
        gone.is_err(),
        "the review app still answers after stop-review"
    );
    assert!(down.0, "{}", down.1);
}

/// `act` on the workflow `sitebuild init` writes into a repository that has only a static site:
/// the Action taken from a copy of this checkout's action files (`--local-repository
/// sitebuild/sitebuild@v1=…`) and the
/// binary under test from `PATH`, this engine as `SITEBUILD_DOCKER_HOST`. A push to main deploys
/// production; a pull request `opened` deploys its preview (the URL answers with the pull
/// request's content); `closed` removes it; production serves throughout.
#[test]
fn init_workflow_deploys_previews_per_pull_request_under_act() {
    if std::env::var("SITEBUILD_UNDER_ACT").is_ok() {
        return;
    }
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    let _builds = one_build_at_a_time();
    if !tools_ready(&["act", "git"]) {
        return;
    }
    let name = unique_name("gen");
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("public");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(
        site.join("index.html"),
        "<!doctype html><p>PRODUCTION</p>\n",
    )
    .unwrap();
    let sb = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sitebuild"));
        c.arg("--dir")
            .arg(dir.path())
            .env("SITEBUILD_NAME", &name)
            .env("SITEBUILD_BASE_IMAGE", base_image())
            .env_remove("SITEBUILD_PORT")
            .env_remove("GITHUB_OUTPUT")
            .env_remove("GITHUB_STEP_SUMMARY");
        c
    };
    let (ok, out) = run(sb().args(["init", "--ci", "github"]));
    assert!(ok, "{out}");
    // Production's port in the file (a preview never takes the file's port).
    let toml = dir.path().join("sitebuild.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, format!("{text}port = {port}\n")).unwrap();
    let git = |args: &[&str]| {
        let (ok, out) = run(Command::new("git")
            .current_dir(dir.path())
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args));
        assert!(ok, "git {args:?}: {out}");
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "site"]);
    // The action as a repository of its own (what `uses: sitebuild/sitebuild@v1` fetches): act
    // copies a --local-repository, so not this whole checkout with its target/.
    let action = tempfile::tempdir().unwrap();
    for rel in ["action.yml", "Cargo.toml", "Cargo.lock"] {
        std::fs::copy(repo().join(rel), action.path().join(rel)).unwrap();
    }
    for sub in ["scripts/action", "src", "nginx", "deploy"] {
        copy_tree(&repo().join(sub), &action.path().join(sub));
    }
    let cache = cache_stub();
    let act = |event: &str, payload: &str| {
        let file = dir.path().join(format!("{event}.json"));
        std::fs::write(&file, payload).unwrap();
        run(Command::new("act")
            .current_dir(dir.path())
            .args([event, "-W", ".github/workflows/sitebuild.yml"])
            .args(["-P", "ubuntu-latest=-self-hosted", "-e"])
            .arg(&file)
            .arg("--local-repository")
            // The `uses:` line init writes (src/init.rs ACTION), served from the copy.
            .arg(format!(
                "sitebuild/sitebuild@v1={}",
                action.path().display()
            ))
            .arg("--local-repository")
            .arg(format!("actions/cache@v5={}", cache.path().display()))
            .args([
                "--secret",
                "SITEBUILD_DOCKER_HOST=unix:///var/run/docker.sock",
            ])
            .args(["--env", &format!("SITEBUILD_NAME={name}")])
            .args(["--env", &format!("SITEBUILD_BASE_IMAGE={}", base_image())])
            .args(["--env", "SITEBUILD_UNDER_ACT=1"])
            .args(["--env", &format!("PATH={}", path_with_binary_first())]))
    };
    let pr = |action: &str| {
        format!(r#"{{"action": "{action}", "number": 7, "pull_request": {{"number": 7}}}}"#)
    };
    let push = act("push", r#"{"ref": "refs/heads/main"}"#);
    std::fs::write(
        site.join("index.html"),
        "<!doctype html><p>PULL-REQUEST</p>\n",
    )
    .unwrap();
    let opened = act("pull_request", &pr("opened"));
    let preview_url = opened
        .1
        .lines()
        .find_map(|l| l.split("::set-output:: url=").nth(1))
        .map(|u| u.trim().to_string())
        .unwrap_or_default();
    let preview_port: u16 = preview_url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let get_body = |port: u16| {
        get(
            ([127, 0, 0, 1], port).into(),
            "/",
            &[],
            Duration::from_secs(5),
        )
        .map(|r| (r.status, r.text()))
    };
    let preview_live = get_body(preview_port);
    let production_live = get_body(port);
    let closed = act("pull_request", &pr("closed"));
    let preview_gone = get_body(preview_port).is_err();
    let production_after = get_body(port);
    let (down_ok, down) = run(sb().args(["down", "--images"]));

    assert!(push.0, "act push failed:\n{}", push.1);
    assert!(job_succeeded(&push.1, "deploy"), "{}", push.1);
    assert!(opened.0, "act pull_request opened failed:\n{}", opened.1);
    assert!(job_succeeded(&opened.1, "preview"), "{}", opened.1);
    assert!(opened.1.contains("--preview pr-7"), "{}", opened.1);
    let (status, body) = preview_live.unwrap_or_else(|e| {
        panic!(
            "the preview at {preview_url:?} does not answer: {e:#}\n{}",
            opened.1
        )
    });
    assert_eq!(status, 200);
    assert!(body.contains("PULL-REQUEST"), "{body}");
    let (status, body) = production_live.unwrap();
    assert!(status == 200 && body.contains("PRODUCTION"), "{body}");
    assert!(closed.0, "act pull_request closed failed:\n{}", closed.1);
    assert!(job_succeeded(&closed.1, "preview-down"), "{}", closed.1);
    assert!(
        preview_gone,
        "the preview still answers after the pull request closed"
    );
    let (status, body) = production_after.unwrap();
    assert!(status == 200 && body.contains("PRODUCTION"), "{body}");
    assert!(down_ok, "{down}");
}
