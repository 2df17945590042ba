//! The Docker engine, through bollard. The only module that imports bollard: everything else
//! talks in the plain types defined here.
//!
//! - `mod.rs`: connecting, error classification, registry credentials in the engine's terms
//! - [`container`]: containers, and the one hardening policy every container gets
//! - [`image`]: build, commit, tag, push, list, remove
//! - [`network`]: networks and volumes
//! - `import`: an image from a root filesystem tar, the engine's platform, user-owned directories
//! - [`swarm`]: swarm state, services and their tasks

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bollard::Docker;

mod container;
mod image;
mod import;
mod network;
pub(crate) mod swarm;

pub(crate) use container::{ContainerInfo, ContainerSpec, Publish};
pub(crate) use image::{ImageDetails, ImageInfo};

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
    /// How long one quick request (inspect, create, start, exec, copy, remove) may take.
    timeout: Duration,
}

/// Default for [`Engine`]'s per-request limit; `SITEBUILD_ENGINE_TIMEOUT` (seconds) changes it.
const REQUEST_TIMEOUT: Duration = Duration::from_mins(1);

/// `SITEBUILD_ENGINE_TIMEOUT`: seconds, 1-3600.
fn request_timeout(raw: Option<&str>) -> Result<Duration> {
    let Some(raw) = raw else {
        return Ok(REQUEST_TIMEOUT);
    };
    match raw.trim().parse::<u64>() {
        Ok(s @ 1..=3600) => Ok(Duration::from_secs(s)),
        _ => bail!(
            "invalid SITEBUILD_ENGINE_TIMEOUT={raw:?} (from the environment): expected seconds \
             from 1 to 3600 (how long one engine request may take; default {})",
            REQUEST_TIMEOUT.as_secs()
        ),
    }
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
        let timeout = request_timeout(std::env::var("SITEBUILD_ENGINE_TIMEOUT").ok().as_deref())?;
        Ok(Engine {
            docker,
            host,
            timeout,
        })
    }

    /// One engine request, bounded: an engine that stalls (overloaded, a hung daemon, a stuck
    /// storage driver) is an error naming the engine and the operation instead of a hang.
    pub(crate) async fn bounded<T>(
        &self,
        what: String,
        request: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        self.bounded_for(Duration::ZERO, what, request).await
    }

    /// [`Engine::bounded`] for a request that legitimately takes up to `extra` (a stop's grace).
    pub(crate) async fn bounded_for<T>(
        &self,
        extra: Duration,
        what: String,
        request: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let limit = self.timeout + extra;
        match tokio::time::timeout(limit, request).await {
            Ok(result) => result,
            Err(_) => bail!(
                "the Docker engine at {} did not answer within {} s: {what} (the engine is stuck or \
                 overloaded: check `docker info` and the daemon's log; the step was abandoned and the \
                 live site left as it was, so run the command again once the engine answers; \
                 SITEBUILD_ENGINE_TIMEOUT=<seconds> allows slower engines more time)",
                self.host,
                limit.as_secs()
            ),
        }
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
    fn request_timeouts() {
        assert_eq!(request_timeout(None).unwrap(), REQUEST_TIMEOUT);
        assert_eq!(request_timeout(Some("5")).unwrap(), Duration::from_secs(5));
        for bad in ["0", "-1", "abc", "3601"] {
            let err = request_timeout(Some(bad)).unwrap_err().to_string();
            assert!(err.contains("SITEBUILD_ENGINE_TIMEOUT"), "{err}");
            assert!(err.contains("1 to 3600"), "{err}");
        }
    }

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
