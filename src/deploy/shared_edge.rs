//! The shared edge: one nginx container per engine and `http_port`
//! (`sitebuild-edge-<http_port>`) that owns the HTTP and HTTPS ports for every project with
//! `domains` and routes by Host and SNI to each project's live container.
//!
//! ```text
//! volume sitebuild-edge-<port> at /etc/sitebuild-edge
//!   edge.conf                      main file: global settings, default servers, one include per part
//!   projects/<project>/site.conf   the project's part: upstream, health-gate map, servers
//!   projects/<project>/live        "<container> <fingerprint>" of its live site
//!   projects/<project>/domains     the names it claims (one per line)
//!   projects/<project>/…           certificates, ACME account and answers, maintenance page
//! ```
//!
//! The volume is the source of truth: the main file is rendered from the parts found there, so
//! a change of project A (deploy, rollback, down) rewrites A's part only and B's part is
//! included byte for byte as B's sitebuild wrote it; a killed sitebuild, or another machine
//! deploying B, converges from the same files. Every render + `nginx -t` + reload holds the
//! shared edge's lock (`sitebuild-edge-<port>-lock`), so two projects deploying at once never
//! lose each other's part. The edge joins each project's network (site containers stay on
//! their own network, out of reach of other projects' sites) and leaves it when the project goes
//! down; the last project's `down` removes the edge and its volume.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};

use super::edge::{
    self, EDGE_CONF, EDGE_DIR, EDGE_NEXT, Edge, LIVE_FILE, Live, PROJECTS, SITE_CONF,
};
use super::edge_state;
use super::{lock, probe};
use crate::config::Config;
use crate::engine::{ContainerInfo, ContainerSpec, Engine, Publish};
use crate::layout::{self, CONTAINER_PORT};
use crate::naming::{self, Labels, labels, roles};
use crate::render::{self, EdgeInputs, EdgePart, EdgeTls, Http2};
use crate::tls::{self, CertInfo};
use crate::ui::Ui;

/// The project's part being tested (the part itself: [`edge::SITE_CONF`]).
const SITE_NEXT: &str = "site.conf.next";
/// A main file with one other project's part, to test it alone.
const PART_TEST: &str = "edge.conf.part";
/// The domains a project claims, one per line.
const DOMAINS_FILE: &str = "domains";

/// Where a project's files are, relative to [`EDGE_DIR`].
pub(crate) fn rel(project: &str) -> String {
    format!("{PROJECTS}/{project}/")
}

/// The shared edge on `http_port`, if any (running or not).
pub(crate) async fn find(engine: &Engine, http_port: u16) -> Result<Option<ContainerInfo>> {
    let name = naming::shared_edge(http_port);
    Ok(engine
        .containers_with_labels(&[(labels::PROJECT, &name), (labels::ROLE, roles::SHARED_EDGE)])
        .await?
        .into_iter()
        .next())
}

/// Every shared edge on the engine.
pub(crate) async fn all(engine: &Engine) -> Result<Vec<ContainerInfo>> {
    engine
        .containers_with_labels(&[
            (labels::MANAGED, "true"),
            (labels::ROLE, roles::SHARED_EDGE),
        ])
        .await
}

/// One project's part of a shared edge, as its files in the edge's volume say.
#[derive(Debug, Default, Clone)]
pub(crate) struct Part {
    pub(crate) project: String,
    pub(crate) domains: Vec<String>,
    pub(crate) live: Option<Live>,
    /// Its `site.conf` exists (the main file includes it).
    pub(crate) configured: bool,
    /// Maintenance mode: Some(message) while on.
    pub(crate) maintenance: Option<String>,
    /// The certificate it serves.
    pub(crate) cert: Option<CertInfo>,
    /// `tls = "acme"`: the renewer's last result.
    pub(crate) renewer: Option<super::renewer::RenewStatus>,
}

/// Every project's part, read from the edge's volume (one request), sorted by project.
pub(crate) async fn parts(engine: &Engine, id: &str) -> Result<Vec<Part>> {
    let files = engine
        .download_dir(id, &format!("{EDGE_DIR}/{PROJECTS}"))
        .await?;
    let mut parts: BTreeMap<String, Part> = BTreeMap::new();
    for (path, bytes) in files {
        let Some((project, file)) = path.split_once('/') else {
            continue;
        };
        let part = parts.entry(project.to_string()).or_insert_with(|| Part {
            project: project.to_string(),
            ..Part::default()
        });
        let text = String::from_utf8_lossy(&bytes).into_owned();
        match file {
            DOMAINS_FILE => part.domains = text.split_whitespace().map(String::from).collect(),
            LIVE_FILE => part.live = edge::parse_live(&text),
            SITE_CONF => part.configured = true,
            edge::MAINTENANCE_FILE => part.maintenance = Some(text),
            // The renewer replaces acme/cert.pem without touching the copy sitebuild keeps.
            edge::SERVED_CERT | edge::CERT_FILE
                if part.cert.is_none() || file == edge::CERT_FILE =>
            {
                part.cert = tls::leaf_der(&text)
                    .ok()
                    .and_then(|der| tls::inspect(&der).ok());
            }
            super::renewer::STATUS_FILE => part.renewer = serde_json::from_slice(&bytes).ok(),
            _ => {}
        }
    }
    Ok(parts.into_values().collect())
}

/// A domain of `cfg` that another project on the edge claims is an error naming that project.
fn check_claims(cfg: &Config, edge_name: &str, parts: &[Part]) -> Result<()> {
    for part in parts.iter().filter(|p| p.project != cfg.name) {
        if let Some(d) = cfg.domains.iter().find(|d| part.domains.contains(d)) {
            bail!(
                "domain {d} is already served by project `{other}` on the shared edge {edge_name}; \
                 a domain belongs to one project: remove {d} from `domains` (set in {origin}), or \
                 run `sitebuild down` in `{other}` first (nothing was changed)",
                other = part.project,
                origin = cfg.origin_of("domains"),
            );
        }
    }
    Ok(())
}

/// The parts nginx can load: another project's part whose live container no longer runs (removed
/// or stopped by hand: its name does not resolve, so nginx would refuse the whole config) is left
/// out of the main file, with a note; its files stay, and its next deploy puts it back.
async fn servable(engine: &Engine, parts: Vec<Part>, ours: &str, ui: &Ui) -> Vec<Part> {
    let mut kept = Vec::with_capacity(parts.len());
    for part in parts {
        if part.project != ours
            && part.configured
            && let Some(l) = &part.live
            && !edge::site_running(engine, &l.container).await
        {
            ui.step(format!(
                "leaving {}'s part out of the shared edge: its live container {} does not run \
                 (deploy {} again to bring it back)",
                part.project, l.container, part.project
            ));
            continue;
        }
        kept.push(part);
    }
    kept
}

/// The parts of other projects that nginx loads alone (`nginx -t` of a main file with only
/// that part); the others are left out, with a note.
async fn loadable(
    engine: &Engine,
    edge: &Edge,
    parts: Vec<Part>,
    ours: &str,
    ui: &Ui,
) -> Result<Vec<Part>> {
    let mut kept = Vec::with_capacity(parts.len());
    for part in parts {
        if part.project != ours && part.configured {
            let main = render_main(&includes(std::slice::from_ref(&part), None), edge.http2)?;
            engine
                .upload_files(&edge.id, EDGE_DIR, &[(PART_TEST, main.as_bytes())])
                .await?;
            if let Err(e) =
                edge::test_config(engine, edge, &format!("{EDGE_DIR}/{PART_TEST}")).await
            {
                ui.step(format!(
                    "leaving {p}'s part out of the shared edge: nginx cannot load it (deploy {p}                      again to bring it back): {e:#}",
                    p = part.project
                ));
                continue;
            }
        }
        kept.push(part);
    }
    Ok(kept)
}

/// Write the main config of `parts` as the edge's next one ([`EDGE_NEXT`], with `files` in the
/// same upload) and `nginx -t` it; `ours` = (project, its part's file when it has one in this
/// config). When the test fails, another project's part nginx cannot load must not block this
/// one: each part is tested alone, those that fail are left out (their next deploy writes them
/// again, [`loadable`]), and the test runs again, whose error is then ours. Returns the parts
/// the tested config includes.
async fn tested_next(
    engine: &Engine,
    edge: &Edge,
    mut parts: Vec<Part>,
    ours: (&str, Option<&str>),
    files: &[(&str, &[u8])],
    ui: &Ui,
) -> Result<Vec<Part>> {
    let render = |parts: &[Part]| {
        let ours = ours.1.map(|file| (ours.0, file));
        render_main(&includes(parts, ours), edge.http2)
    };
    let next = render(&parts)?;
    let mut upload = files.to_vec();
    upload.push((EDGE_NEXT, next.as_bytes()));
    engine.upload_files(&edge.id, EDGE_DIR, &upload).await?;
    let next_path = format!("{EDGE_DIR}/{EDGE_NEXT}");
    if edge::test_config(engine, edge, &next_path).await.is_err() {
        parts = loadable(engine, edge, parts, ours.0, ui).await?;
        let next = render(&parts)?;
        engine
            .upload_files(&edge.id, EDGE_DIR, &[(EDGE_NEXT, next.as_bytes())])
            .await?;
        edge::test_config(engine, edge, &next_path).await?;
    }
    Ok(parts)
}

/// The files the main config includes: every configured part, with `ours` = (project, file)
/// standing in for that project's part.
fn includes(parts: &[Part], ours: Option<(&str, &str)>) -> Vec<String> {
    let mut files: Vec<String> = parts
        .iter()
        .filter(|p| p.configured && ours.is_none_or(|(o, _)| o != p.project))
        .map(|p| part_path(&p.project, SITE_CONF))
        .collect();
    if let Some((project, file)) = ours {
        files.push(part_path(project, file));
    }
    files.sort();
    files
}

/// The path of `project`'s part file `file` in the edge, as the main config includes it.
fn part_path(project: &str, file: &str) -> String {
    format!("{EDGE_DIR}/{}{file}", rel(project))
}

/// Does the main config `main` include `project`'s part?
fn included(main: &str, project: &str) -> bool {
    let file = part_path(project, SITE_CONF);
    main.lines().any(|l| {
        l.trim()
            .strip_prefix("include ")
            .is_some_and(|rest| rest.trim().trim_end_matches(';').trim_end() == file)
    })
}

/// The main file (always the built-in template: it is shared by projects whose templates may
/// differ; a project's `nginx/edge.conf.j2` shapes its own part).
fn render_main(includes: &[String], http2: Http2) -> Result<String> {
    render::render_edge_builtin(&EdgeInputs {
        part: EdgePart::Main(includes),
        tls: Some(EdgeTls {
            http2,
            ..EdgeTls::default()
        }),
        ..EdgeInputs::default()
    })
}

/// A handle on the shared edge `info` for `cfg`'s project (no state read).
fn handle(cfg: &Config, info: &ContainerInfo, http2: Http2) -> Result<Edge> {
    Ok(Edge {
        id: info.id.clone(),
        name: info.name.clone(),
        probe: probe::probe_addr(cfg)?,
        livereload: None,
        http2,
        acme_cert: None,
        rel: rel(&cfg.name),
        shared: true,
        host: cfg.domains.first().cloned(),
        maintenance: None,
    })
}

/// Make sure the shared edge on `http_port` runs and reaches the project's network; refuses,
/// before anything changes, a domain another project claims and an edge on other ports.
pub(crate) async fn ensure(
    engine: &Engine,
    cfg: &Config,
    livereload: Option<String>,
    ui: &Ui,
) -> Result<Edge> {
    let name = naming::shared_edge(cfg.http_port);
    let address = super::address_of(cfg);
    let network = naming::network(&cfg.name);
    let lock_name = naming::lock_container(&name);
    let id = lock::holding_shared(engine, cfg, &lock_name, &name, ui, async {
        let existing = find(engine, cfg.http_port).await?;
        if let Some(e) = &existing {
            let have = e.label(labels::ADDRESS).unwrap_or("?");
            if have != address {
                bail!(
                    "the shared edge {name} of the projects with `domains` on http_port {} \
                     listens on {have}, this project asks for {address}: give it the same \
                     `bind` and `https_port` as the other projects on that edge (https_port from \
                     {}), or another `http_port`",
                    cfg.http_port,
                    cfg.origin_of("https_port")
                );
            }
            check_claims(cfg, &name, &parts(engine, &e.id).await?)?;
        } else {
            // An own edge of this project from an earlier sitebuild (domains used to get one)
            // holds the ports: it is replaced.
            if let Some(own) = edge::find(engine, &cfg.name).await? {
                ui.step(format!(
                    "replacing {}'s own edge {} by the shared edge {name}",
                    cfg.name, own.name
                ));
                engine.remove(&own.id).await?;
            }
            edge::check_port_free(engine, cfg).await?;
        }
        engine
            .ensure_network(
                &network,
                &Labels::project(&cfg.name).role(roles::NETWORK).build(),
            )
            .await?;
        let id = match existing {
            Some(e) => {
                engine.connect_network(&network, &e.id).await?;
                if !e.is_running() {
                    ui.step(format!("starting the stopped shared edge {}", e.name));
                    engine.start(&e.id).await?;
                    edge::wait_answering(engine, &e.id, probe::probe_addr(cfg)?).await?;
                }
                e.id
            }
            None => create(engine, cfg, &name, &address, ui).await?,
        };
        Ok(id)
    })
    .await?;
    let info = engine.container(&id).await?;
    let http2 = edge::nginx_http2(engine, &id).await;
    let edge = Edge {
        livereload,
        ..handle(cfg, &info, http2)?
    };
    let edge = edge_state::with_state(engine, cfg, edge).await?;
    // The project's part goes in at once: its domains route here from the first deploy on (the
    // health gate, ACME answers).
    let live = match edge::read_live(engine, &edge).await? {
        Some(l) if edge::site_running(engine, &l.container).await => Some(l),
        _ => None,
    };
    if !edge::is_current(engine, cfg, &edge, live.as_ref()).await? {
        let conf = edge::prepare(engine, cfg, &edge, live.as_ref()).await?;
        apply(engine, cfg, &edge, live.as_ref(), &conf, ui).await?;
    }
    super::renewer::ensure_for(engine, cfg, &edge, ui).await?;
    Ok(edge)
}

/// Create and start the shared edge (the caller checked the ports). A volume kept from an earlier edge
/// still holds the projects' parts: those whose network exists are served again.
async fn create(
    engine: &Engine,
    cfg: &Config,
    name: &str,
    address: &str,
    ui: &Ui,
) -> Result<String> {
    let labels = Labels::project(name).role(roles::SHARED_EDGE);
    engine.ensure_volume(name, &labels.clone().build()).await?;
    let spec = ContainerSpec::new(
        name,
        &cfg.base_image,
        labels.with(labels::ADDRESS, address).build(),
    )
    .publish(Publish {
        host_ip: cfg.bind,
        host_port: cfg.http_port,
        container_port: CONTAINER_PORT,
    })
    .publish(Publish {
        host_ip: cfg.bind,
        host_port: cfg.https_port,
        container_port: render::EDGE_TLS_PORT,
    })
    .limits(edge::MEMORY_MIB, 256)
    .tmpfs(edge::TMPFS_MIB)
    .nginx_args(layout::nginx_args(&format!("{EDGE_DIR}/{EDGE_CONF}")))
    .network(naming::network(&cfg.name))
    .volume(name, EDGE_DIR)
    .restart();
    let id = engine.create(&spec).await?;
    let mut kept = Vec::new();
    for part in parts(engine, &id).await? {
        // This project's network is joined already; the others' only if they still exist. A
        // part whose live container is gone would keep nginx from starting: left out.
        let live_ok = match &part.live {
            Some(l) => edge::site_running(engine, &l.container).await,
            None => true,
        };
        let reachable = part.configured
            && live_ok
            && (part.project == cfg.name
                || engine
                    .connect_network(&naming::network(&part.project), &id)
                    .await
                    .is_ok());
        if reachable {
            kept.push(part);
        }
    }
    let main = render_main(&includes(&kept, None), Http2::Unknown)?;
    engine
        .upload_files(&id, EDGE_DIR, &[(EDGE_CONF, main.as_bytes())])
        .await?;
    if let Err(e) = engine.start(&id).await {
        let _ = engine.remove(&id).await;
        return Err(e).with_context(|| format!("the shared edge could not publish {address}"));
    }
    edge::wait_answering(engine, &id, probe::probe_addr(cfg)?).await?;
    ui.detail(format!("shared edge {name} listens on {address}"));
    Ok(id)
}

/// Install `conf` as the project's part: under the edge's lock, the claims checked again, the
/// main file with this part tested (`nginx -t`), then written and reloaded gracefully. Every
/// other project's part is included as it is.
pub(crate) async fn apply(
    engine: &Engine,
    cfg: &Config,
    edge: &Edge,
    live: Option<&Live>,
    conf: &str,
    ui: &Ui,
) -> Result<()> {
    let lock_name = naming::lock_container(&edge.name);
    lock::holding_shared(engine, cfg, &lock_name, &edge.name, ui, async {
        let parts = parts(engine, &edge.id).await?;
        check_claims(cfg, &edge.name, &parts)?;
        let parts = servable(engine, parts, &cfg.name, ui).await;
        let entry = edge.entry(SITE_NEXT);
        let parts = tested_next(
            engine,
            edge,
            parts,
            (&cfg.name, Some(SITE_NEXT)),
            &[(&entry, conf.as_bytes())],
            ui,
        )
        .await?;
        let main = render_main(&includes(&parts, Some((&cfg.name, SITE_CONF))), edge.http2)?;
        let domains = format!("{}\n", cfg.domains.join("\n"));
        let live_line = edge::live_line(live);
        engine
            .upload_files(
                &edge.id,
                EDGE_DIR,
                &[
                    (&edge.entry(SITE_CONF), conf.as_bytes()),
                    (&edge.entry(LIVE_FILE), live_line.as_bytes()),
                    (&edge.entry(DOMAINS_FILE), domains.as_bytes()),
                    (EDGE_CONF, main.as_bytes()),
                ],
            )
            .await?;
        edge::reload(engine, edge).await
    })
    .await
}

/// `down` of `cfg`'s project on the shared edge `info`: its part goes (a graceful reload with
/// the other parts unchanged) and the edge leaves its network; with the last part the edge and
/// its volume go. False when the project has no part there.
pub(crate) async fn remove_project(
    engine: &Engine,
    cfg: &Config,
    info: &ContainerInfo,
    ui: &Ui,
) -> Result<bool> {
    let name = info.name.clone();
    // Most edges have no part of this project: look before taking their lock.
    if !parts(engine, &info.id)
        .await?
        .iter()
        .any(|p| p.project == cfg.name)
    {
        return Ok(false);
    }
    let lock_name = naming::lock_container(&name);
    lock::holding_shared(engine, cfg, &lock_name, &name, ui, async {
        let parts = parts(engine, &info.id).await?;
        if !parts.iter().any(|p| p.project == cfg.name) {
            return Ok(false);
        }
        let others: Vec<Part> = parts
            .into_iter()
            .filter(|p| p.project != cfg.name)
            .collect();
        let others = servable(engine, others, &cfg.name, ui).await;
        if others.is_empty() {
            super::renewer::remove(engine, &name).await?;
            engine.remove(&info.id).await?;
            engine.remove_volume(&name).await?;
            ui.step(format!(
                "removed the shared edge {name} (its last project went down)"
            ));
            return Ok(true);
        }
        let info = engine.container(&info.id).await?;
        if info.is_running() {
            let edge = handle(cfg, &info, edge::nginx_http2(engine, &info.id).await)?;
            let others = tested_next(engine, &edge, others, (&cfg.name, None), &[], ui).await?;
            let main = render_main(&includes(&others, None), edge.http2)?;
            engine
                .upload_files(&edge.id, EDGE_DIR, &[(EDGE_CONF, main.as_bytes())])
                .await?;
            edge::reload(engine, &edge).await?;
            remove_acme_entries(engine, &edge).await;
            edge::remove_paths(engine, &edge, &[format!("{EDGE_DIR}/{}", rel(&cfg.name))]).await?;
        } else {
            bail!(
                "the shared edge {name} is not running ({}); start it with `docker start {name}` \
                 and run `sitebuild down` again",
                info.state
            );
        }
        engine
            .disconnect_network(&naming::network(&cfg.name), &info.id)
            .await?;
        ui.step(format!("removed {} from the shared edge {name}", cfg.name));
        Ok(true)
    })
    .await
}

/// Empty the project's `acme/` directory as the edge's user, who owns it (the renewer writes
/// there; root in the container has no capability to delete in another user's directory). What
/// is left is removed with the project's directory; a failure here shows there.
async fn remove_acme_entries(engine: &Engine, edge: &Edge) {
    let dir = edge.path(edge::ACME_DIR);
    for prefix in [&[][..], &["busybox"][..]] {
        let mut cmd: Vec<String> = prefix.iter().map(ToString::to_string).collect();
        // Empties the directory; removing the directory itself fails (its parent is root's).
        cmd.extend(["rm".to_string(), "-rf".to_string(), format!("{dir}/")]);
        if let Ok((code, _)) = engine.exec(&edge.id, &cmd).await
            && code != 126
            && code != 127
        {
            return;
        }
    }
}

/// `status` lines of the shared edge `info`: the edge, then one line per project on it.
pub(crate) async fn status(engine: &Engine, info: &ContainerInfo) -> Result<Vec<String>> {
    let info = engine.container(&info.id).await?;
    let parts = parts(engine, &info.id).await?;
    // What the running config includes: a part left out at the last reload (nginx could not
    // load it, or its container was gone) has its files but is not served.
    let main = engine
        .download_file(&info.id, &format!("{EDGE_DIR}/{EDGE_CONF}"))
        .await?
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let mut out = vec![format!(
        "edge       {} ({}) on {} since {}, shared by {} project(s)",
        info.name,
        info.state,
        info.label(labels::ADDRESS).unwrap_or("?"),
        info.started_at.as_deref().unwrap_or("?"),
        parts.len()
    )];
    if let Some(line) = super::renewer::status_line(engine, &info.name).await? {
        out.push(line);
    }
    for p in &parts {
        let live = p.live.as_ref().map_or_else(
            || "no live version".to_string(),
            |l| format!("live {}", crate::site::short(&l.fingerprint)),
        );
        let cert = p.cert.as_ref().map_or_else(
            || "plain HTTP".to_string(),
            |c| format!("certificate from {} until {}", c.issuer, c.expires()),
        );
        let maintenance = match &p.maintenance {
            Some(m) if m.trim().is_empty() => "maintenance ON".to_string(),
            Some(m) => format!("maintenance ON ({:?})", m.trim()),
            None => "maintenance off".to_string(),
        };
        let left_out = if main
            .as_deref()
            .is_some_and(|m| p.configured && !included(m, &p.project))
        {
            format!(
                "; NOT SERVED: left out of the edge's config at its last reload (nginx could not \
                 load the part, or its container was not running): deploy {} again",
                p.project
            )
        } else {
            String::new()
        };
        out.push(format!(
            "on edge    {}: {}; {live}; {cert}; {maintenance}{left_out}",
            p.project,
            p.domains.join(", ")
        ));
        if let Some(r) = &p.renewer {
            out.push(format!("renewal    {}: {}", p.project, r.line()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(project: &str, domains: &[&str], configured: bool) -> Part {
        Part {
            project: project.to_string(),
            domains: domains.iter().map(ToString::to_string).collect(),
            configured,
            ..Part::default()
        }
    }

    #[test]
    fn includes_replace_ours_and_skip_unconfigured() {
        let parts = [
            part("a", &["a.test"], true),
            part("b", &["b.test"], true),
            part("c", &[], false),
        ];
        assert_eq!(
            includes(&parts, Some(("a", SITE_NEXT))),
            [
                "/etc/sitebuild-edge/projects/a/site.conf.next",
                "/etc/sitebuild-edge/projects/b/site.conf"
            ]
        );
        assert_eq!(includes(&parts, None).len(), 2);
        assert_eq!(includes(&[], Some(("n", SITE_CONF))).len(), 1);
    }

    #[test]
    fn status_sees_which_parts_the_running_config_includes() {
        let parts = [
            part("a", &["a.test"], true),
            part("b", &["b.test"], true),
            part("ab", &["ab.test"], true),
        ];
        // b was left out at the last reload.
        let kept = [parts[0].clone(), parts[2].clone()];
        let main = render_main(&includes(&kept, None), Http2::Directive).unwrap();
        assert!(included(&main, "a"));
        assert!(included(&main, "ab"));
        assert!(!included(&main, "b"));
        assert!(!included("", "a"));
    }

    #[test]
    fn main_file_includes_parts_and_rejects_unknown_names() {
        let files = vec!["/etc/sitebuild-edge/projects/a/site.conf".to_string()];
        let main = render_main(&files, Http2::Directive).unwrap();
        assert!(main.contains("include /etc/sitebuild-edge/projects/a/site.conf;"));
        assert!(main.contains("ssl_reject_handshake on;"));
        assert!(main.contains("keys_zone=sitebuild:"));
        assert!(!main.contains("\n    upstream "), "{main}");
        let bad = vec!["/x; evil".to_string()];
        assert!(render_main(&bad, Http2::Directive).is_err());
    }

    #[test]
    fn site_part_has_only_this_projects_names() {
        let domains = vec!["a.test".to_string(), "www.a.test".to_string()];
        let inputs = EdgeInputs {
            live: "blog-0123456789ab-abcdef",
            live_fingerprint: "0123456789ab",
            project: "blog",
            domains: &domains,
            part: EdgePart::Site,
            ..EdgeInputs::default()
        };
        let serving = render::render_edge_builtin(&inputs).unwrap();
        assert!(
            serving.contains("proxy_cache_key \"blog/0123456789ab"),
            "{serving}"
        );
        assert!(!serving.contains("maintenance"), "{serving}");
        let site = render::render_edge_builtin(&EdgeInputs {
            maintenance_page: Some("/etc/sitebuild-edge/projects/blog/maintenance.html"),
            ..inputs
        })
        .unwrap();
        assert!(!site.contains("default_server"), "{site}");
        assert!(!site.contains("http {"), "{site}");
        assert!(site.contains("server_name a.test www.a.test;"), "{site}");
        assert!(site.contains("upstream sb_"), "{site}");
        assert!(
            site.contains("error_page 503 /.sitebuild/maintenance.html;"),
            "{site}"
        );
        assert!(
            site.contains("add_header Retry-After \"120\" always;"),
            "{site}"
        );
        assert!(!site.contains("$sitebuild_candidate"), "{site}");
        let tls = render::render_edge_builtin(&EdgeInputs {
            tls: Some(EdgeTls {
                cert: "/etc/sitebuild-edge/projects/blog/tls-a.crt",
                key: "/etc/sitebuild-edge/projects/blog/tls-a.key",
                https_port: 443,
                http2: Http2::Directive,
                acme_challenges: "/etc/sitebuild-edge/projects/blog",
                ..EdgeTls::default()
            }),
            ..inputs
        })
        .unwrap();
        assert!(tls.contains("listen 8443 ssl;"), "{tls}");
        assert!(!tls.contains("default_server"), "{tls}");
        assert!(
            tls.contains("alias /etc/sitebuild-edge/projects/blog/acme-challenge-$1;"),
            "{tls}"
        );
        assert_eq!(tls.matches("server {").count(), 2, "{tls}");
    }
}
