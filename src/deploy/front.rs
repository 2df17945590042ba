//! A project's edge: its own one (made here, on its `bind:port`) or, with `domains`, its part
//! of the shared edge (`shared_edge.rs`). Everything above `deploy/edge.rs` goes through here to
//! find, ensure, attach to and apply a config to whichever edge serves the project.

use anyhow::{Context, Result};

use super::edge::{self, EDGE_CONF, EDGE_DIR, Edge, LIVE_FILE, Live};
use super::{edge_state, probe, shared_edge};
use crate::config::Config;
use crate::engine::{ContainerInfo, ContainerSpec, Engine, Publish};
use crate::layout::{self, CONTAINER_PORT};
use crate::naming::{self, Labels, labels, roles};
use crate::render::{self, Http2};
use crate::ui::Ui;

/// The edge that serves `cfg`'s project: the shared edge on its `http_port` with `domains`,
/// else its own edge.
pub(crate) async fn find_for(engine: &Engine, cfg: &Config) -> Result<Option<ContainerInfo>> {
    if cfg.domains.is_empty() {
        edge::find(engine, &cfg.name).await
    } else {
        shared_edge::find(engine, cfg.http_port).await
    }
}

/// Make sure the network and a running edge on `bind:port` exist; keeps the live state.
pub(crate) async fn ensure(
    engine: &Engine,
    cfg: &Config,
    livereload: Option<String>,
    ui: &Ui,
) -> Result<Edge> {
    if !cfg.domains.is_empty() {
        return shared_edge::ensure(engine, cfg, livereload, ui).await;
    }
    let address = super::address_of(cfg);
    engine
        .ensure_network(
            &naming::network(&cfg.name),
            &Labels::project(&cfg.name).role(roles::NETWORK).build(),
        )
        .await?;
    let edge = Edge {
        id: String::new(),
        name: naming::edge_container(&cfg.name),
        probe: probe::probe_addr(cfg)?,
        livereload,
        http2: Http2::Unknown,
        acme_cert: None,
        rel: String::new(),
        shared: false,
        host: None,
        maintenance: None,
    };
    if let Some(existing) = edge::find(engine, &cfg.name).await? {
        if existing.label(labels::ADDRESS) == Some(address.as_str()) {
            if !existing.is_running() {
                ui.step(format!("starting the stopped edge {}", existing.name));
                engine.start(&existing.id).await?;
                edge::wait_answering(engine, &existing.id, edge.probe).await?;
            }
            // Only a TLS listener's config depends on it: without TLS, no exec.
            let http2 = if cfg.tls.is_on() {
                edge::nginx_http2(engine, &existing.id).await
            } else {
                Http2::Unknown
            };
            let edge = Edge {
                http2,
                id: existing.id,
                ..edge
            };
            return edge_state::with_state(engine, cfg, edge).await;
        }
        // Moving to another address: make sure it is free before the old edge goes away.
        edge::check_port_free(engine, cfg).await?;
        ui.step(format!(
            "moving {} from {} to {address}",
            cfg.name,
            existing.label(labels::ADDRESS).unwrap_or("?")
        ));
        engine.remove(&existing.id).await?;
    } else {
        edge::check_port_free(engine, cfg).await?;
    }
    let volume = naming::edge_volume(&cfg.name);
    engine
        .ensure_volume(
            &volume,
            &Labels::project(&cfg.name).role(roles::EDGE).build(),
        )
        .await?;
    let edge_labels = cfg
        .labels()
        .role(roles::EDGE)
        .with(labels::ADDRESS, &address)
        .build();
    let mut spec = ContainerSpec::new(&edge.name, &cfg.base_image, edge_labels).publish(Publish {
        host_ip: cfg.bind,
        host_port: cfg.edge_http_port(),
        container_port: CONTAINER_PORT,
    });
    if cfg.tls.is_on() {
        spec = spec.publish(Publish {
            host_ip: cfg.bind,
            host_port: cfg.https_port,
            container_port: render::EDGE_TLS_PORT,
        });
    }
    let spec = spec
        .limits(edge::MEMORY_MIB, 128)
        .tmpfs(edge::TMPFS_MIB)
        .nginx_args(layout::nginx_args(&format!("{EDGE_DIR}/{EDGE_CONF}")))
        .network(naming::network(&cfg.name))
        .volume(&volume, EDGE_DIR)
        .restart();
    let id = engine.create(&spec).await?;
    let edge = edge_state::with_state(engine, cfg, Edge { id, ..edge }).await?;
    // A volume kept from an earlier edge (e.g. after a port change) still names the live site.
    let live = match edge::read_live(engine, &edge).await? {
        Some(l) if edge::site_running(engine, &l.container).await => Some(l),
        _ => None,
    };
    let conf = edge::render_conf(cfg, &edge, live.as_ref())?;
    edge::upload_tls(engine, cfg, &edge).await?;
    engine
        .upload_files(
            &edge.id,
            EDGE_DIR,
            &[
                (EDGE_CONF, conf.as_bytes()),
                (LIVE_FILE, edge::live_line(live.as_ref()).as_bytes()),
            ],
        )
        .await?;
    if let Err(e) = engine.start(&edge.id).await {
        let _ = engine.remove(&edge.id).await;
        return Err(e).with_context(|| format!("the edge could not publish {address}"));
    }
    edge::wait_answering(engine, &edge.id, edge.probe).await?;
    // Now that its nginx runs, its version says how to turn HTTP/2 on (one reload, once).
    let edge = Edge {
        http2: edge::nginx_http2(engine, &edge.id).await,
        ..edge
    };
    if cfg.tls.is_on() {
        refresh(engine, cfg, &edge, live.as_ref(), ui).await?;
    }
    ui.detail(format!("edge {} listens on {address}", edge.name));
    Ok(edge)
}

/// A handle on an existing edge container (its nginx's HTTP/2 syntax asked when it runs).
pub(crate) async fn attach(engine: &Engine, cfg: &Config, info: &ContainerInfo) -> Result<Edge> {
    let http2 = if info.is_running() {
        edge::nginx_http2(engine, &info.id).await
    } else {
        Http2::Unknown
    };
    let shared = info.label(labels::ROLE) == Some(roles::SHARED_EDGE);
    let edge = Edge {
        id: info.id.clone(),
        name: info.name.clone(),
        probe: probe::probe_addr(cfg)?,
        livereload: None,
        http2,
        acme_cert: None,
        rel: if shared {
            shared_edge::rel(&cfg.name)
        } else {
            String::new()
        },
        shared,
        host: if shared {
            cfg.domains.first().cloned()
        } else {
            None
        },
        maintenance: None,
    };
    edge_state::with_stored_state(engine, cfg, edge).await
}

/// Point the project's edge at `live`: write the config, `nginx -t` it, reload gracefully. A
/// config that fails the test changes nothing. On the shared edge only this project's part
/// changes (under the shared edge's lock).
pub(crate) async fn apply(
    engine: &Engine,
    cfg: &Config,
    edge: &Edge,
    live: Option<&Live>,
    ui: &Ui,
) -> Result<()> {
    let conf = edge::prepare(engine, cfg, edge, live).await?;
    if edge.shared {
        shared_edge::apply(engine, cfg, edge, live, &conf, ui).await
    } else {
        edge::apply_own(engine, edge, live, &conf, ui).await
    }
}

/// Make the running edge config the one this sitebuild renders for `live` (an edge made by an
/// earlier version, or an edited `edge.conf.j2`): reloads only when they differ.
pub(crate) async fn refresh(
    engine: &Engine,
    cfg: &Config,
    edge: &Edge,
    live: Option<&Live>,
    ui: &Ui,
) -> Result<()> {
    if edge::is_current(engine, cfg, edge, live).await? {
        return Ok(());
    }
    apply(engine, cfg, edge, live, ui).await
}
