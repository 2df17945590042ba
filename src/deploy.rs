//! Running the site: start a hardened container from the image, gate on `/healthz`, replace the
//! older version. A failure before the new container is healthy leaves the old one serving.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::config::Config;
use crate::engine::{ContainerInfo, ContainerSpec, Engine, labels};
use crate::http;
use crate::image::Prepared;
use crate::render::CONTAINER_PORT;
use crate::ui::Ui;

/// Role label of site containers.
pub const ROLE_SITE: &str = "site";
/// Role label of the short-lived container that proves a new image healthy.
pub const ROLE_CANARY: &str = "canary";

/// The site containers of a project (any state), sorted by name.
pub async fn site_containers(engine: &Engine, name: &str) -> Result<Vec<ContainerInfo>> {
    engine
        .containers_with_labels(&[(labels::PROJECT, name), (labels::ROLE, ROLE_SITE)])
        .await
}

/// `bind:port` as recorded on a container.
pub fn address_of(config: &Config) -> String {
    SocketAddr::new(config.bind, config.port).to_string()
}

/// What [`up`] did.
#[derive(Debug, Clone)]
pub enum UpOutcome {
    /// The live container already runs this fingerprint on this address and is healthy.
    Unchanged { container: String },
    Started {
        container: String,
        replaced: Vec<String>,
        took: Duration,
    },
}

/// Make the project's site run `prepared`'s image on the configured address.
pub async fn up(engine: &Engine, p: &Prepared, ui: &Ui) -> Result<UpOutcome> {
    let cfg = &p.config;
    let address = address_of(cfg);
    let existing = site_containers(engine, &cfg.name).await?;

    if let Some(live) = existing.iter().find(|c| {
        c.is_running()
            && c.label(labels::FINGERPRINT) == Some(p.fingerprint.as_str())
            && c.label(labels::ADDRESS) == Some(address.as_str())
    }) && probe(cfg.probe_addr(), Duration::from_secs(2))
        .await
        .is_ok()
    {
        // Leftovers from an interrupted run are removed; the live one is untouched.
        for other in existing.iter().filter(|c| c.id != live.id) {
            engine.remove(&other.id).await?;
        }
        return Ok(UpOutcome::Unchanged {
            container: live.name.clone(),
        });
    }

    let started = Instant::now();
    // Containers of ours holding this address must stop before the new one can bind it
    // (a plain replace); anything else on the port is somebody else's and is an error.
    let (on_address, others): (Vec<&ContainerInfo>, Vec<&ContainerInfo>) = existing
        .iter()
        .partition(|c| c.is_running() && c.label(labels::ADDRESS) == Some(address.as_str()));
    if on_address.is_empty() {
        if let Err(e) = check_port_free(cfg) {
            let holders = engine
                .containers_with_labels(&[(labels::MANAGED, "true"), (labels::ADDRESS, &address)])
                .await
                .unwrap_or_default();
            if let Some(h) = holders.iter().find(|h| h.is_running()) {
                return Err(e.context(format!(
                    "{address} is held by another sitebuild project, `{}` (container {}); stop it with \
                     `sitebuild down` in that project, or use another port",
                    h.label(labels::PROJECT).unwrap_or("?"),
                    h.name
                )));
            }
            return Err(e);
        }
    }

    let name = format!("{}-{}-{}", cfg.name, p.short(), unique_suffix());
    let spec = site_spec(p, &name, ROLE_SITE, (cfg.bind.to_string(), cfg.port));

    if !on_address.is_empty() {
        // The old version holds the port. Prove the new image healthy on a spare loopback port
        // first, so a broken version never stops the live one.
        let spare = spare_port()?;
        let canary = site_spec(
            p,
            &format!("{name}-canary"),
            ROLE_CANARY,
            ("127.0.0.1".into(), spare),
        );
        ui.detail(format!(
            "health-checking {} on 127.0.0.1:{spare}",
            canary.name
        ));
        let canary_id = engine.create(&canary).await?;
        let gate = async {
            engine.start(&canary_id).await?;
            wait_healthy(
                engine,
                &canary_id,
                SocketAddr::from(([127, 0, 0, 1], spare)),
                Duration::from_secs(cfg.health_timeout),
            )
            .await
        }
        .await;
        engine.remove(&canary_id).await?;
        gate.with_context(|| {
            format!(
                "{name} did not become healthy; the live version was not touched and still serves"
            )
        })?;
    }

    let new_id = engine.create(&spec).await?;
    for old in &on_address {
        ui.detail(format!("stopping {} to free {address}", old.name));
        engine.stop(&old.id, Duration::from_secs(5)).await?;
    }

    let result = async {
        engine.start(&new_id).await.with_context(|| {
            format!("the new container could not start on {address} (check that the port is free)")
        })?;
        wait_healthy(
            engine,
            &new_id,
            cfg.probe_addr(),
            Duration::from_secs(cfg.health_timeout),
        )
        .await
    }
    .await;

    if let Err(err) = result {
        // Roll back: the old version serves again, the new container goes away.
        let _ = engine.remove(&new_id).await;
        for old in &on_address {
            let restarted = async {
                engine.start(&old.id).await?;
                wait_healthy(
                    engine,
                    &old.id,
                    cfg.probe_addr(),
                    Duration::from_secs(cfg.health_timeout),
                )
                .await
            }
            .await;
            if let Err(e) = restarted {
                ui.step(format!("warning: could not restart {}: {e:#}", old.name));
            }
        }
        let kept = if on_address.is_empty() {
            String::new()
        } else {
            " (the previous version was restarted and serves again)".to_string()
        };
        return Err(err.context(format!("{name} did not become healthy{kept}")));
    }

    let mut replaced = Vec::new();
    for old in on_address.iter().chain(others.iter()) {
        engine.remove(&old.id).await?;
        replaced.push(old.name.clone());
    }
    Ok(UpOutcome::Started {
        container: name,
        replaced,
        took: started.elapsed(),
    })
}

/// A hardened site container for `p`'s image.
fn site_spec(p: &Prepared, name: &str, role: &str, publish: (String, u16)) -> ContainerSpec {
    let cfg = &p.config;
    ContainerSpec {
        name: name.to_string(),
        image: p.tag(),
        labels: HashMap::from([
            (labels::MANAGED.to_string(), "true".to_string()),
            (labels::PROJECT.to_string(), cfg.name.clone()),
            (labels::ROLE.to_string(), role.to_string()),
            (labels::FINGERPRINT.to_string(), p.fingerprint.clone()),
            (
                labels::ADDRESS.to_string(),
                address_label(&publish.0, publish.1),
            ),
        ]),
        publish: Some((publish.0, publish.1, CONTAINER_PORT)),
        user: crate::context::RUN_AS.to_string(),
        memory_bytes: 256 * 1024 * 1024,
        pids_limit: 256,
        entrypoint: None,
        cmd: None,
        network_disabled: false,
        restart: role == ROLE_SITE,
    }
}

fn address_label(ip: &str, port: u16) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port).to_string(),
        Err(_) => format!("{ip}:{port}"),
    }
}

/// A loopback port nobody listens on right now.
fn spare_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("cannot find a free loopback port")?;
    Ok(l.local_addr()?.port())
}

/// Six hex digits to keep container names unique across runs.
pub fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
        .unwrap_or(0);
    format!("{:06x}", (nanos ^ std::process::id()) & 0xff_ffff)
}

/// Refuse early, with the key to change, when another program holds the port.
fn check_port_free(cfg: &Config) -> Result<()> {
    let addr = SocketAddr::new(cfg.bind, cfg.port);
    match TcpListener::bind(addr) {
        Ok(listener) => {
            drop(listener);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => bail!(
            "{addr} is already in use by another program; choose another port with --port, \
             SITEBUILD_PORT or `port` in sitebuild.toml (the port now comes from {})",
            cfg.origin
                .get("port")
                .map(String::as_str)
                .unwrap_or("the default, 8080")
        ),
        // e.g. binding a non-local address: let the engine decide.
        Err(_) => Ok(()),
    }
}

/// GET /healthz once.
pub async fn probe(addr: SocketAddr, timeout: Duration) -> Result<http::Response> {
    let resp = tokio::task::spawn_blocking(move || http::get(addr, "/healthz", &[], timeout))
        .await
        .context("probe task failed")??;
    if resp.status != 200 {
        bail!("GET /healthz answered {}", resp.status);
    }
    Ok(resp)
}

/// Wait until the container answers 200 on /healthz, fail fast if it exits.
pub async fn wait_healthy(
    engine: &Engine,
    id: &str,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last;
    loop {
        let info = engine.container(id).await?;
        if !info.is_running() && info.state != "created" {
            let logs = engine.logs_tail(id, 20).await;
            bail!(
                "the container stopped ({}, exit code {}) before answering /healthz; its last output:\n{}",
                info.state,
                info.exit_code.unwrap_or(-1),
                logs.trim_end()
            );
        }
        match probe(addr, Duration::from_secs(1)).await {
            Ok(_) => return Ok(()),
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() >= deadline {
            let logs = engine.logs_tail(id, 20).await;
            bail!(
                "no 200 from http://{addr}/healthz within {} s (health_timeout); last probe: {last}; container output:\n{}",
                timeout.as_secs(),
                logs.trim_end()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
