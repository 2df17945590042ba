//! Previews (`--preview NAME`): a second, labelled instance of a project that serves other
//! content beside production, e.g. one per pull request.
//!
//! A preview is its own instance `<project>-preview-<NAME>` (`Config::build` renames it), so it
//! has its own edge, network, lock and site containers and goes through the same health-gated
//! switch; it runs the project's images (`Config::image_repo`), so identical content is one
//! image. Without `preview_domain` it gets a free port in 20000-29999 on `bind` (kept across its
//! redeploys);
//! with it, `<NAME>.<preview_domain>` like `domains`. The edge carries `preview-of` and
//! `preview` labels: the engine is the list of previews (`status`, `preview_ttl`).

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};

use crate::config::{Config, Target};
use crate::engine::{ContainerInfo, Engine};
use crate::naming::{labels, roles};
use crate::ui::Ui;

use super::edge;

/// One preview of a project as the engine shows it.
#[derive(Debug, Clone)]
pub(crate) struct PreviewInfo {
    pub(crate) label: String,
    pub(crate) instance: String,
    /// Where it answers (the edge's URL label, written when the edge was made).
    pub(crate) url: String,
    /// When its live site container started (its last deploy), if one runs.
    pub(crate) deployed: Option<SystemTime>,
}

impl PreviewInfo {
    /// Time since the preview's last deploy (None: nothing deployed, or a clock before it).
    pub(crate) fn age(&self) -> Option<Duration> {
        self.deployed
            .and_then(|t| SystemTime::now().duration_since(t).ok())
    }
}

/// Before a preview deploy: refuse what cannot work, and give the config its port (the one
/// its edge already has, or a free one). Production must exist: a preview is of something.
pub(crate) async fn prepare(engine: &Engine, cfg: &Config) -> Result<Config> {
    let Some(preview) = &cfg.preview else {
        return Ok(cfg.clone());
    };
    if cfg.target != Target::Local {
        bail!(
            "--preview {}: previews run on the local target only (target = swarm from {}); \
             deploy the preview with --target local",
            preview.label,
            cfg.origin_of("target")
        );
    }
    let production = engine
        .containers_with_labels(&[(labels::PROJECT, &preview.of), (labels::ROLE, roles::SITE)])
        .await?;
    if !production.iter().any(ContainerInfo::is_running) {
        bail!(
            "--preview {}: project {:?} has no production deployment on this engine ({}); \
             deploy production first (`sitebuild deploy` without --preview)",
            preview.label,
            preview.of,
            engine.host()
        );
    }
    if cfg.port != 0 || !cfg.domains.is_empty() {
        return Ok(cfg.clone());
    }
    let port = match edge::find(engine, &cfg.name).await? {
        Some(existing) => existing
            .label(labels::ADDRESS)
            .and_then(|a| a.split(',').next())
            .and_then(|a| a.parse::<SocketAddr>().ok())
            .map(|a| a.port())
            .with_context(|| {
                format!(
                    "the preview's edge {} has no readable address label; `sitebuild down \
                     --preview {}` and deploy it again",
                    existing.name, preview.label
                )
            })?,
        None => free_port(engine, cfg).await?,
    };
    Ok(Config {
        port,
        ..cfg.clone()
    })
}

/// Previews without `preview_domain` are published on a port in this range.
pub(crate) const PORTS: std::ops::RangeInclusive<u16> = 20000..=29999;

/// A port in [`PORTS`] for a new preview: first the one its name hashes to, then the next
/// that no sitebuild edge on the engine has in its address label (the engine is the record,
/// also for a remote engine) and, with a local engine, that no program listens on.
async fn free_port(engine: &Engine, cfg: &Config) -> Result<u16> {
    use sha2::{Digest, Sha256};
    let used: std::collections::HashSet<u16> = engine
        .containers_with_labels(&[(labels::MANAGED, "true"), (labels::ROLE, roles::EDGE)])
        .await?
        .iter()
        .filter_map(|e| e.label(labels::ADDRESS))
        .flat_map(|a| a.split(','))
        .filter_map(|a| a.parse::<SocketAddr>().ok())
        .map(|a| a.port())
        .collect();
    let local = crate::engine::remote_host().is_none();
    let width = u32::from(PORTS.end() - PORTS.start()) + 1;
    let digest = Sha256::digest(cfg.name.as_bytes());
    let start = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % width;
    for i in 0..width {
        let port = PORTS.start() + u16::try_from((start + i) % width)?;
        if used.contains(&port) {
            continue;
        }
        if local && TcpListener::bind(SocketAddr::new(cfg.bind, port)).is_err() {
            continue;
        }
        return Ok(port);
    }
    bail!(
        "no free port for the preview in {}-{} on {}; take previews down (`sitebuild down \
         --preview NAME`), or give one with --port",
        PORTS.start(),
        PORTS.end(),
        engine.host()
    )
}

/// The previews of `project` (production's name), from their site containers' labels (the
/// same on a preview's own edge and on the shared edge).
pub(crate) async fn list(engine: &Engine, project: &str) -> Result<Vec<PreviewInfo>> {
    let sites = engine
        .containers_with_labels(&[(labels::PREVIEW_OF, project), (labels::ROLE, roles::SITE)])
        .await?;
    let mut by_instance: std::collections::BTreeMap<String, PreviewInfo> = Default::default();
    for c in &sites {
        let instance = c.label(labels::PROJECT).unwrap_or_default().to_string();
        let entry = by_instance
            .entry(instance.clone())
            .or_insert_with(|| PreviewInfo {
                label: c.label(labels::PREVIEW).unwrap_or_default().to_string(),
                url: c.label(labels::URL).unwrap_or("?").to_string(),
                instance,
                deployed: None,
            });
        if c.is_running() {
            entry.deployed = entry.deployed.max(started(c));
        }
    }
    let mut out: Vec<PreviewInfo> = by_instance.into_values().collect();
    out.sort_by(|a, b| a.label.cmp(&b.label));
    Ok(out)
}

fn started(c: &ContainerInfo) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(c.started_at.as_deref()?).ok()
}

/// `preview_ttl`: take down the previews of the project whose last deploy is older than it
/// (never the one being deployed). Failures are reported, never fatal: a deploy goes on.
pub(crate) async fn remove_stale(engine: &Engine, cfg: &Config, ui: &Ui) {
    if cfg.preview_ttl == 0 {
        return;
    }
    let ttl = Duration::from_secs(cfg.preview_ttl * 24 * 3600);
    let project = cfg.image_repo();
    let previews = match list(engine, project).await {
        Ok(p) => p,
        Err(e) => {
            ui.step(format!("could not list previews for preview_ttl: {e:#}"));
            return;
        }
    };
    for p in previews {
        if p.instance == cfg.name || p.age().is_none_or(|age| age < ttl) {
            continue;
        }
        ui.step(format!(
            "removing preview {} (last deployed more than {} days ago, preview_ttl)",
            p.label, cfg.preview_ttl
        ));
        if let Err(e) = down(engine, cfg, &p, ui).await {
            ui.step(format!("could not remove preview {}: {e:#}", p.label));
        }
    }
}

/// Take one preview down (its containers, network and volume; the images are production's).
pub(crate) async fn down(
    engine: &Engine,
    cfg: &Config,
    p: &PreviewInfo,
    ui: &Ui,
) -> Result<String> {
    let instance = Config {
        name: p.instance.clone(),
        ..cfg.clone()
    };
    super::down(engine, &instance, false, ui).await
}

/// `status` lines for the previews of the project `cfg` describes.
pub(crate) async fn status_lines(engine: &Engine, cfg: &Config) -> Result<Vec<String>> {
    let previews = list(engine, cfg.image_repo()).await?;
    Ok(previews
        .iter()
        .map(|p| {
            let age = p.age().map_or("nothing live".to_string(), |a| {
                format!(
                    "deployed {} ago",
                    humantime::format_duration(Duration::from_secs(a.as_secs()))
                )
            });
            format!("preview    {} at {} ({age})", p.label, p.url)
        })
        .collect())
}
