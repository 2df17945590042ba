//! The edge: a stable nginx container that owns the published host port and proxies to the live
//! site container over the project's private network. Switching versions = render a new edge
//! config into its volume, `nginx -t`, `nginx -s reload` (graceful: old workers finish their
//! requests). nginx resolves upstream names when it loads the config, so the reload is what
//! moves traffic; a DNS change alone would not.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::config::Config;
use crate::context::{NGINX, RUN_AS};
use crate::engine::{ContainerInfo, ContainerSpec, Engine, labels};
use crate::http;
use crate::render::{self, CONTAINER_PORT, EdgeInputs};
use crate::ui::Ui;

pub const ROLE_EDGE: &str = "edge";
/// Where the edge's volume (config + state) is mounted.
pub const EDGE_DIR: &str = "/etc/sitebuild-edge";
const EDGE_CONF: &str = "edge.conf";
const EDGE_NEXT: &str = "edge.conf.next";
/// "<container name> <fingerprint>" of the live site, written at each switch.
const LIVE_FILE: &str = "live";

/// Names of the project's shared resources.
/// The edge's health-gate route for a new version, and the header that names its container.
pub const CANDIDATE_PATH: &str = "/.sitebuild/candidate/healthz";
pub const CANDIDATE_HEADER: &str = "X-Sitebuild-Candidate";

pub fn edge_name(project: &str) -> String {
    format!("{project}-edge")
}
pub fn network_name(project: &str) -> String {
    format!("{project}-net")
}
pub fn volume_name(project: &str) -> String {
    format!("{project}-edge")
}

/// The live site as recorded by the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    pub container: String,
    pub fingerprint: String,
}

/// A running edge container.
#[derive(Debug, Clone)]
pub struct Edge {
    pub id: String,
    pub name: String,
    pub probe: SocketAddr,
    /// `sitebuild watch`: `ip:port` of its live-reload server; None in production.
    pub livereload: Option<String>,
}

fn project_labels(cfg: &Config, role: &str) -> HashMap<String, String> {
    HashMap::from([
        (labels::MANAGED.to_string(), "true".to_string()),
        (labels::PROJECT.to_string(), cfg.name.clone()),
        (labels::ROLE.to_string(), role.to_string()),
    ])
}

/// The project's edge container, if any (running or not).
pub async fn find(engine: &Engine, project: &str) -> Result<Option<ContainerInfo>> {
    Ok(engine
        .containers_with_labels(&[(labels::PROJECT, project), (labels::ROLE, ROLE_EDGE)])
        .await?
        .into_iter()
        .next())
}

/// Make sure the network and a running edge on `bind:port` exist; keeps the live state.
pub async fn ensure(
    engine: &Engine,
    cfg: &Config,
    livereload: Option<String>,
    ui: &Ui,
) -> Result<Edge> {
    let address = super::address_of(cfg);
    engine
        .ensure_network(&network_name(&cfg.name), &project_labels(cfg, "network"))
        .await?;
    let edge = Edge {
        id: String::new(),
        name: edge_name(&cfg.name),
        probe: cfg.probe_addr()?,
        livereload,
    };
    if let Some(existing) = find(engine, &cfg.name).await? {
        if existing.label(labels::ADDRESS) == Some(address.as_str()) {
            if !existing.is_running() {
                ui.step(format!("starting the stopped edge {}", existing.name));
                engine.start(&existing.id).await?;
                wait_answering(engine, &existing.id, edge.probe).await?;
            }
            return Ok(Edge {
                id: existing.id,
                ..edge
            });
        }
        // Moving to another address: make sure it is free before the old edge goes away.
        check_port_free(engine, cfg).await?;
        ui.step(format!(
            "moving {} from {} to {address}",
            cfg.name,
            existing.label(labels::ADDRESS).unwrap_or("?")
        ));
        engine.remove(&existing.id).await?;
    } else {
        check_port_free(engine, cfg).await?;
    }
    let volume = volume_name(&cfg.name);
    engine
        .ensure_volume(&volume, &project_labels(cfg, ROLE_EDGE))
        .await?;
    let mut edge_labels = project_labels(cfg, ROLE_EDGE);
    edge_labels.insert(labels::ADDRESS.to_string(), address.clone());
    let spec = ContainerSpec {
        name: edge.name.clone(),
        image: cfg.base_image.clone(),
        labels: edge_labels,
        publish: Some((cfg.bind.to_string(), cfg.port, CONTAINER_PORT)),
        user: RUN_AS.to_string(),
        memory_bytes: 128 * 1024 * 1024,
        pids_limit: 128,
        entrypoint: Some(vec![NGINX.to_string()]),
        cmd: Some(
            [
                "-e",
                "stderr",
                "-c",
                &format!("{EDGE_DIR}/{EDGE_CONF}"),
                "-g",
                "daemon off;",
            ]
            .map(String::from)
            .to_vec(),
        ),
        network_disabled: false,
        network: Some(network_name(&cfg.name)),
        binds: vec![format!("{volume}:{EDGE_DIR}")],
        scratch_volume: None,
        restart: true,
    };
    let id = engine.create(&spec).await?;
    let edge = Edge { id, ..edge };
    // A volume kept from an earlier edge (e.g. after a port change) still names the live site.
    let live = match read_live(engine, &edge).await? {
        Some(l) if site_running(engine, &l.container).await => Some(l),
        _ => None,
    };
    let conf = render_conf(cfg, &edge, live.as_ref())?;
    engine
        .upload_files(
            &edge.id,
            EDGE_DIR,
            &[
                (EDGE_CONF, conf.as_bytes()),
                (LIVE_FILE, live_line(live.as_ref()).as_bytes()),
            ],
        )
        .await?;
    if let Err(e) = engine.start(&edge.id).await {
        let _ = engine.remove(&edge.id).await;
        return Err(e).with_context(|| format!("the edge could not publish {address}"));
    }
    wait_answering(engine, &edge.id, edge.probe).await?;
    ui.detail(format!("edge {} listens on {address}", edge.name));
    Ok(edge)
}

async fn site_running(engine: &Engine, name: &str) -> bool {
    engine.container(name).await.is_ok_and(|c| c.is_running())
}

fn live_line(live: Option<&Live>) -> String {
    live.map(|l| format!("{} {}\n", l.container, l.fingerprint))
        .unwrap_or_default()
}

fn render_conf(cfg: &Config, edge: &Edge, live: Option<&Live>) -> Result<String> {
    let short = live
        .map(|l| crate::site::short(&l.fingerprint).to_string())
        .unwrap_or_default();
    render::render_edge(
        &cfg.templates_dir,
        &EdgeInputs {
            live: live.map(|l| l.container.as_str()).unwrap_or(""),
            live_fingerprint: &short,
            project: &cfg.name,
            livereload: edge.livereload.as_deref().unwrap_or(""),
        },
    )
}

/// The live site recorded in the edge's volume (None before the first deploy).
pub async fn read_live(engine: &Engine, edge: &Edge) -> Result<Option<Live>> {
    let Some(bytes) = engine
        .download_file(&edge.id, &format!("{EDGE_DIR}/{LIVE_FILE}"))
        .await?
    else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&bytes);
    Ok(text.split_once(' ').map(|(c, f)| Live {
        container: c.trim().to_string(),
        fingerprint: f.trim().to_string(),
    }))
}

/// Point the edge at `live`: write the config, `nginx -t` it, reload gracefully. A config that
/// fails the test changes nothing.
pub async fn apply(engine: &Engine, cfg: &Config, edge: &Edge, live: Option<&Live>) -> Result<()> {
    let conf = render_conf(cfg, edge, live)?;
    engine
        .upload_files(&edge.id, EDGE_DIR, &[(EDGE_NEXT, conf.as_bytes())])
        .await?;
    let next = format!("{EDGE_DIR}/{EDGE_NEXT}");
    let (code, out) = engine
        .exec(
            &edge.id,
            &[NGINX, "-e", "stderr", "-t", "-q", "-c", &next].map(String::from),
        )
        .await?;
    if code != 0 {
        bail!(
            "the edge config does not pass nginx -t (nothing was switched); nginx says:\n{}",
            out.trim_end()
        );
    }
    engine
        .upload_files(
            &edge.id,
            EDGE_DIR,
            &[
                (EDGE_CONF, conf.as_bytes()),
                (LIVE_FILE, live_line(live).as_bytes()),
            ],
        )
        .await?;
    let conf_path = format!("{EDGE_DIR}/{EDGE_CONF}");
    let old_workers = accepting_workers(engine, &edge.id).await?;
    let (code, out) = engine
        .exec(
            &edge.id,
            &[NGINX, "-e", "stderr", "-c", &conf_path, "-s", "reload"].map(String::from),
        )
        .await?;
    if code != 0 {
        bail!(
            "nginx -s reload failed in the edge {}: {}",
            edge.name,
            out.trim_end()
        );
    }
    // The reload is asynchronous: until every old worker has closed its listening socket, a
    // new connection may still get the old config. Wait for that, so "switched" means switched.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = accepting_workers(engine, &edge.id).await?;
        if !now.iter().any(|pid| old_workers.contains(pid)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the edge {} still has workers with the old config after 10 s",
                edge.name
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Make the running edge config the one this sitebuild renders for `live` (an edge made by an
/// earlier version, or an edited `edge.conf.j2`): reloads only when they differ.
pub async fn refresh(
    engine: &Engine,
    cfg: &Config,
    edge: &Edge,
    live: Option<&Live>,
) -> Result<()> {
    let want = render_conf(cfg, edge, live)?;
    let have = engine
        .download_file(&edge.id, &format!("{EDGE_DIR}/{EDGE_CONF}"))
        .await?;
    if have.as_deref() == Some(want.as_bytes()) {
        return Ok(());
    }
    apply(engine, cfg, edge, live).await
}

/// PIDs of nginx workers that accept connections (not "shutting down").
async fn accepting_workers(engine: &Engine, id: &str) -> Result<Vec<String>> {
    Ok(engine
        .processes(id)
        .await?
        .into_iter()
        .filter(|(_, args)| args.contains("worker process") && !args.contains("shutting down"))
        .map(|(pid, _)| pid)
        .collect())
}

/// After a switch: wait until the reloaded workers answer with the new live fingerprint.
pub async fn wait_live(edge: &Edge, fingerprint: &str) -> Result<()> {
    let want = crate::site::short(fingerprint).to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = String::new();
    while Instant::now() < deadline {
        let probe = edge.probe;
        let got = tokio::task::spawn_blocking(move || {
            http::get(probe, "/healthz", &[], Duration::from_secs(1))
        })
        .await?;
        match got {
            Ok(r) if r.status == 200 && r.header("x-sitebuild-live") == Some(want.as_str()) => {
                return Ok(());
            }
            Ok(r) => last = format!("{} live={:?}", r.status, r.header("x-sitebuild-live")),
            Err(e) => last = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("the edge did not switch to {want} within 10 s (last answer: {last})")
}

/// Wait until the edge answers HTTP at all (503 before the first deploy is fine).
async fn wait_answering(engine: &Engine, id: &str, probe: SocketAddr) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ok = tokio::task::spawn_blocking(move || {
            http::get(probe, "/healthz", &[], Duration::from_secs(1)).is_ok()
        })
        .await?;
        if ok {
            return Ok(());
        }
        let info = engine.container(id).await?;
        if !info.is_running() || Instant::now() > deadline {
            let logs = engine.logs_tail(id, 20).await;
            bail!(
                "the edge {} does not answer on {probe} ({}); its output:\n{}",
                info.name,
                info.state,
                logs.trim_end()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Refuse early, with the key to change, when another program holds the port.
async fn check_port_free(engine: &Engine, cfg: &Config) -> Result<()> {
    let addr = SocketAddr::new(cfg.bind, cfg.port);
    let err = match TcpListener::bind(addr) {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => anyhow::anyhow!(
            "{addr} is already in use by another program; choose another port with --port, \
             SITEBUILD_PORT or `port` in sitebuild.toml (the port now comes from {})",
            cfg.origin
                .get("port")
                .map(String::as_str)
                .unwrap_or("the default, 8080")
        ),
        // e.g. a non-local address: let the engine decide.
        Err(_) => return Ok(()),
    };
    let address = addr.to_string();
    let holders = engine
        .containers_with_labels(&[(labels::MANAGED, "true"), (labels::ADDRESS, &address)])
        .await
        .unwrap_or_default();
    if let Some(h) = holders.iter().find(|h| h.is_running()) {
        return Err(err.context(format!(
            "{address} is held by another sitebuild project, `{}` (container {}); stop it with \
             `sitebuild down` in that project, or use another port",
            h.label(labels::PROJECT).unwrap_or("?"),
            h.name
        )));
    }
    Err(err)
}
