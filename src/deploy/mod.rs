//! The deploy state machine, shared by `up`, `deploy` and `rollback`:
//!
//! ```text
//! lock → edge ready → leftovers removed → start new site container (no host port)
//!      → /.sitebuild/candidate/healthz through the edge, naming it in X-Sitebuild-Candidate
//!        (resolved per request: no reload) → 200 within health_timeout?
//!          no  → remove it, error (the edge never changed; the live version never stopped)
//!          yes → edge switches live to it (nginx -t + graceful reload) → drain → remove old
//!      → prune old images → unlock
//! ```
//!
//! If sitebuild dies at any point the edge keeps serving whatever it was last switched to; the
//! next run removes the half-finished containers (site containers the edge does not point to)
//! and converges.

pub mod edge;
pub mod lock;
pub mod swarm;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::config::{Config, Target};
use crate::engine::{ContainerInfo, ContainerSpec, Engine, ImageInfo, labels};
use crate::http;
use crate::image::Prepared;
use crate::ui::Ui;

pub use edge::{Live, edge_name, network_name, volume_name};

/// Role label of site containers.
pub const ROLE_SITE: &str = "site";

/// An image to deploy: its fingerprint and tag.
#[derive(Debug, Clone)]
pub struct Release {
    pub fingerprint: String,
    pub image: String,
}

impl Release {
    pub fn short(&self) -> &str {
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
pub struct DeployOptions {
    /// Site containers get a writable site directory (a fresh volume filled from the image) so
    /// `watch` can sync files into them; the image is the same.
    pub dev: bool,
    /// `ip:port` of watch's live-reload server, proxied by the edge (dev only).
    pub livereload: Option<String>,
}

/// Label value of `dev.sitebuild.mode` on site containers.
fn mode_label(opts: &DeployOptions) -> &'static str {
    if opts.dev { "dev" } else { "production" }
}

/// What a deploy did.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// This fingerprint is already live and healthy.
    Unchanged { container: String },
    Deployed {
        container: String,
        replaced: Option<String>,
        took: Duration,
    },
}

/// `bind:port` as recorded on the edge.
pub fn address_of(config: &Config) -> String {
    SocketAddr::new(config.bind, config.port).to_string()
}

/// The site containers of a project (any state), sorted by name.
pub async fn site_containers(engine: &Engine, name: &str) -> Result<Vec<ContainerInfo>> {
    engine
        .containers_with_labels(&[(labels::PROJECT, name), (labels::ROLE, ROLE_SITE)])
        .await
}

/// Six hex digits to keep container names unique across runs.
pub fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
        .unwrap_or(0);
    format!(
        "{:06x}",
        (nanos ^ std::process::id().rotate_left(12)) & 0xff_ffff
    )
}

/// Test hook: `SITEBUILD_PAUSE_AT=<point>` stops here (so a test can SIGKILL the process at a
/// known point). Points: `after-start`, `after-candidate`, `after-switch`.
async fn pause_point(point: &str, ui: &Ui) {
    if std::env::var("SITEBUILD_PAUSE_AT").as_deref() == Ok(point) {
        ui.step(format!("paused at {point} (SITEBUILD_PAUSE_AT)"));
        tokio::time::sleep(Duration::from_secs(600)).await;
    }
}

/// Is `release` live and healthy already? Cheap: no lock, no changes.
async fn is_live(
    engine: &Engine,
    cfg: &Config,
    release: &Release,
    opts: &DeployOptions,
) -> Result<Option<String>> {
    if opts.livereload.is_some() {
        return Ok(None); // the edge config must be (re)written for this watch session
    }
    // One list for the whole project: the edge, the site containers, any leftovers.
    let all = engine
        .containers_with_labels(&[(labels::PROJECT, &cfg.name)])
        .await?;
    let role = |c: &&ContainerInfo, r: &str| c.label(labels::ROLE) == Some(r);
    let Some(edge) = all.iter().find(|c| role(c, edge::ROLE_EDGE)) else {
        return Ok(None);
    };
    if !edge.is_running() || edge.label(labels::ADDRESS) != Some(address_of(cfg).as_str()) {
        return Ok(None);
    }
    // One site container, running this fingerprint in this mode, and no lock: a candidate.
    let sites: Vec<&ContainerInfo> = all.iter().filter(|c| role(c, ROLE_SITE)).collect();
    let [site] = sites.as_slice() else {
        return Ok(None);
    };
    if !site.is_running()
        || site.label(labels::FINGERPRINT) != Some(release.fingerprint.as_str())
        || site.label(labels::MODE) != Some(mode_label(opts))
        || all.iter().any(|c| role(&c, lock::ROLE_LOCK))
    {
        return Ok(None);
    }
    // The edge's /healthz names the fingerprint it routes to (cheaper than reading its volume).
    let Ok(resp) = probe(cfg.probe_addr()?, "/healthz", Duration::from_secs(2)).await else {
        return Ok(None);
    };
    let routed = resp.header("x-sitebuild-live") == Some(release.short());
    Ok(routed.then(|| site.name.clone()))
}

/// Deploy a production release to the configured target (`up`, `deploy`, `rollback`).
pub async fn deploy_to(
    engine: &Engine,
    cfg: &Config,
    release: &Release,
    ui: &Ui,
) -> Result<Outcome> {
    match cfg.target {
        Target::Local => deploy(engine, cfg, release, &DeployOptions::default(), ui).await,
        Target::Swarm => swarm::deploy(engine, cfg, release, ui).await,
    }
}

/// Deploy `release` for `cfg`'s project: health-gated, zero-downtime, serialized by the lock.
pub async fn deploy(
    engine: &Engine,
    cfg: &Config,
    release: &Release,
    opts: &DeployOptions,
    ui: &Ui,
) -> Result<Outcome> {
    if let Some(container) = is_live(engine, cfg, release, opts).await? {
        return Ok(Outcome::Unchanged { container });
    }
    engine.ensure_base_image(&cfg.base_image).await?;
    lock::holding(
        engine,
        cfg,
        ui,
        deploy_locked(engine, cfg, release, opts, ui),
    )
    .await
}

async fn deploy_locked(
    engine: &Engine,
    cfg: &Config,
    release: &Release,
    opts: &DeployOptions,
    ui: &Ui,
) -> Result<Outcome> {
    let started = Instant::now();
    let edge = edge::ensure(engine, cfg, opts.livereload.clone(), ui).await?;
    let mut live = edge::read_live(engine, &edge).await?;
    if let Some(l) = &live {
        let running = engine
            .container(&l.container)
            .await
            .is_ok_and(|c| c.is_running());
        if !running {
            ui.step(format!(
                "the recorded live container {} is gone",
                l.container
            ));
            live = None;
        }
    }

    // Converge: anything that is not the live site is a leftover of an interrupted run.
    for c in site_containers(engine, &cfg.name).await? {
        if live.as_ref().is_none_or(|l| l.container != c.name) {
            ui.step(format!(
                "removing leftover {} from an interrupted deploy",
                c.name
            ));
            engine.remove(&c.id).await?;
        }
    }
    let live_mode_ok = match &live {
        Some(l) => engine
            .container(&l.container)
            .await
            .is_ok_and(|c| c.label(labels::MODE) == Some(mode_label(opts))),
        None => false,
    };
    if let Some(l) = &live
        && l.fingerprint == release.fingerprint
        && live_mode_ok
    {
        edge::apply(engine, cfg, &edge, Some(l)).await?;
        return Ok(Outcome::Unchanged {
            container: l.container.clone(),
        });
    }

    // The candidate route below needs the edge config of this version.
    edge::refresh(engine, cfg, &edge, live.as_ref()).await?;

    let name = format!("{}-{}-{}", cfg.name, release.short(), unique_suffix());
    let spec = site_spec(cfg, release, &name, opts);
    let new_id = engine.create(&spec).await?;
    let gate = async {
        engine.start(&new_id).await?;
        pause_point("after-start", ui).await;
        pause_point("after-candidate", ui).await;
        // Through the edge, which resolves the candidate by name: no reload needed.
        wait_healthy(
            engine,
            &new_id,
            edge.probe,
            &name,
            Duration::from_secs(cfg.health_timeout),
        )
        .await
    }
    .await;
    if let Err(err) = gate {
        let logs = engine.logs_tail(&new_id, 20).await;
        let _ = engine.remove(&new_id).await;
        let kept = match &live {
            Some(l) => format!(
                "; {} is still live and was never stopped",
                crate::site::short(&l.fingerprint)
            ),
            None => String::new(),
        };
        let logs = if logs.trim().is_empty() {
            String::new()
        } else {
            format!("\nlast output of {name}:\n{}", logs.trim_end())
        };
        return Err(err.context(format!("{name} did not become healthy{kept}{logs}")));
    }

    // Switch: from here on the new version serves.
    let new_live = Live {
        container: name.clone(),
        fingerprint: release.fingerprint.clone(),
    };
    edge::apply(engine, cfg, &edge, Some(&new_live)).await?;
    edge::wait_live(&edge, &release.fingerprint).await?;
    pause_point("after-switch", ui).await;

    let mut replaced = None;
    if let Some(old) = live {
        if cfg.drain > 0 {
            ui.detail(format!("draining {} for {} s", old.container, cfg.drain));
            tokio::time::sleep(Duration::from_secs(cfg.drain)).await;
        }
        engine.stop(&old.container, Duration::from_secs(10)).await?;
        engine.remove(&old.container).await?;
        replaced = Some(old.container);
    }
    prune_images(engine, cfg, &release.fingerprint, ui).await?;
    Ok(Outcome::Deployed {
        container: name,
        replaced,
        took: started.elapsed(),
    })
}

/// A hardened site container: on the private network only, no host port.
fn site_spec(cfg: &Config, release: &Release, name: &str, opts: &DeployOptions) -> ContainerSpec {
    ContainerSpec {
        name: name.to_string(),
        image: release.image.clone(),
        labels: HashMap::from([
            (labels::MANAGED.to_string(), "true".to_string()),
            (labels::PROJECT.to_string(), cfg.name.clone()),
            (labels::ROLE.to_string(), ROLE_SITE.to_string()),
            (labels::FINGERPRINT.to_string(), release.fingerprint.clone()),
            (labels::MODE.to_string(), mode_label(opts).to_string()),
        ]),
        publish: None,
        user: crate::context::RUN_AS.to_string(),
        memory_bytes: 256 * 1024 * 1024,
        pids_limit: 256,
        entrypoint: None,
        cmd: None,
        network_disabled: false,
        network: Some(network_name(&cfg.name)),
        binds: vec![],
        scratch_volume: opts.dev.then(|| crate::render::SITE_ROOT.to_string()),
        restart: true,
    }
}

/// GET `path` once; Ok only for 200.
pub async fn probe(addr: SocketAddr, path: &str, timeout: Duration) -> Result<http::Response> {
    probe_with(addr, path, None, timeout).await
}

/// [`probe`] with the header that names a candidate container to the edge.
async fn probe_with(
    addr: SocketAddr,
    path: &str,
    candidate: Option<&str>,
    timeout: Duration,
) -> Result<http::Response> {
    let p = path.to_string();
    let candidate = candidate.map(str::to_string);
    let resp = tokio::task::spawn_blocking(move || {
        let headers: Vec<(&str, &str)> = candidate
            .as_deref()
            .map(|c| vec![(edge::CANDIDATE_HEADER, c)])
            .unwrap_or_default();
        http::get(addr, &p, &headers, timeout)
    })
    .await
    .context("probe task failed")??;
    if resp.status != 200 {
        bail!("GET {path} answered {}", resp.status);
    }
    Ok(resp)
}

/// Wait until the edge's candidate route answers 200 from container `name` (id `id`); fail
/// fast if the container stops or crash-loops.
async fn wait_healthy(
    engine: &Engine,
    id: &str,
    addr: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last;
    loop {
        let info = engine.container(id).await?;
        if info.restart_count > 0 || !(info.is_running() || info.state == "created") {
            bail!(
                "the new container stopped ({}, exit code {}, {} restarts) before answering /healthz",
                info.state,
                info.exit_code.unwrap_or(-1),
                info.restart_count
            );
        }
        match probe_with(
            addr,
            edge::CANDIDATE_PATH,
            Some(name),
            Duration::from_secs(1),
        )
        .await
        {
            Ok(_) => return Ok(()),
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() >= deadline {
            bail!(
                "no 200 from /healthz within {} s (health_timeout); last probe: {last}",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The project's images, newest first, one entry per image id.
pub async fn project_images(engine: &Engine, project: &str) -> Result<Vec<ImageInfo>> {
    let mut images = engine
        .images_with_labels(&[(labels::PROJECT, project)])
        .await?;
    images.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
    images.dedup_by(|a, b| a.id == b.id);
    Ok(images)
}

/// Keep the newest `keep_images` images (and always the live one); remove the rest.
pub(crate) async fn prune_images(
    engine: &Engine,
    cfg: &Config,
    live_fp: &str,
    ui: &Ui,
) -> Result<()> {
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
pub fn pick_rollback<'a>(
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
pub async fn rollback(
    engine: &Engine,
    cfg: &Config,
    wanted: Option<&str>,
    ui: &Ui,
) -> Result<(Release, Outcome)> {
    let images = project_images(engine, &cfg.name).await?;
    let live_fp = match cfg.target {
        Target::Swarm => swarm::live_fingerprint(engine, cfg).await?,
        Target::Local => match edge::find(engine, &cfg.name).await? {
            Some(e) => {
                let e = edge::Edge {
                    id: e.id,
                    name: e.name,
                    probe: cfg.probe_addr()?,
                    livereload: None,
                };
                edge::read_live(engine, &e).await?.map(|l| l.fingerprint)
            }
            None => None,
        },
    };
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
pub async fn down(engine: &Engine, cfg: &Config, images: bool, ui: &Ui) -> Result<String> {
    // The swarm service first: its tasks' containers would otherwise be restarted.
    let service = engine
        .service(&cfg.name)
        .await?
        .filter(|s| s.label(labels::PROJECT) == Some(cfg.name.as_str()));
    if service.is_some() {
        // Gone at once, so swarm restarts none of the task containers removed below.
        engine.remove_service(&cfg.name).await?;
        ui.step(format!("removed swarm service {}", cfg.name));
    }
    let containers = engine
        .containers_with_labels(&[(labels::PROJECT, &cfg.name)])
        .await?;
    for c in &containers {
        engine.remove(&c.id).await?;
        ui.step(format!("removed container {}", c.name));
    }
    if engine.remove_network(&network_name(&cfg.name)).await? {
        ui.step(format!("removed network {}", network_name(&cfg.name)));
    }
    if engine.remove_volume(&volume_name(&cfg.name)).await? {
        ui.step(format!("removed volume {}", volume_name(&cfg.name)));
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

    fn img(fp: &str, created: i64) -> ImageInfo {
        ImageInfo {
            id: format!("sha256:{fp}"),
            tags: vec![],
            labels: HashMap::from([(labels::FINGERPRINT.to_string(), fp.to_string())]),
            size: 0,
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
