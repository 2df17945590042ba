//! The Docker engine, through bollard. The only module that imports bollard: everything else
//! talks in the plain types defined here.
//!
//! - `mod.rs`: connecting, error classification, registry credentials in the engine's terms
//! - [`container`]: containers, and the one hardening policy every container gets
//! - [`image`]: build, commit, tag, push, list, remove
//! - [`network`]: networks and volumes
//! - [`swarm`]: swarm state, services and their tasks

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bollard::Docker;

mod container;
mod image;
mod network;
pub(crate) mod swarm;

pub(crate) use container::{ContainerInfo, ContainerSpec, Publish};
pub(crate) use image::{BuildEvent, ImageConfig, ImageInfo};

/// Errors callers branch on.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EngineError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
}

/// A connected engine.
pub(crate) struct Engine {
    docker: Docker,
    host: String,
}

/// Credentials for one registry, as the engine receives them with a push or a service update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub(crate) username: String,
    pub(crate) password: String,
    pub(crate) server: String,
    /// Where they came from, for messages.
    pub(crate) source: String,
}

fn status_of(err: &bollard::errors::Error) -> Option<u16> {
    match err {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

fn classify(err: bollard::errors::Error, what: &str) -> anyhow::Error {
    match status_of(&err) {
        Some(404) => anyhow!(EngineError::NotFound(what.to_string())).context(err.to_string()),
        Some(409) => anyhow!(EngineError::Conflict(what.to_string())).context(err.to_string()),
        _ => anyhow!(err),
    }
}

fn docker_credentials(c: &Credentials) -> bollard::auth::DockerCredentials {
    bollard::auth::DockerCredentials {
        username: Some(c.username.clone()),
        password: Some(c.password.clone()),
        serveraddress: Some(c.server.clone()),
        ..Default::default()
    }
}

/// Is this error (anywhere in the chain) a 409 from the engine?
pub(crate) fn is_conflict(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        matches!(
            e.downcast_ref::<EngineError>(),
            Some(EngineError::Conflict(_))
        )
    })
}

/// Is this error (anywhere in the chain) a 404 from the engine?
pub(crate) fn is_not_found(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        matches!(
            e.downcast_ref::<EngineError>(),
            Some(EngineError::NotFound(_))
        )
    })
}

impl Engine {
    /// Connect like the docker CLI: `DOCKER_HOST`, else the local socket. Fails within a few
    /// seconds with the address and what to do when the engine does not answer.
    pub(crate) async fn connect() -> Result<Engine> {
        let host = std::env::var("DOCKER_HOST")
            .unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string());
        let hint = || {
            format!(
                "cannot reach the Docker engine at {host} (from DOCKER_HOST or the default socket): \
                 start the daemon (`sudo service docker start`), or point DOCKER_HOST at a running engine"
            )
        };
        let docker = Docker::connect_with_defaults().with_context(hint)?;
        let docker = docker.with_timeout(Duration::from_mins(10));
        // One request answers both "is it there?" and "which API version?".
        let docker =
            match tokio::time::timeout(Duration::from_secs(5), docker.negotiate_version()).await {
                Ok(Ok(d)) => d,
                Ok(Err(e)) => return Err(anyhow!(e).context(hint())),
                Err(_) => return Err(anyhow!("no answer within 5 s").context(hint())),
            };
        Ok(Engine { docker, host })
    }

    /// Does the engine answer (within 3 s)?
    pub(crate) async fn ping(&self) -> Result<()> {
        match tokio::time::timeout(Duration::from_secs(3), self.docker.ping()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(anyhow!(e)),
            Err(_) => bail!("the engine at {} did not answer within 3 s", self.host),
        }
    }

    pub(crate) fn host(&self) -> &str {
        &self.host
    }
}

/// The host of a remote `DOCKER_HOST` (`tcp://host:2376`, `ssh://user@host:22`); None for a
/// local socket or a loopback address.
pub(crate) fn remote_host() -> Option<String> {
    remote_host_of(&std::env::var("DOCKER_HOST").ok()?)
}

fn remote_host_of(raw: &str) -> Option<String> {
    let rest = raw
        .strip_prefix("tcp://")
        .or_else(|| raw.strip_prefix("ssh://"))
        .or_else(|| raw.strip_prefix("http://"))
        .or_else(|| raw.strip_prefix("https://"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split(']').next().unwrap_or(v6).to_string()
    } else {
        hostport.split(':').next().unwrap_or(hostport).to_string()
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    (!host.is_empty() && !loopback).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_hosts() {
        assert_eq!(
            remote_host_of("tcp://10.0.0.5:2376").as_deref(),
            Some("10.0.0.5")
        );
        assert_eq!(
            remote_host_of("ssh://deploy@web.example.com:22").as_deref(),
            Some("web.example.com")
        );
        assert_eq!(
            remote_host_of("tcp://[2001:db8::1]:2376").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(remote_host_of("tcp://127.0.0.1:2375"), None);
        assert_eq!(remote_host_of("ssh://me@localhost"), None);
        assert_eq!(remote_host_of("unix:///var/run/docker.sock"), None);
    }
}
