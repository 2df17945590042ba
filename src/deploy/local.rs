//! `--target local`: this engine, an edge container that owns the port, and site containers
//! swapped behind it.
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

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::edge::{self, Live};
use super::{DeployOptions, Outcome, Release, certs, front, lock, probe};
use crate::config::Config;
use crate::engine::{ContainerInfo, ContainerSpec, Engine};
use crate::layout;
use crate::naming::{self, Labels, labels, roles};
use crate::site;
use crate::ui::{Phases, Ui};

/// Label value of `dev.sitebuild.mode` on site containers.
fn mode_label(opts: &DeployOptions) -> &'static str {
    if opts.dev { "dev" } else { "production" }
}

/// The site containers of a project (any state), sorted by name.
async fn site_containers(engine: &Engine, name: &str) -> Result<Vec<ContainerInfo>> {
    engine
        .containers_with_labels(&[(labels::PROJECT, name), (labels::ROLE, roles::SITE)])
        .await
}

/// Test hook: `SITEBUILD_PAUSE_AT=<point>` stops here (so a test can SIGKILL the process at a
/// known point). Points: `after-start`, `after-candidate`, `after-switch`.
async fn pause_point(point: &str, ui: &Ui) {
    if std::env::var("SITEBUILD_PAUSE_AT").as_deref() == Ok(point) {
        ui.step(format!("paused at {point} (SITEBUILD_PAUSE_AT)"));
        tokio::time::sleep(Duration::from_mins(10)).await;
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
    let edge = if cfg.domains.is_empty() {
        all.iter().find(|c| role(c, roles::EDGE)).cloned()
    } else {
        super::shared_edge::find(engine, cfg.http_port).await?
    };
    let Some(edge) = edge.as_ref() else {
        return Ok(None);
    };
    if !edge.is_running() || edge.label(labels::ADDRESS) != Some(super::address_of(cfg).as_str()) {
        return Ok(None);
    }
    // One site container, running this fingerprint in this mode, and no lock: a candidate.
    let sites: Vec<&ContainerInfo> = all.iter().filter(|c| role(c, roles::SITE)).collect();
    let [site] = sites.as_slice() else {
        return Ok(None);
    };
    if !site.is_running()
        || site.label(labels::FINGERPRINT) != Some(release.fingerprint.as_str())
        || site.label(labels::MODE) != Some(mode_label(opts))
        || all.iter().any(|c| role(&c, roles::LOCK))
    {
        return Ok(None);
    }
    // With domains the edge config also carries the certificate, HSTS and the names: a change
    // of those alone is a deploy too (this costs an exec and a download, so only then).
    if !cfg.domains.is_empty() {
        let handle = front::attach(engine, cfg, edge).await?;
        let live = Live {
            container: site.name.clone(),
            fingerprint: release.fingerprint.clone(),
        };
        if !edge::is_current(engine, cfg, &handle, Some(&live)).await? {
            return Ok(None);
        }
        // tls = "acme": a placeholder or a certificate due for renewal makes this a deploy.
        if handle.acme_cert.as_ref().is_some_and(|ck| {
            super::certs::needs_issuance(&ck.info, &cfg.domains, std::time::SystemTime::now())
                .is_some()
        }) {
            return Ok(None);
        }
    }
    // The edge's /healthz names the fingerprint it routes to (cheaper than reading its volume);
    // the shared edge answers it for the project's first domain.
    let (addr, host) = (probe::probe_addr(cfg)?, cfg.domains.first().cloned());
    let got = tokio::task::spawn_blocking(move || {
        let headers: Vec<(&str, &str)> = host.iter().map(|h| ("Host", h.as_str())).collect();
        crate::http::get(addr, "/healthz", &headers, Duration::from_secs(2))
    })
    .await?;
    let Ok(resp) = got else {
        return Ok(None);
    };
    if resp.status != 200 {
        return Ok(None);
    }
    let routed = resp.header("x-sitebuild-live") == Some(release.short());
    Ok(routed.then(|| site.name.clone()))
}

/// Deploy `release` for `cfg`'s project: health-gated, zero-downtime, serialized by the lock.
pub(crate) async fn deploy(
    engine: &Engine,
    cfg: &Config,
    release: &Release,
    opts: &DeployOptions,
    ui: &Ui,
) -> Result<Outcome> {
    let asked = Instant::now();
    if let Some(container) = is_live(engine, cfg, release, opts).await? {
        return Ok(Outcome::Unchanged { container });
    }
    ui.detail(format!(
        "not live yet (asked in {} ms)",
        asked.elapsed().as_millis()
    ));
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
    let mut t = Phases::start();
    // The candidate is created and started while the edge is made ready (the edge's checks,
    // leftovers, certificates): neither waits for the other, and nothing routes to the
    // candidate before it passes the health gate below.
    engine
        .ensure_network(
            &naming::network(&cfg.name),
            &Labels::project(&cfg.name).role(roles::NETWORK).build(),
        )
        .await?;
    let name = naming::site_container(&cfg.name, release.short());
    let spec = site_spec(cfg, release, &name, opts);
    let candidate = async {
        let t = Instant::now();
        let id = engine.create(&spec).await?;
        let created = t.elapsed();
        let started = async {
            if let Some(conf) = opts.dev_conf.as_deref().filter(|_| opts.dev) {
                // Into the container's own volume (filled from the image at create): the image
                // keeps its config; `nginx -t` runs at start and a failure fails the health gate.
                let (dir, file) = layout::CONF_PATH
                    .rsplit_once('/')
                    .expect("CONF_PATH is absolute");
                engine
                    .upload_files(&id, dir, &[(file, conf.as_bytes())])
                    .await
                    .with_context(|| {
                        format!("cannot write the development nginx.conf into {name}")
                    })?;
            }
            engine.start(&id).await
        }
        .await;
        ui.detail(format!(
            "candidate {name}: created in {} ms, started in {} ms",
            created.as_millis(),
            t.elapsed().saturating_sub(created).as_millis()
        ));
        Ok::<_, anyhow::Error>((id, started))
    };
    let new_live = Live {
        container: name.clone(),
        fingerprint: release.fingerprint.clone(),
    };
    let edge_ready = async {
        let t = Instant::now();
        let ready = ready_edge(engine, cfg, release, opts, &name, ui).await?;
        let edge_done = t.elapsed();
        // While the candidate still starts: its edge config goes in as the next one (not
        // live), to be tested during the health gate.
        let staged = match &ready {
            EdgeReady::Ready { edge, .. } => stage(engine, cfg, edge, &new_live).await?,
            EdgeReady::Unchanged(_) => None,
        };
        ui.detail(format!(
            "edge ready in {} ms{}",
            edge_done.as_millis(),
            if staged.is_some() {
                format!(
                    ", the candidate's edge config staged in {} ms",
                    t.elapsed().saturating_sub(edge_done).as_millis()
                )
            } else {
                String::new()
            }
        ));
        Ok::<_, anyhow::Error>((ready, staged))
    };
    let (ready, candidate) = tokio::join!(edge_ready, candidate);
    t.mark("edge ready + candidate started");
    let (new_id, candidate_started) = candidate?;
    let (edge, live, staged) = match ready {
        Ok((EdgeReady::Ready { edge, live }, staged)) => (*edge, live, staged),
        Ok((EdgeReady::Unchanged(container), _)) => {
            engine.remove(&new_id).await?;
            return Ok(Outcome::Unchanged { container });
        }
        Err(e) => {
            let _ = engine.remove(&new_id).await;
            return Err(e);
        }
    };
    let gate = async {
        candidate_started?;
        pause_point("after-start", ui).await;
        pause_point("after-candidate", ui).await;
        // Through the edge, which resolves the candidate by name: no reload needed.
        wait_healthy(
            engine,
            &new_id,
            &edge,
            &name,
            Duration::from_secs(cfg.health_timeout),
        )
        .await
    };
    // The staged config names the candidate, which runs now: `nginx -t` meanwhile.
    let test = async {
        match &staged {
            Some(_) => edge::test_staged(engine, &edge).await,
            None => Ok(()),
        }
    };
    let (gate, tested) = tokio::join!(gate, test);
    t.mark("healthy");
    if gate.is_ok()
        && let Err(e) = tested
    {
        let _ = engine.remove(&new_id).await;
        return Err(e.context(format!(
            "the edge config routing to {name} was refused; {name} was removed"
        )));
    }
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
    match staged {
        Some(conf) => {
            edge::commit_own(engine, &edge, Some(&new_live), &conf, Phases::start(), ui).await?;
        }
        None => front::apply(engine, cfg, &edge, Some(&new_live), ui).await?,
    }
    t.mark("switched");
    edge::wait_live(&edge, &release.fingerprint).await?;
    t.mark("live");
    ui.detail(t.line());
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
    super::prune_images(engine, cfg, &release.fingerprint, ui).await?;
    Ok(Outcome::Deployed {
        container: name,
        replaced,
        took: started.elapsed(),
    })
}

/// Write the edge config that routes to `new_live` as the edge's next config ([`edge::stage_own`]),
/// ahead of the switch; returns it. None where the switch does more than write and reload
/// (the shared edge, under its own lock; maintenance mode, whose page comes from the live
/// version): those apply the whole config after the gate ([`front::apply`]).
async fn stage(
    engine: &Engine,
    cfg: &Config,
    edge: &edge::Edge,
    new_live: &Live,
) -> Result<Option<String>> {
    if edge.shared || edge.maintenance.is_some() {
        return Ok(None);
    }
    let conf = edge::prepare(engine, cfg, edge, Some(new_live)).await?;
    edge::stage_own(engine, edge, &conf).await?;
    Ok(Some(conf))
}

/// The edge, made ready for a candidate.
enum EdgeReady {
    /// `release` is live already, in this mode: the edge was re-applied, nothing else to do.
    Unchanged(String),
    /// The edge routes to `live` (if any) and has the config the candidate route needs.
    Ready {
        edge: Box<edge::Edge>,
        live: Option<Live>,
    },
}

/// Everything before the health gate that concerns the edge: a running edge, the live version
/// it records (an interrupted switch finished), leftovers of interrupted runs removed (never
/// `candidate`, which the caller starts meanwhile), certificates, and this version's config.
async fn ready_edge(
    engine: &Engine,
    cfg: &Config,
    release: &Release,
    opts: &DeployOptions,
    candidate: &str,
    ui: &Ui,
) -> Result<EdgeReady> {
    let mut edge = front::ensure(engine, cfg, opts.livereload.clone(), ui).await?;
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

    // A switch interrupted between writing the edge's config and its reload (sitebuild killed,
    // the engine stalled) leaves the edge routing to the previous container while its volume
    // names the new one: reload it first, so removing the leftovers below never removes what
    // the edge still routes to. The shared edge is asked with the project's Host (without it
    // its own /healthz answers, which names no version: every deploy took that for an
    // interrupted switch and reloaded the edge once more, found by the soak).
    let probe_headers = edge.probe_headers();
    let probe_headers: Vec<(&str, &str)> = probe_headers
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    if let Some(l) = &live
        && let Ok(resp) = probe::get_ok(
            edge.probe,
            "/healthz",
            &probe_headers,
            Duration::from_secs(2),
        )
        .await
        && resp.header("x-sitebuild-live") != Some(crate::site::short(&l.fingerprint))
    {
        ui.step(format!(
            "the edge still routes to {} (an interrupted switch): switching it to the recorded {}",
            resp.header("x-sitebuild-live").unwrap_or("?"),
            l.container
        ));
        front::apply(engine, cfg, &edge, Some(l), ui).await?;
        edge::wait_live(&edge, &l.fingerprint).await?;
    }

    // Converge: anything that is not the live site is a leftover of an interrupted run.
    for c in site_containers(engine, &cfg.name).await? {
        if c.name != candidate && live.as_ref().is_none_or(|l| l.container != c.name) {
            ui.step(format!(
                "removing leftover {} from an interrupted deploy",
                c.name
            ));
            engine.remove(&c.id).await?;
        }
    }
    // A build killed after its image was committed but before its check container was removed
    // (the image exists, so no build sweeps it).
    for name in crate::image::remove_stale_checks(engine, cfg.image_repo()).await? {
        ui.step(format!(
            "removing leftover {name} from an interrupted build"
        ));
    }
    // tls = "acme": issue (or renew) before the content changes, on the edge as it is.
    if matches!(cfg.tls, crate::config::Tls::Acme) {
        let serving = edge.acme_cert.as_ref().map(|ck| ck.info.clone());
        if let Err(e) = certs::ensure_issued(engine, cfg, &mut edge, live.as_ref(), false, ui).await
        {
            // A real certificate that is only due keeps serving; the deploy goes on.
            match serving {
                Some(info) if !info.issuer.contains(crate::acme::PLACEHOLDER_CN) => {
                    ui.step(format!(
                        "warning: renewal failed, the certificate valid until {} keeps serving: {e:#}",
                        info.expires()
                    ));
                }
                _ => return Err(e),
            }
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
        front::apply(engine, cfg, &edge, Some(l), ui).await?;
        return Ok(EdgeReady::Unchanged(l.container.clone()));
    }

    // The candidate route below needs the edge config of this version.
    front::refresh(engine, cfg, &edge, live.as_ref(), ui).await?;
    Ok(EdgeReady::Ready {
        edge: Box::new(edge),
        live,
    })
}

/// A hardened site container: on the private network only, no host port.
fn site_spec(cfg: &Config, release: &Release, name: &str, opts: &DeployOptions) -> ContainerSpec {
    let labels = cfg
        .labels()
        .role(roles::SITE)
        .with(labels::FINGERPRINT, &release.fingerprint)
        .with(labels::MODE, mode_label(opts))
        .build();
    ContainerSpec::new(name, &release.image, labels)
        .network(naming::network(&cfg.name))
        .scratch_volume(opts.dev.then_some(layout::IMAGE_DIR))
        .restart()
}

/// Wait until the edge's candidate route answers 200 from container `name` (id `id`); fail
/// fast if the container stops or crash-loops.
async fn wait_healthy(
    engine: &Engine,
    id: &str,
    edge: &edge::Edge,
    name: &str,
    timeout: Duration,
) -> Result<()> {
    let mut last = String::new();
    let healthy = probe::poll_eagerly(timeout, async || {
        {
            let info = engine.container(id).await?;
            if info.restart_count > 0 || !(info.is_running() || info.state == "created") {
                bail!(
                    "the new container stopped ({}, exit code {}, {} restarts) before answering /healthz",
                    info.state,
                    info.exit_code.unwrap_or(-1),
                    info.restart_count
                );
            }
            let (e, n) = (edge.clone(), name.to_string());
            let got = tokio::task::spawn_blocking(move || {
                edge::edge_get(
                    &e,
                    edge::CANDIDATE_PATH,
                    &[(edge::CANDIDATE_HEADER, n.as_str())],
                    Duration::from_secs(1),
                )
            })
            .await?;
            match got {
                Ok(r) if r.status == 200 => Ok(Some(())),
                Ok(r) => {
                    last = format!("GET {} answered {}", edge::CANDIDATE_PATH, r.status);
                    Ok(None)
                }
                Err(e) => {
                    last = format!("{e:#}");
                    Ok(None)
                }
            }
        }
    })
    .await?;
    healthy.with_context(|| {
        format!(
            "no 200 from /healthz within {} s (health_timeout); last probe: {last}",
            timeout.as_secs()
        )
    })
}

/// The fingerprint the edge routes to, if there is an edge and a live site.
pub(crate) async fn live_fingerprint(engine: &Engine, cfg: &Config) -> Result<Option<String>> {
    match front::find_for(engine, cfg).await? {
        Some(e) => {
            let e = front::attach(engine, cfg, &e).await?;
            Ok(edge::read_live(engine, &e).await?.map(|l| l.fingerprint))
        }
        None => Ok(None),
    }
}

/// Maintenance mode on (`Some(message)`) or off, under the project's lock: the edge config
/// changes (nginx -t + graceful reload), then the state file that keeps it across deploys.
pub(crate) async fn maintenance(
    engine: &Engine,
    cfg: &Config,
    message: Option<&str>,
    ui: &Ui,
) -> Result<String> {
    lock::holding(engine, cfg, ui, async {
        let info = front::find_for(engine, cfg)
            .await?
            .filter(ContainerInfo::is_running)
            .with_context(|| {
                format!(
                    "{} has no running edge; run `sitebuild deploy` first",
                    cfg.name
                )
            })?;
        let edge = front::attach(engine, cfg, &info).await?;
        let live = edge::read_live(engine, &edge).await?;
        if live.is_none() {
            bail!(
                "{} has no live version on {}; run `sitebuild deploy` first",
                cfg.name,
                edge.name
            );
        }
        let was_on = edge.maintenance.is_some();
        let edge = edge::Edge {
            maintenance: message.map(String::from),
            ..edge
        };
        front::apply(engine, cfg, &edge, live.as_ref(), ui).await?;
        let state = edge.path(edge::MAINTENANCE_FILE);
        if let Some(m) = message {
            engine
                .upload_files(
                    &edge.id,
                    edge::EDGE_DIR,
                    &[(&edge.entry(edge::MAINTENANCE_FILE), m.as_bytes())],
                )
                .await?;
            return Ok(format!(
                "maintenance on: {} answers 503 (Retry-After {} s) with the maintenance \
                 page; /healthz still answers 200. `sitebuild maintenance off` ends it",
                cfg.url(),
                crate::render::MAINTENANCE_RETRY_AFTER
            ));
        }
        edge::remove_paths(engine, &edge, &[state]).await?;
        Ok(if was_on {
            format!("maintenance off: {} serves the site again", cfg.url())
        } else {
            format!("maintenance was not on; {} serves the site", cfg.url())
        })
    })
    .await
}

/// `domains` and `tls` lines of `status` (none without domains).
fn tls_status(cfg: &Config) -> Vec<String> {
    use crate::config::Tls;
    if cfg.domains.is_empty() {
        return Vec::new();
    }
    let tls = match &cfg.tls {
        Tls::Off => "off (plain HTTP)".to_string(),
        Tls::Acme => format!(
            "acme ({}, account {}{})",
            cfg.acme.directory,
            cfg.acme.email.as_deref().unwrap_or("without e-mail"),
            cfg.acme
                .root
                .as_ref()
                .map(|r| format!(", extra roots from {}", r.display()))
                .unwrap_or_default()
        ),
        Tls::Files(ck) => format!(
            "files: issuer {}, expires {}{}",
            ck.info.issuer,
            ck.info.expires(),
            if ck.info.due_for_renewal(std::time::SystemTime::now()) {
                " (less than a third of its lifetime left: replace it)"
            } else {
                ""
            }
        ),
    };
    vec![
        format!("domains    {}", cfg.domains.join(", ")),
        format!("tls        {tls}"),
    ]
}

/// `status` for the local target: one line per fact. `current` is the fingerprint of the
/// project's content now (or why it does not build).
pub(crate) async fn status(
    engine: &Engine,
    cfg: &Config,
    current: &Result<String>,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let all = engine
        .containers_with_labels(&[(labels::PROJECT, &cfg.name)])
        .await?;
    if all.is_empty() {
        out.push("nothing runs for this project (start it with `sitebuild up`)".to_string());
        return Ok(out);
    }
    let edge = if cfg.domains.is_empty() {
        all.iter()
            .find(|c| c.label(labels::ROLE) == Some(roles::EDGE))
            .cloned()
    } else {
        super::shared_edge::find(engine, cfg.http_port).await?
    };
    let mut live_name = None;
    if let Some(e) = edge {
        let e = &engine.container(&e.id).await?;
        let address = e.label(labels::ADDRESS).unwrap_or("?");
        if e.label(labels::ROLE) == Some(roles::SHARED_EDGE) {
            out.extend(super::shared_edge::status(engine, e).await?);
        } else {
            out.push(format!(
                "edge       {} ({}) on {address} since {}",
                e.name,
                e.state,
                e.started_at.as_deref().unwrap_or("?")
            ));
        }
        out.extend(tls_status(cfg));
        let handle = front::attach(engine, cfg, e).await?;
        out.push(match &handle.maintenance {
            Some(m) if m.trim().is_empty() => {
                "maintenance on (503 with the maintenance page; `sitebuild maintenance off`)"
                    .to_string()
            }
            Some(m) => format!(
                "maintenance on ({:?}; `sitebuild maintenance off`)",
                m.trim()
            ),
            None => "maintenance off".to_string(),
        });
        if let Some(live) = edge::read_live(engine, &handle).await? {
            let health = if address == super::address_of(cfg) {
                let h = handle.clone();
                let got = tokio::task::spawn_blocking(move || {
                    edge::edge_get(&h, "/healthz", &[], Duration::from_secs(2))
                })
                .await?;
                match got {
                    Ok(r) if r.status == 200 => "healthy (/healthz 200)".to_string(),
                    Ok(r) => format!("unhealthy: /healthz answered {}", r.status),
                    Err(e) => format!("unhealthy: {e:#}"),
                }
            } else {
                format!(
                    "not probed (the edge is on {address}, the config says {})",
                    super::address_of(cfg)
                )
            };
            out.push(format!(
                "live       {} (fingerprint {})",
                live.container,
                site::short(&live.fingerprint)
            ));
            out.push(format!("health     {health}"));
            out.push(match current {
                Ok(now) if *now == live.fingerprint => {
                    "content    up to date with the project".to_string()
                }
                Ok(now) => format!(
                    "content    the project now has {} (run `sitebuild deploy`)",
                    site::short(now)
                ),
                Err(e) => format!("content    the project does not build: {e:#}"),
            });
            live_name = Some(live.container);
        } else {
            out.push("live       none yet".to_string());
        }
    }
    for c in &all {
        let role = c.label(labels::ROLE).unwrap_or("?");
        let is_live = Some(&c.name) == live_name.as_ref();
        if is_live {
            let c = engine.container(&c.id).await?;
            out.push(format!(
                "           {} {} since {}",
                c.name,
                c.state,
                c.started_at.as_deref().unwrap_or("?")
            ));
        }
        if role == roles::EDGE || is_live {
            continue;
        }
        let what = match role {
            roles::LOCK => format!(
                "deploy lock held by {}",
                c.label(labels::HOLDER).unwrap_or("?")
            ),
            _ => "leftover (removed by the next deploy)".to_string(),
        };
        out.push(format!(
            "other      {} ({}, {}): {what}",
            c.name, role, c.state
        ));
    }
    let images = super::project_images(engine, &cfg.name).await?;
    let kept: Vec<String> = images
        .iter()
        .filter_map(|i| i.labels.get(labels::FINGERPRINT))
        .map(|f| site::short(f).to_string())
        .collect();
    out.push(format!(
        "images     {} kept for rollback: {}",
        kept.len(),
        kept.join(", ")
    ));
    Ok(out)
}
