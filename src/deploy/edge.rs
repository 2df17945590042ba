//! The edge: a stable nginx container that owns the published host port and proxies to the live
//! site container over the project's private network. Switching versions = render a new edge
//! config into its volume, `nginx -t`, `nginx -s reload` (graceful: old workers finish their
//! requests). nginx resolves upstream names when it loads the config, so the reload is what
//! moves traffic; a DNS change alone would not.
//!
//! A project with `domains` uses the shared edge instead (`shared_edge.rs`): the same [`Edge`]
//! handle, with its state in `projects/<name>/` of the shared edge's volume and its config as one
//! part of the shared edge's config. Everything here works on both through [`Edge::path`];
//! `front.rs` finds, creates and attaches to the edge of a project, whichever kind it is.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::probe;
use crate::config::{Config, Tls};
use crate::engine::{ContainerInfo, Engine};
use crate::http;
use crate::layout::{self, NGINX};
use crate::naming::{labels, roles};
use crate::render::{self, EdgeInputs, EdgePart, EdgeTls, Http2};
use crate::ui::{Phases, Ui};

/// The edge's `/tmp` (MiB). Its response cache lives there (`max_size` 32m for a project's own
/// edge, 64m for the shared edge, in edge.conf.j2), and nginx writes each response it caches
/// into it while serving it; a write that runs out of room cuts that response short (the client
/// gets a truncated body). So `/tmp` holds the full cache plus 192 MiB of responses being
/// filled at once. (It was 64 MiB, all containers' default: the shared edge's cache alone could
/// fill it, and never reached its bound to evict anything; found by the soak.)
pub(crate) const TMPFS_MIB: i64 = 256;
/// The edge's memory limit (MiB): its tmpfs, whose pages count as its memory, plus nginx
/// (~35 MiB measured under the soak's load).
pub(crate) const MEMORY_MIB: i64 = TMPFS_MIB + 128;

/// Where the edge's volume (config + state) is mounted.
pub(crate) const EDGE_DIR: &str = "/etc/sitebuild-edge";
pub(crate) const EDGE_CONF: &str = "edge.conf";
pub(crate) const EDGE_NEXT: &str = "edge.conf.next";
/// "<container name> <fingerprint>" of the live site, written at each switch.
pub(crate) const LIVE_FILE: &str = "live";
/// Maintenance mode: present while it is on; its content is the message (user text, only ever
/// written into the HTML page, escaped).
pub(crate) const MAINTENANCE_FILE: &str = "maintenance";
/// The page served with 503 in maintenance mode.
pub(crate) const MAINTENANCE_PAGE: &str = "maintenance.html";
/// Directory of the projects' parts in the shared edge's volume.
pub(crate) const PROJECTS: &str = "projects";
/// A project's part of the shared edge's config (in its `projects/<name>/`).
pub(crate) const SITE_CONF: &str = "site.conf";
/// The project's ACME directory in the edge's volume (owned by the edge's user).
pub(crate) const ACME_DIR: &str = "acme";
/// The served certificate chain and key (the edge config names these paths).
pub(crate) const CERT_FILE: &str = "acme/cert.pem";
pub(crate) const KEY_FILE: &str = "acme/key.pem";
/// A copy of the certificate chain the edge serves for the project (for `status`).
pub(crate) const SERVED_CERT: &str = "served.crt";

/// The edge's health-gate route for a new version, and the header that names its container.
pub(crate) const CANDIDATE_PATH: &str = "/.sitebuild/candidate/healthz";
pub(crate) const CANDIDATE_HEADER: &str = "X-Sitebuild-Candidate";

/// The live site as recorded by the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Live {
    pub(crate) container: String,
    pub(crate) fingerprint: String,
}

/// A running edge container.
#[derive(Debug, Clone)]
pub(crate) struct Edge {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) probe: SocketAddr,
    /// `sitebuild watch`: `ip:port` of its live-reload server; None in production.
    pub(crate) livereload: Option<String>,
    /// How the edge's nginx enables HTTP/2 (from `nginx -v` once it runs).
    pub(crate) http2: Http2,
    /// `tls = "acme"`: the certificate it serves (from its volume; see `certs.rs`).
    pub(crate) acme_cert: Option<crate::tls::CertKey>,
    /// Where the project's state lives in the edge's volume, relative to [`EDGE_DIR`]: "" in a
    /// project's own edge, `projects/<name>/` in the shared edge.
    pub(crate) rel: String,
    /// The shared edge of projects with `domains` (routes by Host/SNI).
    pub(crate) shared: bool,
    /// The Host header sitebuild's probes send (the first domain on the shared edge).
    pub(crate) host: Option<String>,
    /// Maintenance mode: Some(message) while it is on (from the volume).
    pub(crate) maintenance: Option<String>,
}

impl Edge {
    /// Absolute path of one of the project's files in the edge.
    pub(crate) fn path(&self, file: &str) -> String {
        format!("{EDGE_DIR}/{}{file}", self.rel)
    }

    /// Name of one of the project's files in an upload to [`EDGE_DIR`].
    pub(crate) fn entry(&self, file: &str) -> String {
        format!("{}{file}", self.rel)
    }

    /// Headers of sitebuild's probes through this edge (the Host on the shared edge).
    pub(crate) fn probe_headers(&self) -> Vec<(&'static str, String)> {
        self.host.iter().map(|h| ("Host", h.clone())).collect()
    }
}

/// GET `path` through the edge with its probe headers plus `extra`.
pub(crate) fn edge_get(
    edge: &Edge,
    path: &str,
    extra: &[(&str, &str)],
    timeout: Duration,
) -> Result<http::Response> {
    let owned = edge.probe_headers();
    let mut headers: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    headers.extend_from_slice(extra);
    http::get(edge.probe, path, &headers, timeout)
}

/// The project's edge container, if any (running or not).
pub(crate) async fn find(engine: &Engine, project: &str) -> Result<Option<ContainerInfo>> {
    Ok(engine
        .containers_with_labels(&[(labels::PROJECT, project), (labels::ROLE, roles::EDGE)])
        .await?
        .into_iter()
        .next())
}

/// The maintenance message when maintenance mode is on.
pub(crate) async fn read_maintenance(engine: &Engine, edge: &Edge) -> Result<Option<String>> {
    Ok(engine
        .download_file(&edge.id, &edge.path(MAINTENANCE_FILE))
        .await?
        .map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// `nginx -v` in the running edge → the HTTP/2 syntax it accepts.
pub(crate) async fn nginx_http2(engine: &Engine, id: &str) -> Http2 {
    match engine
        .exec(id, &[NGINX.to_string(), "-v".to_string()])
        .await
    {
        Ok((0, out)) => Http2::from_version_output(&out),
        _ => Http2::Unknown,
    }
}

/// The certificate and key files for `cfg`'s TLS mode: names in the edge's volume (named by a
/// hash of their content, so a new certificate is a new config and goes through `nginx -t`).
fn tls_files<'a>(
    cfg: &'a Config,
    edge: &'a Edge,
) -> Option<(String, String, &'a crate::tls::CertKey)> {
    let ck = match &cfg.tls {
        Tls::Files(ck) => ck,
        // Fixed names in the project's `acme/` directory: the renewer replaces them there.
        Tls::Acme => {
            let ck = edge.acme_cert.as_ref()?;
            return Some((CERT_FILE.to_string(), KEY_FILE.to_string(), ck));
        }
        Tls::Off => return None,
    };
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(
        format!("{}{}", ck.chain_pem, ck.key_pem).as_bytes(),
    ));
    let base = format!("tls-{}", &hash[..12]);
    Some((format!("{base}.crt"), format!("{base}.key"), ck))
}

/// Make the project's `acme/` directory in the edge's volume belong to the edge's user (0755:
/// root in the edge, without capabilities, must still list it to remove the project; the keys
/// in it are 0640).
pub(crate) async fn prepare_acme_dir(engine: &Engine, edge: &Edge) -> Result<()> {
    engine
        .owned_dir(&edge.id, EDGE_DIR, &edge.entry(ACME_DIR), 0o755)
        .await
}

/// Write the served chain and key (one archive, owned by the edge's user, a fresh mtime: see
/// `Engine::upload_fresh_files`).
pub(crate) async fn save_acme_cert(
    engine: &Engine,
    edge: &Edge,
    chain: &str,
    key: &str,
) -> Result<()> {
    engine
        .upload_fresh_files(
            &edge.id,
            EDGE_DIR,
            &[
                (&edge.entry(KEY_FILE), key.as_bytes(), 0o640),
                (&edge.entry(CERT_FILE), chain.as_bytes(), 0o644),
            ],
        )
        .await
}

/// Put the certificate (0644) and its key (0640, group of the edge's user) into the edge's volume.
pub(crate) async fn upload_tls(engine: &Engine, cfg: &Config, edge: &Edge) -> Result<()> {
    let Some((crt, key, ck)) = tls_files(cfg, edge) else {
        return Ok(());
    };
    if matches!(cfg.tls, Tls::Acme) {
        return save_acme_cert(engine, edge, &ck.chain_pem, &ck.key_pem).await;
    }
    let (crt, key, served) = (edge.entry(&crt), edge.entry(&key), edge.entry(SERVED_CERT));
    engine
        .upload_files(
            &edge.id,
            EDGE_DIR,
            &[
                (&crt, ck.chain_pem.as_bytes()),
                (&served, ck.chain_pem.as_bytes()),
            ],
        )
        .await?;
    engine
        .upload_secret_files(
            &edge.id,
            EDGE_DIR,
            &[(&key, ck.key_pem.as_bytes())],
            layout::RUN_AS_GID,
        )
        .await
}

pub(crate) async fn site_running(engine: &Engine, name: &str) -> bool {
    engine.container(name).await.is_ok_and(|c| c.is_running())
}

pub(crate) fn live_line(live: Option<&Live>) -> String {
    live.map(|l| format!("{} {}\n", l.container, l.fingerprint))
        .unwrap_or_default()
}

/// The project's edge config: the whole file of its own edge, or its part of the shared edge.
pub(crate) fn render_conf(cfg: &Config, edge: &Edge, live: Option<&Live>) -> Result<String> {
    let short = live
        .map(|l| crate::site::short(&l.fingerprint).to_string())
        .unwrap_or_default();
    let files = tls_files(cfg, edge).map(|(c, k, _)| (edge.path(&c), edge.path(&k)));
    let challenges = edge.path(ACME_DIR);
    let challenges = challenges.as_str();
    let page = edge.path(MAINTENANCE_PAGE);
    let tls = files.as_ref().map(|(cert, key)| EdgeTls {
        cert,
        key,
        https_port: cfg.https_port,
        hsts: cfg.hsts,
        http2: edge.http2,
        acme_challenges: if matches!(cfg.tls, Tls::Acme) {
            challenges
        } else {
            ""
        },
    });
    render::render_edge(
        &cfg.templates_dir,
        &EdgeInputs {
            live: live.map_or("", |l| l.container.as_str()),
            live_fingerprint: &short,
            project: &cfg.name,
            livereload: edge.livereload.as_deref().unwrap_or(""),
            domains: &cfg.domains,
            tls,
            part: if edge.shared {
                EdgePart::Site
            } else {
                EdgePart::Whole
            },
            maintenance_page: edge.maintenance.is_some().then_some(page.as_str()),
        },
    )
}

/// The live site recorded in the edge's volume (None before the first deploy).
pub(crate) async fn read_live(engine: &Engine, edge: &Edge) -> Result<Option<Live>> {
    let Some(bytes) = engine
        .download_file(&edge.id, &edge.path(LIVE_FILE))
        .await?
    else {
        return Ok(None);
    };
    Ok(parse_live(&String::from_utf8_lossy(&bytes)))
}

/// The `live` file: "<container> <fingerprint>", or empty.
pub(crate) fn parse_live(text: &str) -> Option<Live> {
    text.split_once(' ').map(|(c, f)| Live {
        container: c.trim().to_string(),
        fingerprint: f.trim().to_string(),
    })
}

/// Before a config goes in: the maintenance page for `live` (when maintenance is on), the
/// certificate files; returns the project's rendered config.
pub(crate) async fn prepare(
    engine: &Engine,
    cfg: &Config,
    edge: &Edge,
    live: Option<&Live>,
) -> Result<String> {
    if edge.maintenance.is_some() {
        write_maintenance_page(engine, edge, live).await?;
    }
    let conf = render_conf(cfg, edge, live)?;
    upload_tls(engine, cfg, edge).await?;
    Ok(conf)
}

/// Point a project's own edge at `live` with `conf` (from [`prepare`]): write it, `nginx -t`
/// it, reload gracefully. A config that fails the test changes nothing.
pub(crate) async fn apply_own(
    engine: &Engine,
    edge: &Edge,
    live: Option<&Live>,
    conf: &str,
    ui: &Ui,
) -> Result<()> {
    let mut t = Phases::start();
    stage_own(engine, edge, conf).await?;
    t.mark("upload");
    test_staged(engine, edge).await?;
    t.mark("nginx -t");
    commit_own(engine, edge, live, conf, t, ui).await
}

/// The first half of [`apply_own`]: write `conf` as the edge's next config
/// ([`EDGE_NEXT`]: not read by the running nginx, not live). A deploy stages the config of its
/// candidate while the candidate starts, then tests it ([`test_staged`]) during the health
/// gate, so only [`commit_own`] is left after the gate.
pub(crate) async fn stage_own(engine: &Engine, edge: &Edge, conf: &str) -> Result<()> {
    engine
        .upload_files(&edge.id, EDGE_DIR, &[(EDGE_NEXT, conf.as_bytes())])
        .await
}

/// `nginx -t` of the staged config ([`stage_own`]); the containers it names must be running
/// (nginx resolves upstream names at the test).
pub(crate) async fn test_staged(engine: &Engine, edge: &Edge) -> Result<()> {
    test_config(engine, edge, &format!("{EDGE_DIR}/{EDGE_NEXT}")).await
}

/// The second half of [`apply_own`], once `conf` passed [`test_staged`]: make it the edge's
/// config with the `live` record, reload gracefully and wait until the old workers stopped
/// accepting. `t` has the phases so far (printed with -v).
pub(crate) async fn commit_own(
    engine: &Engine,
    edge: &Edge,
    live: Option<&Live>,
    conf: &str,
    mut t: Phases,
    ui: &Ui,
) -> Result<()> {
    // The workers that accept now are the old ones: listed while the config is written.
    let line = live_line(live);
    let files = [(EDGE_CONF, conf.as_bytes()), (LIVE_FILE, line.as_bytes())];
    let (written, old_workers) = tokio::join!(
        engine.upload_files(&edge.id, EDGE_DIR, &files),
        accepting_workers(engine, &edge.id)
    );
    written?;
    let old_workers = old_workers?;
    t.mark("write");
    reload_from(engine, edge, &old_workers, &mut t).await?;
    ui.detail(format!("edge {}: {}", edge.name, t.line()));
    Ok(())
}

/// `nginx -t` of the config at `path` in the edge; the error quotes nginx.
pub(crate) async fn test_config(engine: &Engine, edge: &Edge, path: &str) -> Result<()> {
    let (code, out) = engine
        .exec(
            &edge.id,
            &[NGINX, "-e", "stderr", "-t", "-q", "-c", path].map(String::from),
        )
        .await?;
    if code != 0 {
        bail!(
            "the edge config does not pass nginx -t (nothing was switched); nginx says:\n{}",
            out.trim_end()
        );
    }
    Ok(())
}

/// `nginx -s reload` in the container `id` (`name` says which in errors: "the edge …") whose nginx runs the config
/// `conf`: new workers, caches emptied; asynchronous (old workers finish on their own).
///
/// An exec, not SIGHUP through the engine's kill API (one round trip less): Docker 20.10 marks
/// a container that got any signal through that API as manually stopped, and `unless-stopped`
/// then no longer restarts it after a crash (measured: the reliability test's crashed edge
/// stayed down).
pub(crate) async fn nginx_reload(engine: &Engine, id: &str, name: &str, conf: &str) -> Result<()> {
    let (code, out) = engine
        .exec(
            id,
            &[NGINX, "-e", "stderr", "-c", conf, "-s", "reload"].map(String::from),
        )
        .await?;
    if code != 0 {
        bail!("nginx -s reload failed in {name}: {}", out.trim_end());
    }
    Ok(())
}

/// Reload the edge's nginx with its config file and wait until no old worker accepts
/// connections any more.
pub(crate) async fn reload(engine: &Engine, edge: &Edge) -> Result<()> {
    let old_workers = accepting_workers(engine, &edge.id).await?;
    reload_from(engine, edge, &old_workers, &mut Phases::start()).await
}

/// [`reload`] when the workers that accepted before it are known.
async fn reload_from(
    engine: &Engine,
    edge: &Edge,
    old_workers: &[String],
    t: &mut Phases,
) -> Result<()> {
    let name = format!("the edge {}", edge.name);
    nginx_reload(engine, &edge.id, &name, &format!("{EDGE_DIR}/{EDGE_CONF}")).await?;
    t.mark("reload");
    // The reload is asynchronous: until every old worker has closed its listening socket, a
    // new connection may still get the old config. Wait for that, so "switched" means switched.
    let switched = probe::poll_until(
        Duration::from_secs(10),
        Duration::from_millis(10),
        async || {
            let now = accepting_workers(engine, &edge.id).await?;
            Ok((!now.iter().any(|pid| old_workers.contains(pid))).then_some(()))
        },
    )
    .await?;
    t.mark("old workers gone");
    switched.with_context(|| {
        format!(
            "the edge {} still has workers with the old config after 10 s",
            edge.name
        )
    })
}

/// Remove files or directories from the edge's volume (`rm -rf`, as root: the engine wrote them
/// root-owned). `rm`, else busybox's (the offline base has only `/bin/busybox`).
pub(crate) async fn remove_paths(engine: &Engine, edge: &Edge, paths: &[String]) -> Result<()> {
    let mut last = String::new();
    for prefix in [&[][..], &["busybox"][..]] {
        let mut cmd: Vec<String> = prefix.iter().map(ToString::to_string).collect();
        cmd.extend(["rm".to_string(), "-rf".to_string()]);
        cmd.extend(paths.iter().cloned());
        match engine.exec_root(&edge.id, &cmd).await {
            Ok((0, _)) => return Ok(()),
            Ok((code, out)) => last = format!("exit code {code}: {}", out.trim()),
            Err(e) => last = format!("{e:#}"),
        }
    }
    bail!(
        "cannot remove {} in the edge {}: {last}",
        paths.join(", "),
        edge.name
    )
}

/// The maintenance page: the live version's `maintenance.html` when it has one, else the
/// built-in page with the message; a file in the edge's volume, never nginx text.
async fn write_maintenance_page(engine: &Engine, edge: &Edge, live: Option<&Live>) -> Result<()> {
    let own = match live {
        Some(l) => engine
            .download_file(
                &l.container,
                &format!("{}/{MAINTENANCE_PAGE}", layout::SITE_ROOT),
            )
            .await
            .ok()
            .flatten(),
        None => None,
    };
    let page = own.unwrap_or_else(|| {
        builtin_maintenance_page(edge.maintenance.as_deref().unwrap_or("")).into_bytes()
    });
    engine
        .upload_files(
            &edge.id,
            EDGE_DIR,
            &[(&edge.entry(MAINTENANCE_PAGE), page.as_slice())],
        )
        .await
}

/// The built-in maintenance page; `message` is HTML-escaped.
pub(crate) fn builtin_maintenance_page(message: &str) -> String {
    let message = if message.trim().is_empty() {
        "This site is down for maintenance and will be back shortly."
    } else {
        message
    };
    let escaped: String = message
        .chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            c => c.to_string(),
        })
        .collect();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>Down for maintenance</title></head>\n<body style=\"font-family:sans-serif;\
         max-width:40em;margin:4em auto;padding:0 1em\">\n<h1>Down for maintenance</h1>\n\
         <p>{escaped}</p>\n</body></html>\n"
    )
}

/// Is the running edge config the one this sitebuild renders for `live` (same domains,
/// certificate, HSTS, …)?
pub(crate) async fn is_current(
    engine: &Engine,
    cfg: &Config,
    edge: &Edge,
    live: Option<&Live>,
) -> Result<bool> {
    let want = render_conf(cfg, edge, live)?;
    let file = if edge.shared {
        edge.path(SITE_CONF)
    } else {
        format!("{EDGE_DIR}/{EDGE_CONF}")
    };
    let have = engine.download_file(&edge.id, &file).await?;
    Ok(have.as_deref() == Some(want.as_bytes()))
}

/// PIDs of nginx workers that accept connections (not "shutting down"), in the edge or a site
/// container.
pub(crate) async fn accepting_workers(engine: &Engine, id: &str) -> Result<Vec<String>> {
    Ok(engine
        .processes(id)
        .await?
        .into_iter()
        .filter(|(_, args)| args.contains("worker process") && !args.contains("shutting down"))
        .map(|(pid, _)| pid)
        .collect())
}

/// After a switch: wait until the reloaded workers answer with the new live fingerprint.
pub(crate) async fn wait_live(edge: &Edge, fingerprint: &str) -> Result<()> {
    let want = crate::site::short(fingerprint).to_string();
    let mut last = String::new();
    let live = probe::poll_eagerly(Duration::from_secs(10), async || {
        let e = edge.clone();
        let got = tokio::task::spawn_blocking(move || {
            edge_get(&e, "/healthz", &[], Duration::from_secs(1))
        })
        .await?;
        match got {
            Ok(r) if r.status == 200 && r.header("x-sitebuild-live") == Some(want.as_str()) => {
                return Ok(Some(()));
            }
            Ok(r) => last = format!("{} live={:?}", r.status, r.header("x-sitebuild-live")),
            Err(e) => last = format!("{e:#}"),
        }
        Ok(None)
    })
    .await?;
    live.with_context(|| {
        format!("the edge did not switch to {want} within 10 s (last answer: {last})")
    })
}

/// Wait until the edge answers HTTP at all (503 before the first deploy is fine).
pub(crate) async fn wait_answering(engine: &Engine, id: &str, probe: SocketAddr) -> Result<()> {
    let answered = probe::poll_until(
        Duration::from_secs(15),
        Duration::from_millis(50),
        async || {
            let ok = tokio::task::spawn_blocking(move || {
                http::get(probe, "/healthz", &[], Duration::from_secs(1)).is_ok()
            })
            .await?;
            if ok {
                return Ok(Some(()));
            }
            let info = engine.container(id).await?;
            if !info.is_running() {
                bail!("{}", not_answering(engine, &info, probe).await);
            }
            Ok(None)
        },
    )
    .await?;
    if let Some(()) = answered {
        Ok(())
    } else {
        let info = engine.container(id).await?;
        bail!("{}", not_answering(engine, &info, probe).await)
    }
}

async fn not_answering(engine: &Engine, info: &ContainerInfo, probe: SocketAddr) -> String {
    let logs = engine.logs_tail(&info.id, 20).await;
    format!(
        "the edge {} does not answer on {probe} ({}); its output:\n{}",
        info.name,
        info.state,
        logs.trim_end()
    )
}

/// Refuse early, with the key to change, when another program holds the port.
pub(crate) async fn check_port_free(engine: &Engine, cfg: &Config) -> Result<()> {
    let mut ports = vec![(
        cfg.edge_http_port(),
        if cfg.domains.is_empty() {
            "port"
        } else {
            "http_port"
        },
    )];
    // The shared edge (projects with domains) always publishes both ports.
    if cfg.tls.is_on() || !cfg.domains.is_empty() {
        ports.push((cfg.https_port, "https_port"));
    }
    for (port, key) in ports {
        check_one_port_free(engine, cfg, port, key).await?;
    }
    Ok(())
}

async fn check_one_port_free(engine: &Engine, cfg: &Config, port: u16, key: &str) -> Result<()> {
    let addr = SocketAddr::new(cfg.bind, port);
    let err = match TcpListener::bind(addr) {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => anyhow::anyhow!(
            "{addr} is already in use by another program; choose another port with --{flag}, \
             {env} or `{key}` in sitebuild.toml (the port now comes from {})",
            cfg.origin_of(key),
            flag = key.replace('_', "-"),
            env = crate::config::keys::env_var(key),
        ),
        // e.g. a non-local address: let the engine decide.
        Err(_) => return Ok(()),
    };
    let address = addr.to_string();
    let holders: Vec<ContainerInfo> = engine
        .containers_with_labels(&[(labels::MANAGED, "true")])
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|c| {
            matches!(
                c.label(labels::ROLE),
                Some(roles::EDGE | roles::SHARED_EDGE)
            )
        })
        .collect();
    let holds = |h: &ContainerInfo| {
        h.label(labels::ADDRESS)
            .is_some_and(|a| a.split(',').any(|p| p == address))
    };
    if let Some(h) = holders.iter().find(|h| h.is_running() && holds(h)) {
        if h.label(labels::ROLE) == Some(roles::SHARED_EDGE) {
            return Err(err.context(format!(
                "{address} is held by the shared edge {} of the projects with `domains` on \
                 another http_port; use another port",
                h.name
            )));
        }
        return Err(err.context(format!(
            "{address} is held by another sitebuild project, `{}` (container {}); stop it with \
             `sitebuild down` in that project, or use another port",
            h.label(labels::PROJECT).unwrap_or("?"),
            h.name
        )));
    }
    Err(err)
}
