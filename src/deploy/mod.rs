//! Deploying a release, for every target: the types `up`, `deploy`, `rollback`, `status`
//! and `down` share, and the one place that dispatches on [`Target`].
//!
//! - [`local`]: this engine, an edge container in front of swapped site containers
//!   ([`edge`] is that container, [`lock`] serializes deploys of a project)
//! - [`swarm`]: a Docker Swarm service rolled over by swarm itself
//! - [`probe`]: reaching the published site, and the polling loop every wait uses
//! - [`preview`]: `--preview NAME` instances beside production (port, listing, `preview_ttl`)
//!
//! A new target is a module beside `local` and `swarm` and one arm in each `match` below.

pub(crate) mod certs;
pub(crate) mod edge;
mod edge_state;
pub(crate) mod front;
mod local;
pub(crate) mod lock;
pub(crate) mod preview;
pub(crate) mod probe;
pub(crate) mod renew_daemon;
pub(crate) mod renewer;
pub(crate) mod shared_edge;
mod swarm;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::config::{Config, Target};
use crate::engine::{Engine, ImageInfo};
use crate::image::Prepared;
use crate::naming::{self, labels};
use crate::ui::Ui;

/// An image to deploy: its fingerprint and tag.
#[derive(Debug, Clone)]
pub(crate) struct Release {
    pub(crate) fingerprint: String,
    pub(crate) image: String,
}

impl Release {
    pub(crate) fn short(&self) -> &str {
        crate::site::short(&self.fingerprint)
    }
}

impl From<&Prepared> for Release {
    fn from(p: &Prepared) -> Release {
        Release {
            fingerprint: p.fingerprint.clone(),
            image: p.tag(),
        }
    }
}

/// How to deploy: production, or `sitebuild watch`'s development mode.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeployOptions {
    /// Site containers get a writable copy of the image's site directory and config (a fresh
    /// volume filled from the image) so `watch` can sync files into them; the image is the same.
    pub(crate) dev: bool,
    /// With `dev`: the nginx.conf the container runs instead of the image's (rendered with
    /// `dev`: no descriptor cache, so synced files are served without a reload).
    pub(crate) dev_conf: Option<String>,
    /// `ip:port` of watch's live-reload server, proxied by the edge (dev only).
    pub(crate) livereload: Option<String>,
}

/// What a deploy did.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// This fingerprint is already live and healthy.
    Unchanged { container: String },
    Deployed {
        container: String,
        replaced: Option<String>,
        took: Duration,
    },
}

/// `bind:port` as recorded on the edge (`bind:http,bind:https` with TLS, and always on the shared
/// edge of projects with domains): a change of either port, or turning TLS on or off, makes a
/// new edge.
pub(crate) fn address_of(config: &Config) -> String {
    let http = SocketAddr::new(config.bind, config.edge_http_port()).to_string();
    if config.tls.is_on() || !config.domains.is_empty() {
        format!("{http},{}", SocketAddr::new(config.bind, config.https_port))
    } else {
        http
    }
}

/// Deploy a production release to the configured target (`up`, `deploy`, `rollback`).
pub(crate) async fn deploy_to(
    engine: &Engine,
    cfg: &Config,
    release: &Release,
    ui: &Ui,
) -> Result<Outcome> {
    match cfg.target {
        Target::Local => local::deploy(engine, cfg, release, &DeployOptions::default(), ui).await,
        Target::Swarm => swarm::deploy(engine, cfg, release, ui).await,
    }
}

/// `sitebuild watch`'s deploys: development mode, on this engine only.
pub(crate) async fn deploy_dev(
    engine: &Engine,
    cfg: &Config,
    release: &Release,
    opts: &DeployOptions,
    ui: &Ui,
) -> Result<Outcome> {
    require_local(cfg, "watch")?;
    local::deploy(engine, cfg, release, opts, ui).await
}

/// Refuse a command that serves on this engine only when the target is another.
pub(crate) fn require_local(cfg: &Config, command: &str) -> Result<()> {
    match cfg.target {
        Target::Local => Ok(()),
        Target::Swarm => bail!(
            "`{command}` serves on this engine only (target local; `target` is {:?} from {}): run \
             `sitebuild {command} --target local`, and `sitebuild deploy` for the swarm",
            cfg.target,
            cfg.origin_of("target")
        ),
    }
}

/// The fingerprint live on the configured target, if any.
async fn live_fingerprint(engine: &Engine, cfg: &Config) -> Result<Option<String>> {
    match cfg.target {
        Target::Local => local::live_fingerprint(engine, cfg).await,
        Target::Swarm => swarm::live_fingerprint(engine, cfg).await,
    }
}

/// `status` lines for the configured target; `current` is the project's fingerprint now.
pub(crate) async fn status(
    engine: &Engine,
    cfg: &Config,
    current: &Result<String>,
) -> Result<Vec<String>> {
    match cfg.target {
        Target::Local => local::status(engine, cfg, current).await,
        Target::Swarm => swarm::status(engine, cfg).await,
    }
}

/// `sitebuild maintenance`: Some(message) turns maintenance mode on, None off; returns a line.
pub(crate) async fn maintenance(
    engine: &Engine,
    cfg: &Config,
    message: Option<&str>,
    ui: &Ui,
) -> Result<String> {
    require_local(cfg, "maintenance")?;
    local::maintenance(engine, cfg, message, ui).await
}

/// The project's images, newest first, one entry per image id.
pub(crate) async fn project_images(engine: &Engine, project: &str) -> Result<Vec<ImageInfo>> {
    let mut images = engine
        .images_with_labels(&[(labels::PROJECT, project)])
        .await?;
    images.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
    images.dedup_by(|a, b| a.id == b.id);
    Ok(images)
}

/// Keep the newest `keep_images` images (and always the live one); remove the rest.
async fn prune_images(engine: &Engine, cfg: &Config, live_fp: &str, ui: &Ui) -> Result<()> {
    let images = project_images(engine, &cfg.name).await?;
    for img in images.iter().skip(cfg.keep_images as usize) {
        if img.labels.get(labels::FINGERPRINT).map(String::as_str) == Some(live_fp) {
            continue;
        }
        for tag in &img.tags {
            ui.detail(format!("pruning {tag} (keep_images = {})", cfg.keep_images));
            if let Err(e) = engine.remove_image(tag, false).await {
                ui.detail(format!("kept {tag}: {e:#}"));
            }
        }
    }
    Ok(())
}

/// Pick the image `rollback` goes to: a fingerprint prefix, or the one before the live one.
pub(crate) fn pick_rollback<'a>(
    images: &'a [ImageInfo],
    live_fp: Option<&str>,
    wanted: Option<&str>,
) -> Result<&'a ImageInfo> {
    let fp = |i: &ImageInfo| {
        i.labels
            .get(labels::FINGERPRINT)
            .cloned()
            .unwrap_or_default()
    };
    let list = || {
        images
            .iter()
            .map(|i| crate::site::short(&fp(i)).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(w) = wanted {
        if w.len() < 4 {
            bail!(
                "fingerprint {w:?} is too short; give at least 4 hex digits (kept: {})",
                list()
            );
        }
        let matches: Vec<&ImageInfo> = images.iter().filter(|i| fp(i).starts_with(w)).collect();
        return match matches.as_slice() {
            [one] => Ok(one),
            [] => bail!("no kept image has fingerprint {w}; kept: {}", list()),
            _ => bail!("fingerprint {w} is ambiguous; kept: {}", list()),
        };
    }
    let pos = images.iter().position(|i| Some(fp(i).as_str()) == live_fp);
    let candidate = match pos {
        Some(p) => images.get(p + 1),
        None => images.first(),
    };
    candidate.with_context(|| {
        format!(
            "there is no earlier image to roll back to (kept: {}; keep_images sets how many are kept)",
            list()
        )
    })
}

/// Roll back to the previous image, or the one given by fingerprint, through the same gate.
pub(crate) async fn rollback(
    engine: &Engine,
    cfg: &Config,
    wanted: Option<&str>,
    ui: &Ui,
) -> Result<(Release, Outcome)> {
    let images = project_images(engine, &cfg.name).await?;
    let live_fp = live_fingerprint(engine, cfg).await?;
    let target = pick_rollback(&images, live_fp.as_deref(), wanted)?;
    let fingerprint = target
        .labels
        .get(labels::FINGERPRINT)
        .cloned()
        .context("the image has no fingerprint label")?;
    let release = Release {
        image: format!("{}:{}", cfg.name, crate::site::short(&fingerprint)),
        fingerprint,
    };
    ui.step(format!("rolling back to {}", release.short()));
    let outcome = deploy_to(engine, cfg, &release, ui).await?;
    Ok((release, outcome))
}

/// Remove every container, the network and the volume of the project (and its images);
/// returns a one-line summary.
pub(crate) async fn down(engine: &Engine, cfg: &Config, images: bool, ui: &Ui) -> Result<String> {
    // The swarm service first: its tasks' containers would otherwise be restarted.
    let service = engine
        .service(&naming::service(&cfg.name))
        .await?
        .filter(|s| s.label(labels::PROJECT) == Some(cfg.name.as_str()));
    if service.is_some() {
        // Gone at once, so swarm restarts none of the task containers removed below.
        engine.remove_service(&naming::service(&cfg.name)).await?;
        ui.step(format!("removed swarm service {}", cfg.name));
    }
    // Its part of a shared edge first (the edge stops routing to it; the others keep serving).
    for shared in shared_edge::all(engine).await? {
        shared_edge::remove_project(engine, cfg, &shared, ui).await?;
    }
    let containers = engine
        .containers_with_labels(&[(labels::PROJECT, &cfg.name)])
        .await?;
    for c in &containers {
        engine.remove(&c.id).await?;
        ui.step(format!("removed container {}", c.name));
    }
    if engine.remove_network(&naming::network(&cfg.name)).await? {
        ui.step(format!("removed network {}", naming::network(&cfg.name)));
    }
    if engine
        .remove_volume(&naming::edge_volume(&cfg.name))
        .await?
    {
        ui.step(format!("removed volume {}", naming::edge_volume(&cfg.name)));
    }
    let mut removed_images = 0;
    if images {
        for img in engine
            .images_with_labels(&[(labels::PROJECT, &cfg.name)])
            .await?
        {
            engine.remove_image(&img.id, true).await?;
            removed_images += 1;
        }
    }
    Ok(format!(
        "{}: removed {} container(s){}",
        cfg.name,
        containers.len(),
        if images {
            format!(" and {removed_images} image(s)")
        } else {
            String::new()
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn img(fp: &str, created: i64) -> ImageInfo {
        ImageInfo {
            id: format!("sha256:{fp}"),
            tags: vec![],
            labels: HashMap::from([(labels::FINGERPRINT.to_string(), fp.to_string())]),
            created,
        }
    }

    #[test]
    fn rollback_picks_previous_or_prefix() {
        let images = vec![img("cccc1111", 3), img("bbbb2222", 2), img("aaaa3333", 1)];
        let fp = |i: &ImageInfo| i.labels[labels::FINGERPRINT].clone();
        assert_eq!(
            fp(pick_rollback(&images, Some("cccc1111"), None).unwrap()),
            "bbbb2222"
        );
        assert_eq!(
            fp(pick_rollback(&images, Some("bbbb2222"), None).unwrap()),
            "aaaa3333"
        );
        assert!(
            pick_rollback(&images, Some("aaaa3333"), None).is_err(),
            "nothing older"
        );
        assert_eq!(
            fp(pick_rollback(&images, None, Some("aaaa")).unwrap()),
            "aaaa3333"
        );
        assert!(pick_rollback(&images, None, Some("dddd")).is_err());
        assert!(
            pick_rollback(&images, None, Some("a")).is_err(),
            "too short"
        );
        let dup = vec![img("abcd1111", 2), img("abcd2222", 1)];
        let e = pick_rollback(&dup, None, Some("abcd"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ambiguous"), "{e}");
    }
}
