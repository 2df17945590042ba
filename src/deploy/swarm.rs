//! `--target swarm`: the same image as a Docker Swarm service.
//!
//! ```text
//! engine is a swarm manager? → image reachable by every node (registry push when configured,
//! required with more than one node) → lock → same fingerprint, replicas, port and all tasks
//! running? → no-op
//!   else create / update the service → swarm rolls tasks over one at a time, start-first:
//!   a new task must pass its /healthz health check before an old one is stopped (SIGQUIT,
//!   `drain` seconds) → a failed task makes swarm roll back by itself → sitebuild waits for
//!   `completed` (success) or `rollback_completed` (error naming the failed task)
//! ```
//!
//! The routing mesh publishes `port` on every node; sitebuild checks it answers at the end and
//! warns (does not fail) when it does not, since that part is the network's, not the service's.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::{Outcome, Release, lock, probe};
use crate::config::Config;
use crate::engine::Engine;
use crate::engine::swarm::{ServiceDef, ServiceInfo, SwarmState, TaskInfo};
use crate::layout;
use crate::naming::{Labels, labels, roles};
use crate::registry;
use crate::ui::Ui;

/// How long swarm watches each updated task for failure before moving on (and before it calls
/// the update completed).
const MONITOR: Duration = Duration::from_secs(5);

/// Run inside each task: busybox `wget` (nginx:alpine, sitebuild/nginx:offline) or `curl`
/// (the Debian nginx image).
pub(crate) fn health_cmd(port: u16) -> String {
    let url = format!("http://127.0.0.1:{port}/healthz");
    format!("wget -q -O /dev/null {url} || curl -fsS -o /dev/null {url}")
}

/// Check the engine can run services; returns its swarm state.
pub(crate) async fn ready(engine: &Engine) -> Result<SwarmState> {
    let state = engine.swarm_state().await?;
    if state.local_state != "active" {
        bail!(
            "the engine at {} is not in swarm mode (state: {}): run `docker swarm init` on it (or \
             `docker swarm join` it to a swarm), or deploy with --target local",
            engine.host(),
            state.local_state
        );
    }
    if !state.manager {
        bail!(
            "the engine at {} is a swarm worker; services are managed on a manager: point \
             DOCKER_HOST at a manager node",
            engine.host()
        );
    }
    Ok(state)
}

/// The image reference the service runs: `registry:<short>` when a registry is configured
/// (pushed first); the local tag on a one-node swarm; an error on a bigger swarm without one.
pub(crate) fn service_image(
    nodes: u64,
    registry: Option<&str>,
    release: &Release,
) -> Result<String> {
    match registry {
        Some(r) => Ok(format!("{r}:{}", release.short())),
        None if nodes > 1 => bail!(
            "the swarm has {nodes} nodes and each pulls the image itself, but no registry is \
             configured: set `registry` (sitebuild.toml or SITEBUILD_REGISTRY) to a repository \
             every node can pull from, e.g. registry = \"ghcr.io/me/site\" (credentials as for \
             `sitebuild push`)"
        ),
        None => Ok(release.image.clone()),
    }
}

fn service_def(cfg: &Config, release: &Release, image: &str) -> ServiceDef {
    let base = |role: &str| {
        Labels::project(&cfg.name)
            .role(role)
            .with(labels::FINGERPRINT, &release.fingerprint)
            .build()
    };
    ServiceDef {
        name: crate::naming::service(&cfg.name),
        image: image.to_string(),
        labels: base(roles::SWARM_SERVICE),
        container_labels: base(roles::SWARM_TASK),
        replicas: cfg.replicas as u64,
        publish: (cfg.port, layout::CONTAINER_PORT),
        user: layout::RUN_AS.to_string(),
        memory_bytes: 256 * 1024 * 1024,
        pids_limit: 256,
        health_cmd: health_cmd(layout::CONTAINER_PORT),
        health_interval: Duration::from_secs(1),
        health_retries: 3,
        health_start_period: Duration::from_secs(cfg.health_timeout),
        monitor: MONITOR,
        stop_grace: Duration::from_secs(cfg.drain.max(1)),
    }
}

/// Tasks the orchestrator wants running and that run `image`.
fn running_with(tasks: &[TaskInfo], image: &str) -> usize {
    tasks
        .iter()
        .filter(|t| t.image == image && t.state == "running" && t.desired == "running")
        .count()
}

/// The newest error of a task that ran `image`, for messages.
fn task_error(tasks: &[TaskInfo], image: &str) -> Option<String> {
    tasks
        .iter()
        .filter(|t| t.image == image)
        .find_map(|t| t.error.clone())
}

/// Deploy `release` as the project's swarm service.
pub(crate) async fn deploy(
    engine: &Engine,
    cfg: &Config,
    release: &Release,
    ui: &Ui,
) -> Result<Outcome> {
    let state = ready(engine).await?;
    let image = service_image(state.nodes, cfg.registry.as_deref(), release)?;
    let creds = match &cfg.registry {
        Some(r) => registry::credentials_for(&registry::registry_of(r))?,
        None => None,
    };
    if let Some(repo) = &cfg.registry {
        ui.step(format!("pushing {image} (every node pulls it from there)"));
        registry::push(
            engine,
            &release.image,
            repo,
            release.short(),
            creds.as_ref(),
        )
        .await?;
    }
    let work = deploy_locked(engine, cfg, release, &image, &state, creds.as_ref(), ui);
    let outcome = lock::holding(engine, cfg, ui, work).await?;
    if let Outcome::Deployed { .. } = outcome {
        super::prune_images(engine, cfg, &release.fingerprint, ui).await?;
        check_published(cfg, ui).await;
    }
    Ok(outcome)
}

async fn deploy_locked(
    engine: &Engine,
    cfg: &Config,
    release: &Release,
    image: &str,
    state: &SwarmState,
    creds: Option<&crate::engine::Credentials>,
    ui: &Ui,
) -> Result<Outcome> {
    let started = Instant::now();
    let def = service_def(cfg, release, image);
    let existing = engine.service(&cfg.name).await?;
    if let Some(s) = &existing {
        if s.label(labels::PROJECT) != Some(cfg.name.as_str()) {
            bail!(
                "a swarm service named {} exists and sitebuild did not create it for this project: \
                 set another `name`, or remove it (`docker service rm {}`)",
                cfg.name,
                cfg.name
            );
        }
        let tasks = engine.service_tasks(&cfg.name).await?;
        let settled = !matches!(
            s.update_state.as_deref(),
            Some("updating" | "paused" | "rollback_started" | "rollback_paused")
        );
        if settled
            && s.label(labels::FINGERPRINT) == Some(release.fingerprint.as_str())
            && s.image == image
            && s.replicas == def.replicas
            && s.published_port == Some(cfg.port)
            && running_with(&tasks, image) as u64 == def.replicas
        {
            return Ok(Outcome::Unchanged {
                container: format!("service {}", cfg.name),
            });
        }
    }
    let replaced = existing
        .as_ref()
        .and_then(|s| s.label(labels::FINGERPRINT))
        .filter(|fp| *fp != release.fingerprint)
        .map(|fp| crate::site::short(fp).to_string());
    if !cfg.bind.is_unspecified() {
        ui.step(format!(
            "note: swarm's routing mesh publishes port {} on every interface of every node; \
             `bind` ({}) applies to --target local only",
            cfg.port, cfg.bind
        ));
    }
    if state.api < (1, 46) {
        ui.step(format!(
            "note: this engine (API {}.{}) cannot set no-new-privileges on services (API 1.46, \
             Docker 27); tasks still run as uid 101 with no capabilities and a read-only root",
            state.api.0, state.api.1
        ));
    }

    if let Some(s) = &existing {
        ui.step(format!(
            "updating service {} to {} ({} tasks, one at a time, start-first)",
            cfg.name,
            release.short(),
            def.replicas
        ));
        for w in engine
            .update_service(&def, s.version, state.api, creds)
            .await?
        {
            ui.detail(format!("engine: {w}"));
        }
    } else {
        ui.step(format!(
            "creating service {} from {} ({} tasks, port {})",
            cfg.name, image, def.replicas, cfg.port
        ));
        engine.create_service(&def, state.api, creds).await?;
    }
    if let Err(e) = wait_rollout(engine, cfg, release, image, existing.is_none(), ui).await {
        if existing.is_none() {
            // Nothing served before: do not leave a crash-looping service behind.
            engine.remove_service(&cfg.name).await?;
            ui.step(format!(
                "removed service {} (it never became healthy)",
                cfg.name
            ));
        }
        return Err(e);
    }
    Ok(Outcome::Deployed {
        container: format!("service {}", cfg.name),
        replaced,
        took: started.elapsed(),
    })
}

/// Wait until swarm reports the rollout completed with every task on `image`, or rolled back.
async fn wait_rollout(
    engine: &Engine,
    cfg: &Config,
    release: &Release,
    image: &str,
    created: bool,
    ui: &Ui,
) -> Result<()> {
    let per_task = Duration::from_secs(cfg.health_timeout) + MONITOR + Duration::from_secs(10);
    let limit = per_task * cfg.replicas as u32 + Duration::from_secs(30);
    let want = cfg.replicas as usize;
    let mut shown = usize::MAX;
    // What the last look saw, for the message when time runs out.
    let mut last = (String::from("none"), String::new());
    let converged = probe::poll_until(limit, Duration::from_millis(250), async || {
        let service: ServiceInfo = engine
            .service(&cfg.name)
            .await?
            .with_context(|| format!("service {} disappeared during the deploy", cfg.name))?;
        let tasks = engine.service_tasks(&cfg.name).await?;
        let running = running_with(&tasks, image);
        if running != shown {
            ui.step(format!(
                "{running}/{want} tasks healthy on {}",
                release.short()
            ));
            shown = running;
        }
        let failed_new = tasks
            .iter()
            .filter(|t| t.image == image && matches!(t.state.as_str(), "failed" | "rejected"))
            .count();
        let why = task_error(&tasks, image)
            .map(|e| format!("; the new task failed with: {e}"))
            .unwrap_or_default();
        // The spec names our fingerprint until swarm rolls it back: a rollback state seen while
        // it still does is one left from an earlier deploy.
        let ours = service.label(labels::FINGERPRINT) == Some(release.fingerprint.as_str());
        match service.update_state.as_deref() {
            Some("rollback_completed") if !ours => bail!(
                "the new version {} failed on swarm and swarm rolled service {} back to {}{}; the \
                 previous version kept serving (see `docker service ps {}`)",
                release.short(),
                cfg.name,
                service
                    .label(labels::FINGERPRINT)
                    .map_or("the previous spec", crate::site::short),
                why,
                cfg.name
            ),
            Some("paused" | "rollback_paused") => bail!(
                "the update of service {} is {}: {}{} (fix it, then deploy again)",
                cfg.name,
                service.update_state.as_deref().unwrap_or_default(),
                service.update_message.clone().unwrap_or_default(),
                why
            ),
            Some("completed") | None if running >= want && ours => {
                return Ok(Some(()));
            }
            _ => {}
        }
        // A new service has nothing to roll back to: give up once every slot failed twice.
        if created && failed_new >= 2 * want {
            bail!(
                "no task of the new service {} became healthy ({failed_new} failed){}",
                cfg.name,
                why
            );
        }
        last = (
            service
                .update_state
                .clone()
                .unwrap_or_else(|| "none".into()),
            why,
        );
        Ok(None)
    })
    .await?;
    converged.with_context(|| {
        format!(
            "service {} did not converge on {} within {} s (update state: {}){}",
            cfg.name,
            release.short(),
            limit.as_secs(),
            last.0,
            last.1
        )
    })
}

/// The published port through the routing mesh: a warning, not an error, when it is silent.
async fn check_published(cfg: &Config, ui: &Ui) {
    let Ok(addr) = probe::probe_addr(cfg) else {
        return;
    };
    if let Err(e) = probe::probe(addr, "/healthz", Duration::from_secs(3)).await {
        ui.step(format!(
            "warning: the service is healthy, but {addr} (the routing mesh) did not answer \
             /healthz ({e:#}); check that the node's kernel has IPVS (`ip_vs`) and that port {} is \
             open between the nodes (7946, 4789/udp)",
            cfg.port
        ));
    }
}

/// `status` for the swarm target: one line per fact.
pub(crate) async fn status(engine: &Engine, cfg: &Config) -> Result<Vec<String>> {
    ready(engine).await?;
    let Some(s) = engine.service(&cfg.name).await? else {
        return Ok(vec![format!(
            "no swarm service {} (deploy with `sitebuild deploy --target swarm`)",
            cfg.name
        )]);
    };
    let tasks = engine.service_tasks(&cfg.name).await?;
    let fp = s.label(labels::FINGERPRINT).unwrap_or("?");
    Ok(vec![
        format!("service    {} ({}), {} tasks", cfg.name, s.id, s.replicas),
        format!("image      {}", s.image),
        format!("live       {}", crate::site::short(fp)),
        format!(
            "tasks      {}/{} running and healthy",
            running_with(&tasks, &s.image),
            s.replicas
        ),
        format!(
            "update     {}{}",
            s.update_state.as_deref().unwrap_or("none (created)"),
            s.update_message
                .as_ref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ),
        format!(
            "published  port {} on every node (routing mesh)",
            s.published_port.map(|p| p.to_string()).unwrap_or_default()
        ),
    ])
}

/// The fingerprint the service runs, if there is one.
pub(crate) async fn live_fingerprint(engine: &Engine, cfg: &Config) -> Result<Option<String>> {
    ready(engine).await?;
    Ok(engine
        .service(&cfg.name)
        .await?
        .and_then(|s| s.label(labels::FINGERPRINT).map(str::to_string)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release() -> Release {
        Release {
            fingerprint: "abcdef0123456789".into(),
            image: "blog:abcdef012345".into(),
        }
    }

    #[test]
    fn image_comes_from_the_registry_when_configured() {
        let img = service_image(1, None, &release()).unwrap();
        assert_eq!(img, "blog:abcdef012345");
        let img = service_image(3, Some("ghcr.io/me/blog"), &release()).unwrap();
        assert_eq!(img, "ghcr.io/me/blog:abcdef012345");
        let e = service_image(3, None, &release()).unwrap_err().to_string();
        assert!(e.contains("3 nodes") && e.contains("set `registry`"), "{e}");
    }

    #[test]
    fn health_check_falls_back_to_curl() {
        assert_eq!(
            health_cmd(8080),
            "wget -q -O /dev/null http://127.0.0.1:8080/healthz || \
             curl -fsS -o /dev/null http://127.0.0.1:8080/healthz"
        );
    }
}
