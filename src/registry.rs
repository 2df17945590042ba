//! Registry credentials for `sitebuild push` and `deploy --image`:
//! `SITEBUILD_REGISTRY_USER`/`_PASSWORD`, else the docker CLI's config (`$DOCKER_CONFIG/config.json`
//! or `~/.docker/config.json`: `auths`, a `credHelpers` entry or `credsStore`), else anonymous.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::engine::{Credentials, Engine};

/// The registry host of an image reference: `ghcr.io/o/r` → `ghcr.io`, `r` → `docker.io`.
pub(crate) fn registry_of(reference: &str) -> String {
    match reference.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first.to_string(),
        _ => "docker.io".to_string(),
    }
}

fn docker_config_path() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var("HOME")
        .ok()
        .map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// Tag `image` as `repo:tag` and push it; authentication failures say where the credentials
/// came from (or that there were none) and what to do.
pub(crate) async fn push(
    engine: &Engine,
    image: &str,
    repo: &str,
    tag: &str,
    creds: Option<&Credentials>,
) -> Result<()> {
    engine.tag(image, repo, tag).await?;
    let Err(e) = engine.push(repo, tag, creds).await else {
        return Ok(());
    };
    let registry = registry_of(repo);
    let hint = auth_hint(&e, &registry, creds, "push")
        .unwrap_or_else(|| format!("cannot push {repo}:{tag} to {registry}"));
    Err(e.context(hint))
}

/// Pull `reference` onto the engine with the credentials for its registry (the same sources as
/// `push`); authentication failures say where the credentials came from and what to do.
pub(crate) async fn pull(engine: &Engine, reference: &str) -> Result<()> {
    let registry = registry_of(reference);
    let creds = credentials_for(&registry)?;
    let Err(e) = engine.pull(reference, creds.as_ref()).await else {
        return Ok(());
    };
    let hint = auth_hint(&e, &registry, creds.as_ref(), "pull")
        .unwrap_or_else(|| format!("cannot pull {reference} from {registry}"));
    Err(e.context(hint))
}

/// When the registry refused the credentials (or wanted some): what to do about it.
fn auth_hint(
    e: &anyhow::Error,
    registry: &str,
    creds: Option<&Credentials>,
    verb: &str,
) -> Option<String> {
    let text = format!("{e:#}").to_ascii_lowercase();
    let auth = text.contains("unauthorized")
        || text.contains("authentication required")
        || text.contains("denied")
        || text.contains("no basic auth credentials");
    if !auth {
        return None;
    }
    Some(match creds {
        Some(c) => format!(
            "authentication failed for {registry} as {:?} (credentials from {}): check them, or the token's permission to {verb}",
            c.username, c.source
        ),
        None => format!(
            "{registry} wants credentials and none were found: set SITEBUILD_REGISTRY_USER and SITEBUILD_REGISTRY_PASSWORD, or `docker login {registry}`"
        ),
    })
}

/// Find credentials for `registry`.
pub(crate) fn credentials_for(registry: &str) -> Result<Option<Credentials>> {
    let user = std::env::var("SITEBUILD_REGISTRY_USER").ok();
    let pass = std::env::var("SITEBUILD_REGISTRY_PASSWORD").ok();
    match (user, pass) {
        (Some(u), Some(p)) => {
            return Ok(Some(Credentials {
                username: u,
                password: p,
                server: registry.to_string(),
                source: "SITEBUILD_REGISTRY_USER/SITEBUILD_REGISTRY_PASSWORD".into(),
            }));
        }
        (Some(_), None) | (None, Some(_)) => bail!(
            "set both SITEBUILD_REGISTRY_USER and SITEBUILD_REGISTRY_PASSWORD (only one is set)"
        ),
        (None, None) => {}
    }
    let Some(path) = docker_config_path() else {
        return Ok(None);
    };
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    let keys = if registry == "docker.io" {
        vec![
            "https://index.docker.io/v1/".to_string(),
            "docker.io".into(),
            "index.docker.io".into(),
        ]
    } else {
        vec![
            registry.to_string(),
            format!("https://{registry}"),
            format!("http://{registry}"),
        ]
    };
    let source = path.display().to_string();
    for key in &keys {
        if let Some(helper) = json["credHelpers"][key].as_str() {
            return helper_get(helper, key, &source).map(Some);
        }
    }
    for key in &keys {
        if let Some(auth) = json["auths"][key]["auth"].as_str() {
            let decoded = base64_decode(auth)
                .with_context(|| format!("{source}: the auth for {key} is not base64"))?;
            let (u, p) = decoded
                .split_once(':')
                .with_context(|| format!("{source}: the auth for {key} is not user:password"))?;
            return Ok(Some(Credentials {
                username: u.to_string(),
                password: p.to_string(),
                server: registry.to_string(),
                source,
            }));
        }
    }
    if let Some(store) = json["credsStore"].as_str() {
        return helper_get(store, &keys[0], &source).map(Some);
    }
    Ok(None)
}

/// Ask `docker-credential-<helper> get` for `server`.
fn helper_get(helper: &str, server: &str, source: &str) -> Result<Credentials> {
    use std::io::Write;
    let program = format!("docker-credential-{helper}");
    let mut child = std::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| {
            format!("{source} names the credential helper {program}, which cannot be run")
        })?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(server.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{program} get {server} failed: {}",
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{program} answered something that is not JSON"))?;
    Ok(Credentials {
        username: v["Username"].as_str().unwrap_or_default().to_string(),
        password: v["Secret"].as_str().unwrap_or_default().to_string(),
        server: server.to_string(),
        source: format!("{source} ({program})"),
    })
}

/// Standard base64, with or without padding (docker's config.json writes it padded).
fn base64_decode(s: &str) -> Result<String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(s.trim().trim_end_matches('='))
        .context("invalid base64")?;
    String::from_utf8(bytes).context("credentials are not UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_hosts() {
        assert_eq!(registry_of("ghcr.io/o/site"), "ghcr.io");
        assert_eq!(registry_of("127.0.0.1:5000/site"), "127.0.0.1:5000");
        assert_eq!(registry_of("localhost/site"), "localhost");
        assert_eq!(registry_of("me/site"), "docker.io");
        assert_eq!(registry_of("site"), "docker.io");
    }

    #[test]
    fn base64() {
        assert_eq!(base64_decode("dXNlcjpwYXNz").unwrap(), "user:pass");
        assert_eq!(base64_decode("YTpi").unwrap(), "a:b");
        assert_eq!(base64_decode("YTpiYw==").unwrap(), "a:bc");
        assert!(base64_decode("!!").is_err());
    }
}
