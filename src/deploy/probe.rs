//! Reaching the published site from where sitebuild runs: which address to probe, one GET,
//! and the one polling loop every wait in a deploy uses.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::config::Config;
use crate::http;

/// Where sitebuild reaches the published port to check health: `probe_host` when set; the
/// engine's host for a remote `DOCKER_HOST` (tcp://, ssh://); else the bind address (loopback
/// when bound to all interfaces).
pub(crate) fn probe_addr(cfg: &Config) -> Result<SocketAddr> {
    let host = match (&cfg.probe_host, crate::engine::remote_host()) {
        (Some(h), _) => h.clone(),
        (None, Some(h)) => h,
        (None, None) if cfg.bind.is_unspecified() => "127.0.0.1".to_string(),
        (None, None) => cfg.bind.to_string(),
    };
    let bracketed = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    format!("{bracketed}:{}", cfg.edge_http_port())
        .to_socket_addrs()
        .with_context(|| {
            format!(
                "cannot resolve {host}, where sitebuild checks the site's health (set `probe_host`)"
            )
        })?
        .next()
        .with_context(|| format!("{host} has no address (set `probe_host`)"))
}

/// GET `path` once, with extra headers; Ok only for 200.
pub(crate) async fn get_ok(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<http::Response> {
    let p = path.to_string();
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    let resp = tokio::task::spawn_blocking(move || {
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        http::get(addr, &p, &h, timeout)
    })
    .await
    .context("probe task failed")??;
    if resp.status != 200 {
        bail!("GET {path} answered {}", resp.status);
    }
    Ok(resp)
}

/// GET `path` once; Ok only for 200.
pub(crate) async fn probe(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<http::Response> {
    get_ok(addr, path, &[], timeout).await
}

/// Call `attempt` every `every` until it gives a value or `limit` has passed. An error from
/// `attempt` ends the wait at once (something broke, waiting will not help); Ok(None) means
/// "not yet". Returns None when the time ran out: the caller says what it waited for.
pub(crate) async fn poll_until<T>(
    limit: Duration,
    every: Duration,
    attempt: impl AsyncFnMut() -> Result<Option<T>>,
) -> Result<Option<T>> {
    poll_with(limit, |_| every, attempt).await
}

/// [`poll_until`] for what a deploy's edit → live waits on (a candidate's health, the switch):
/// every [`EAGER_EVERY`] during the first [`EAGER_FOR`] (such waits usually end within it),
/// then every [`SLOW_EVERY`]. The gate is the same, only answered sooner.
pub(crate) async fn poll_eagerly<T>(
    limit: Duration,
    attempt: impl AsyncFnMut() -> Result<Option<T>>,
) -> Result<Option<T>> {
    poll_with(limit, eager_cadence, attempt).await
}

pub(crate) const EAGER_EVERY: Duration = Duration::from_millis(10);
pub(crate) const EAGER_FOR: Duration = Duration::from_secs(1);
pub(crate) const SLOW_EVERY: Duration = Duration::from_millis(50);

/// The pause after an attempt made `elapsed` into an eager wait.
fn eager_cadence(elapsed: Duration) -> Duration {
    if elapsed < EAGER_FOR {
        EAGER_EVERY
    } else {
        SLOW_EVERY
    }
}

/// The loop of [`poll_until`]: `cadence(elapsed)` is the pause after an attempt.
async fn poll_with<T>(
    limit: Duration,
    cadence: impl Fn(Duration) -> Duration,
    mut attempt: impl AsyncFnMut() -> Result<Option<T>>,
) -> Result<Option<T>> {
    let started = Instant::now();
    let deadline = started + limit;
    loop {
        if let Some(v) = attempt().await? {
            return Ok(Some(v));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(cadence(now - started)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overrides;

    fn config(toml: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(crate::config::CONFIG_FILE), toml).unwrap();
        Config::load_with_env(dir.path(), &Overrides::default(), &Default::default()).unwrap()
    }

    #[test]
    fn probe_address() {
        if crate::engine::remote_host().is_none() {
            let c = config("bind = \"0.0.0.0\"");
            assert_eq!(probe_addr(&c).unwrap().to_string(), "127.0.0.1:8080");
        }
        let c = config("probe_host = \"127.0.0.2\"");
        assert_eq!(probe_addr(&c).unwrap().to_string(), "127.0.0.2:8080");
    }

    #[tokio::test]
    async fn polling_stops_at_a_value_an_error_or_the_limit() {
        let mut n = 0;
        let got = poll_until(
            Duration::from_secs(5),
            Duration::from_millis(1),
            async || {
                n += 1;
                Ok((n == 3).then_some(n))
            },
        )
        .await
        .unwrap();
        assert_eq!(got, Some(3));
        let none: Option<()> = poll_until(
            Duration::from_millis(20),
            Duration::from_millis(5),
            async || Ok(None),
        )
        .await
        .unwrap();
        assert!(none.is_none());
        let err = poll_until::<()>(
            Duration::from_secs(5),
            Duration::from_millis(1),
            async || bail!("broken"),
        )
        .await;
        assert!(err.is_err());
        assert_eq!(eager_cadence(Duration::ZERO), EAGER_EVERY);
        assert_eq!(eager_cadence(EAGER_FOR), SLOW_EVERY);
        // An eager wait gives up at its limit like any other.
        let started = Instant::now();
        let none: Option<()> = poll_eagerly(Duration::from_millis(30), async || Ok(None))
            .await
            .unwrap();
        assert!(none.is_none() && started.elapsed() < Duration::from_secs(1));
    }
}
