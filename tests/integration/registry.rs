//! `sitebuild push` against a real registry on loopback (Debian's docker-registry with htpasswd
//! auth): credentials from env and from a docker config.json, a wrong password, no credentials.

use std::time::Duration;

use crate::common::*;

fn b64(s: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = s.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn api(reg: &Registry, path: &str, accept: &str) -> Response {
    get(
        ([127, 0, 0, 1], reg.port).into(),
        path,
        &[
            ("Authorization", &format!("Basic {}", b64("sb:secret"))),
            ("Accept", accept),
        ],
        Duration::from_secs(5),
    )
    .unwrap()
}

#[test]
fn push_with_env_and_config_credentials_and_clear_auth_errors() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    if !tools_ready(&["docker-registry", "htpasswd"]) {
        return;
    }
    let reg = Registry::start("sb", "secret");
    let p = Project::new("push");
    let repo = format!("127.0.0.1:{}/sbtest/{}", reg.port, p.name);

    // Wrong password: a clear error naming the registry and where the credentials came from.
    let err = {
        let mut c = p.cmd(&["push", "--to", &repo]);
        c.env("SITEBUILD_REGISTRY_USER", "sb")
            .env("SITEBUILD_REGISTRY_PASSWORD", "wrong");
        let out = c.output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(
        err.contains(&format!("authentication failed for 127.0.0.1:{}", reg.port)),
        "{err}"
    );
    assert!(err.contains("SITEBUILD_REGISTRY_USER"), "{err}");

    // No credentials at all.
    let empty_config = tempfile::tempdir().unwrap();
    let mut c = p.cmd(&["push", "--to", &repo]);
    c.env("DOCKER_CONFIG", empty_config.path());
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("wants credentials and none were found"),
        "{err}"
    );

    // Env credentials: fingerprint tag + extra tags, JSON result.
    let mut c = p.cmd(&[
        "--json",
        "push",
        "--to",
        &repo,
        "--tag",
        "sha-1234567",
        "--tag",
        "latest",
    ]);
    c.env("SITEBUILD_REGISTRY_USER", "sb")
        .env("SITEBUILD_REGISTRY_PASSWORD", "secret");
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let fp = result["fingerprint"].as_str().unwrap().to_string();
    let tags = api(
        &reg,
        &format!("/v2/sbtest/{}/tags/list", p.name),
        "application/json",
    );
    assert_eq!(tags.status, 200, "{}", tags.text());
    let listed: serde_json::Value = serde_json::from_slice(&tags.body).unwrap();
    let mut listed: Vec<&str> = listed["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    listed.sort_unstable();
    let mut want = vec![&fp[..12], "latest", "sha-1234567"];
    want.sort_unstable();
    assert_eq!(listed, want);

    // The pushed image carries the fingerprint and OCI labels.
    let manifest = api(
        &reg,
        &format!("/v2/sbtest/{}/manifests/latest", p.name),
        "application/vnd.docker.distribution.manifest.v2+json",
    );
    let manifest: serde_json::Value = serde_json::from_slice(&manifest.body).unwrap();
    let digest = manifest["config"]["digest"].as_str().unwrap();
    let config = api(
        &reg,
        &format!("/v2/sbtest/{}/blobs/{digest}", p.name),
        "*/*",
    );
    let config: serde_json::Value = serde_json::from_slice(&config.body).unwrap();
    let labels = &config["config"]["Labels"];
    assert_eq!(labels["dev.sitebuild.fingerprint"], fp.as_str());
    assert!(
        labels["org.opencontainers.image.created"].is_string(),
        "{labels}"
    );
    assert_eq!(labels["org.opencontainers.image.title"], p.name.as_str());

    // Credentials from a docker config.json (`auths`), as `docker login` writes them.
    let docker_config = tempfile::tempdir().unwrap();
    std::fs::write(
        docker_config.path().join("config.json"),
        format!(
            r#"{{"auths": {{"127.0.0.1:{}": {{"auth": "{}"}}}}}}"#,
            reg.port,
            b64("sb:secret")
        ),
    )
    .unwrap();
    let mut c = p.cmd(&["push", "--to", &repo, "--tag", "from-config"]);
    c.env("DOCKER_CONFIG", docker_config.path());
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tags = api(
        &reg,
        &format!("/v2/sbtest/{}/tags/list", p.name),
        "application/json",
    );
    assert!(tags.text().contains("from-config"), "{}", tags.text());

    // Locally pushed tags are this project's images: cleaned up with them.
    for tag in ["latest", "sha-1234567", "from-config", &fp[..12]] {
        let _ = docker(&["rmi", &format!("{repo}:{tag}")]);
    }
}

#[test]
fn deploy_image_pulls_the_pushed_artifact_and_serves_it() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    if !tools_ready(&["docker-registry", "htpasswd"]) {
        return;
    }
    let reg = Registry::start("sb", "secret");
    let p = Project::new("pull");
    let repo = format!("127.0.0.1:{}/sbtest/{}", reg.port, p.name);
    let with_creds = |args: &[&str]| {
        let mut c = p.cmd(args);
        c.env("SITEBUILD_REGISTRY_USER", "sb")
            .env("SITEBUILD_REGISTRY_PASSWORD", "secret");
        c.output().unwrap()
    };

    // Build, edit one file and push: the pushed image is incremental (a second site layer
    // holding only the edit, on the first build's), and travels like any other.
    p.ok(&["build"]);
    std::fs::write(
        p.site("index.html"),
        "<!doctype html><p>pushed as an incremental layer</p>\n",
    )
    .unwrap();
    let out = with_creds(&["--json", "push", "--to", &repo]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pushed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let fp = pushed["fingerprint"].as_str().unwrap().to_string();
    let reference = format!("{repo}:{}", &fp[..12]);
    let layers =
        |image: &str| -> usize { inspect(image, "{{len .RootFS.Layers}}").parse().unwrap() };
    assert_eq!(
        layers(&format!("{}:{}", p.name, &fp[..12])),
        layers(&base_image()) + 2,
        "two site layers on the base"
    );

    // Nothing of it left on the engine: the deploy must pull it.
    let local: Vec<String> = docker_lines(&[
        "images",
        "--format",
        "{{.Repository}}:{{.Tag}}",
        "--filter",
        &format!("label=dev.sitebuild.project={}", p.name),
    ]);
    let mut args = vec!["rmi", "-f"];
    args.extend(local.iter().map(String::as_str));
    assert!(docker(&args).status.success(), "{local:?}");
    assert!(docker(&["image", "inspect", &reference]).status.code() != Some(0));

    // Without credentials the registry refuses: a clear error naming it.
    let empty_config = tempfile::tempdir().unwrap();
    let mut c = p.cmd(&["deploy", "--image", &reference]);
    c.env("DOCKER_CONFIG", empty_config.path());
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("wants credentials and none were found"),
        "{err}"
    );

    // With them: pulled, tagged <name>:<short>, health-gated, served.
    let out = with_creds(&["--json", "deploy", "--image", &reference]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deployed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(deployed["fingerprint"], fp.as_str(), "{deployed}");
    assert_eq!(
        deployed["image"],
        format!("{}:{}", p.name, &fp[..12]),
        "{deployed}"
    );
    assert_eq!(deployed["deployed"], true, "{deployed}");
    let original = std::fs::read(p.site("index.html")).unwrap();
    let r = p.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, original, "the pushed bytes are served");

    // The same artifact again: already live, no registry needed.
    let out = p.run(&["--json", "deploy", "--image", &reference]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["deployed"], false, "{again}");

    // A moving tag is refused before anything is pulled.
    let err = p.fails(&["deploy", "--image", &repo]);
    assert!(err.contains("REPO:<fingerprint>"), "{err}");

    // An image sitebuild did not build: an error naming it and the label.
    let foreign = format!("127.0.0.1:{}/sbtest/{}-foreign:abcd1234", reg.port, p.name);
    assert!(docker(&["tag", &base_image(), &foreign]).status.success());
    let err = p.fails(&["deploy", "--image", &foreign]);
    let _ = docker(&["rmi", &foreign]);
    assert!(
        err.contains(&foreign) && err.contains("dev.sitebuild.fingerprint"),
        "{err}"
    );
    // The site stays up.
    assert_eq!(p.get("/").status, 200);
    let _ = docker(&["rmi", &reference]);
}
