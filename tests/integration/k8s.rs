//! The Kubernetes manifests sitebuild renders are valid Kubernetes objects: they are written to a
//! temp dir and checked offline with `kubernetes-validate` (`PyPI`), strictly (unknown fields are
//! errors) against the schemas it bundles for one Kubernetes version. A deliberately broken
//! manifest is rejected by the same check, so a green run means something.
//!
//! kubernetes-validate missing: under CI=true the test fails (scripts/test.sh installs it);
//! elsewhere it is skipped with a note.

use std::path::{Path, PathBuf};
use std::process::Command;

use sitebuild::k8s::{self, K8sOptions};

/// The Kubernetes version the manifests are validated against: the oldest minor still supported
/// upstream, so they work on every supported cluster. kubernetes-validate bundles schemas for
/// 1.25 up to its own version (1.37.0 bundles 1.25.0-1.37.0).
const K8S_VERSION: &str = "1.35.0";

const VALIDATOR: &str = "kubernetes-validate";

/// True when kubernetes-validate runs. Missing: panics under CI=true, else notes the skip.
fn validator_ready() -> bool {
    let ok = Command::new(VALIDATOR)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but `{VALIDATOR} --version` does not run: the Kubernetes manifests cannot \
             be validated. scripts/test.sh installs it (python3 -m pip install kubernetes-validate)."
        );
        eprintln!(
            "SKIPPED: {VALIDATOR} not installed (python3 -m pip install kubernetes-validate; scripts/test.sh installs it)"
        );
    }
    ok
}

/// Validate `files` strictly against [`K8S_VERSION`]. Ok(output) only when the tool exits 0 AND
/// every file has a resource that was actually checked: kubernetes-validate only warns (exit 0)
/// when it has no schema for a kind or apiVersion, which must not count as a pass here.
fn validate(files: &[PathBuf]) -> Result<String, String> {
    let out = Command::new(VALIDATOR)
        .args(["--kubernetes-version", K8S_VERSION, "--strict"])
        .args(files)
        .output()
        .expect("run kubernetes-validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Err(format!("{}:\n{text}", out.status));
    }
    if let Some(warn) = text.lines().find(|l| l.starts_with("WARN")) {
        return Err(format!("not validated: {warn}\n{text}"));
    }
    let minor = K8S_VERSION.rsplit_once('.').unwrap().0;
    for file in files {
        let passed = format!("INFO {} passed for resource", file.display());
        let version = format!("against version {minor}");
        if !text
            .lines()
            .any(|l| l.starts_with(&passed) && l.ends_with(&version))
        {
            return Err(format!(
                "no resource of {} was validated against {minor}:\n{text}",
                file.display()
            ));
        }
    }
    Ok(text)
}

fn options() -> K8sOptions {
    K8sOptions::new(
        "my_site.web",
        "registry.example.com/my_site.web:3f2a9c1d0b7e",
        "3f2a9c1d0b7e",
    )
}

/// Render with the built-in templates and write the files into `dir`.
fn render_into(opts: &K8sOptions, dir: &Path) -> Vec<PathBuf> {
    let no_overrides = tempfile::tempdir().unwrap();
    let manifests = k8s::render(opts, no_overrides.path()).unwrap();
    k8s::write_all(&manifests, dir).unwrap()
}

#[test]
fn rendered_manifests_validate_and_broken_ones_do_not() {
    if !validator_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();

    // Without host: Deployment + Service.
    let plain = render_into(&options(), &dir.path().join("plain"));
    assert_eq!(plain.len(), 2);
    let out = validate(&plain).unwrap_or_else(|e| panic!("rendered manifests are invalid: {e}"));
    assert!(out.contains("deployment/my-site-web"), "{out}");
    assert!(out.contains("service/my-site-web"), "{out}");

    // With host and namespace: + Ingress.
    let full = render_into(
        &K8sOptions {
            host: Some("www.example.com".to_string()),
            namespace: Some("web".to_string()),
            replicas: 100,
            ..options()
        },
        &dir.path().join("full"),
    );
    assert_eq!(full.len(), 3);
    let out = validate(&full).unwrap_or_else(|e| panic!("rendered manifests are invalid: {e}"));
    assert!(out.contains("ingress/my-site-web"), "{out}");

    // The same check rejects broken manifests, derived from the real one.
    let deployment = std::fs::read_to_string(&plain[0]).unwrap();
    let broken = dir.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    let cases = [
        (
            "wrong-type.yaml",
            deployment.replace("replicas: 2", "replicas: \"two\""),
            "replicas",
        ),
        (
            "unknown-field.yaml",
            deployment.replace(
                "      automountServiceAccountToken: false",
                "      automountServiceAccountToken: false\n      runAsRoot: false",
            ),
            "runAsRoot",
        ),
        (
            "unknown-api.yaml",
            deployment.replace("apiVersion: apps/v1", "apiVersion: apps/v1beta9"),
            "apps/v1beta9",
        ),
    ];
    for (file, yaml, expected) in cases {
        assert_ne!(yaml, deployment, "{file}: the edit did not apply");
        let path = broken.join(file);
        std::fs::write(&path, yaml).unwrap();
        let err = validate(std::slice::from_ref(&path))
            .expect_err(&format!("{file} should have been rejected"));
        assert!(
            err.contains(expected),
            "{file}: expected {expected:?} in:\n{err}"
        );
    }
}
