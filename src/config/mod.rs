//! Settings: `sitebuild.toml` < `SITEBUILD_*` env < flags, validated into a [`Config`].
//!
//! - [`keys`]: every setting once (name, TOML type, default, flag, doc)
//! - [`validate`]: one validator per kind of value, shared with `render --k8s`
//! - here: reading the layers, remembering where each value came from, and [`Config::build`],
//!   one line per field
//!
//! Errors name the key and where its value came from ("invalid `port` (from `SITEBUILD_PORT`)").

pub(crate) mod keys;
pub(crate) mod validate;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::naming::{Labels, labels};
use crate::rules::routes::TrailingSlash;
use keys::{KEYS, Kind, key};

/// The file read from the project directory, when present.
pub(crate) const CONFIG_FILE: &str = "sitebuild.toml";

/// Where `deploy`, `rollback` and `status` act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// This engine: an edge container owns the port and swaps site containers behind it.
    Local,
    /// A Docker Swarm service (the engine must be a swarm manager): the routing mesh publishes
    /// the port and swarm rolls tasks over one by one.
    Swarm,
}

impl Target {
    fn parse(raw: Raw) -> Result<Target, String> {
        let t = validate::as_str(raw)?;
        match t.trim() {
            "local" => Ok(Target::Local),
            "swarm" => Ok(Target::Swarm),
            other => Err(format!(
                "{other:?} is not a target; use \"local\" or \"swarm\""
            )),
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Target::Local => "local",
            Target::Swarm => "swarm",
        }
    }
}

/// A value before validation: TOML gives typed values, env and flags give strings.
#[derive(Clone, Debug)]
pub(crate) enum Raw {
    Str(String),
    Int(i64),
    Bool(bool),
    List(Vec<String>),
}

impl From<String> for Raw {
    fn from(s: String) -> Raw {
        Raw::Str(s)
    }
}
impl From<&str> for Raw {
    fn from(s: &str) -> Raw {
        Raw::Str(s.to_string())
    }
}
impl From<u16> for Raw {
    fn from(n: u16) -> Raw {
        Raw::Int(i64::from(n))
    }
}
impl From<u32> for Raw {
    fn from(n: u32) -> Raw {
        Raw::Int(i64::from(n))
    }
}
impl From<bool> for Raw {
    fn from(b: bool) -> Raw {
        Raw::Bool(b)
    }
}

impl From<IpAddr> for Raw {
    fn from(ip: IpAddr) -> Raw {
        Raw::Str(ip.to_string())
    }
}
impl From<Target> for Raw {
    fn from(t: Target) -> Raw {
        Raw::Str(t.as_str().to_string())
    }
}

/// Values given on the command line (highest precedence), by key name; the origin shown in
/// messages is the key's flag from [`keys::KEYS`].
#[derive(Debug, Default, Clone)]
pub(crate) struct Overrides(Vec<(&'static str, Raw)>);

impl Overrides {
    /// Set `key` when the flag was given.
    pub(crate) fn set<T: Into<Raw>>(&mut self, key: &'static str, value: Option<T>) -> &mut Self {
        if let Some(v) = value {
            self.0.push((key, v.into()));
        }
        self
    }
}

/// Let's Encrypt's directories, by the names `acme_directory` accepts.
pub(crate) const LETSENCRYPT_PRODUCTION: &str = "https://acme-v02.api.letsencrypt.org/directory";
pub(crate) const LETSENCRYPT_STAGING: &str =
    "https://acme-staging-v02.api.letsencrypt.org/directory";

/// HTTPS on the edge for a project's `domains`.
#[derive(Debug, Clone)]
pub(crate) enum Tls {
    /// Plain HTTP (the only mode without `domains`).
    Off,
    /// The certificate and key from `tls_cert` / `tls_key`, checked when the config loads.
    Files(crate::tls::CertKey),
    /// Certificates from an ACME server (HTTP-01 through the edge).
    Acme,
}

impl Tls {
    pub(crate) fn is_on(&self) -> bool {
        !matches!(self, Tls::Off)
    }
}

/// The ACME client's settings (used with `tls = "acme"`).
#[derive(Debug, Clone)]
pub(crate) struct Acme {
    pub(crate) email: Option<String>,
    /// The directory URL.
    pub(crate) directory: String,
    /// Absolute path of a PEM file with extra roots for the ACME server's HTTPS.
    pub(crate) root: Option<PathBuf>,
}

/// The validated settings every stage works from.
#[derive(Debug, Clone)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "one field per setting: spa, clean_urls, no_cache and brotli are independent switches"
)]
pub(crate) struct Config {
    /// Absolute project directory.
    pub(crate) project_dir: PathBuf,
    pub(crate) name: String,
    pub(crate) port: u16,
    pub(crate) bind: IpAddr,
    pub(crate) server_name: String,
    pub(crate) base_image: String,
    /// Absolute path of the site directory.
    pub(crate) site_dir: PathBuf,
    /// Absolute path of the template override directory (may not exist).
    pub(crate) templates_dir: PathBuf,
    pub(crate) spa: bool,
    pub(crate) clean_urls: bool,
    pub(crate) trailing_slash: TrailingSlash,
    pub(crate) precompress_min_size: u64,
    /// `.br` siblings when the base supports them (opt-in).
    pub(crate) brotli: bool,
    /// Ignore the precompression cache (`--no-cache`).
    pub(crate) no_cache: bool,
    /// Bytes.
    pub(crate) cache_max_size: u64,
    /// Seconds.
    pub(crate) health_timeout: u64,
    /// Seconds.
    pub(crate) drain: u64,
    pub(crate) keep_images: u64,
    /// Bytes (0: no skew protection).
    pub(crate) skew_max_size: u64,
    /// Seconds.
    pub(crate) lock_timeout: u64,
    pub(crate) probe_host: Option<String>,
    pub(crate) replicas: i64,
    pub(crate) target: Target,
    pub(crate) registry: Option<String>,
    pub(crate) ingress_host: Option<String>,
    pub(crate) namespace: Option<String>,
    /// Host names served on the edge's `http_port`/`https_port`; empty: any host on `port`.
    pub(crate) domains: Vec<String>,
    pub(crate) tls: Tls,
    /// Strict-Transport-Security max-age in seconds; 0: no header.
    pub(crate) hsts: u64,
    pub(crate) http_port: u16,
    pub(crate) https_port: u16,
    pub(crate) acme: Acme,
    /// `--preview NAME`: this config is the preview instance (`name` is then
    /// `<project>-preview-<NAME>`); None: production.
    pub(crate) preview: Option<Preview>,
    /// Days after its last deploy a preview is removed; 0: never.
    pub(crate) preview_ttl: u64,
    /// Where each set key's value came from ("…/sitebuild.toml", "`SITEBUILD_PORT`", "--port").
    pub(crate) origin: BTreeMap<&'static str, String>,
    /// Rendering for the container `sitebuild watch` runs (nginx.conf's `dev`: no descriptor
    /// cache, so a synced file is served at once). Never from a file or flag: watch sets it on
    /// a copy to render that container's config; images are always built with `false`.
    pub(crate) dev: bool,
}

/// Raw values by key, each with where it came from; later layers replace earlier ones.
#[derive(Default)]
struct Layers {
    values: BTreeMap<&'static str, (Raw, String)>,
}

impl Layers {
    fn set(&mut self, key: &'static str, value: Raw, origin: impl Into<String>) {
        self.values.insert(key, (value, origin.into()));
    }
}

/// Turns layers into typed values, one key at a time, recording origins.
struct Builder {
    layers: Layers,
    origin: BTreeMap<&'static str, String>,
}

impl Builder {
    fn error(name: &str, from: &str, what: &str) -> anyhow::Error {
        anyhow::anyhow!("invalid `{name}` (from {from}): {what}")
    }

    /// The key's value (or its declared default) through `parse`; None when unset without a
    /// default.
    fn optional<T>(
        &mut self,
        name: &'static str,
        parse: impl FnOnce(Raw) -> Result<T, String>,
    ) -> Result<Option<T>> {
        let k = key(name);
        let (raw, from) = match self.layers.values.remove(name) {
            Some((raw, from)) => {
                self.origin.insert(name, from.clone());
                (raw, from)
            }
            None => match k.default {
                Some(d) => (Raw::Str(d.to_string()), "the default".to_string()),
                None => return Ok(None),
            },
        };
        parse(raw)
            .map(Some)
            .map_err(|m| Self::error(name, &from, &m))
    }

    /// Like [`Builder::optional`] for keys that always have a value.
    fn value<T>(
        &mut self,
        name: &'static str,
        parse: impl FnOnce(Raw) -> Result<T, String>,
    ) -> Result<T> {
        self.optional(name, parse)?
            .with_context(|| format!("`{name}` has no default (a bug in config::keys)"))
    }
}

impl Config {
    /// The precompression cache this build uses: the user's, unless `no_cache`.
    pub(crate) fn precompress_cache(&self) -> Option<crate::precompress::Cache> {
        if self.no_cache {
            return None;
        }
        crate::precompress::Cache::user(self.cache_max_size)
    }

    /// Load `sitebuild.toml` (if any) from `dir`, apply env and flags, validate.
    pub(crate) fn load(dir: &Path, overrides: &Overrides) -> Result<Config> {
        // An empty variable counts as unset: CI systems pass unset settings as "".
        let env: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, v)| k.starts_with("SITEBUILD_") && !v.is_empty())
            .collect();
        Self::load_with_env(dir, overrides, &env)
    }

    /// Like [`Config::load`] with an explicit environment (for tests).
    pub(crate) fn load_with_env(
        dir: &Path,
        overrides: &Overrides,
        env: &BTreeMap<String, String>,
    ) -> Result<Config> {
        let project_dir = std::path::absolute(dir)
            .with_context(|| format!("cannot resolve project directory {}", dir.display()))?;
        if !project_dir.is_dir() {
            bail!(
                "project directory {} does not exist or is not a directory (pass --dir DIR)",
                project_dir.display()
            );
        }
        let mut layers = Layers::default();
        let file_path = project_dir.join(CONFIG_FILE);
        if file_path.exists() {
            read_file(&file_path, &mut layers)?;
        }
        read_env(env, &mut layers)?;
        for (name, value) in &overrides.0 {
            let k = key(name);
            layers.set(k.name, value.clone(), k.flag.unwrap_or(k.name));
        }
        Self::build(project_dir, layers)
    }

    /// One line per setting: its validator, its default from [`keys::KEYS`].
    fn build(project_dir: PathBuf, layers: Layers) -> Result<Config> {
        use validate::{as_bool, checked, ranged};
        let mut b = Builder {
            layers,
            origin: BTreeMap::new(),
        };
        let dir = |raw: Raw| -> Result<PathBuf, String> {
            Ok(project_dir.join(checked(raw, validate::check_rel_path)?))
        };
        let config = Config {
            name: b
                .optional("name", |r| checked(r, validate::check_name))?
                .unwrap_or_else(|| validate::default_name(&project_dir)),
            port: b.value("port", validate::port)?,
            bind: b.value("bind", validate::ip)?,
            server_name: b.value("server_name", |r| checked(r, validate::check_server_name))?,
            base_image: b.value("base_image", |r| checked(r, validate::check_image_ref))?,
            site_dir: b.value("site_dir", dir)?,
            templates_dir: b.value("templates_dir", dir)?,
            spa: b.value("spa", as_bool)?,
            dev: false,
            clean_urls: b.value("clean_urls", as_bool)?,
            trailing_slash: b.value("trailing_slash", validate::trailing_slash)?,
            precompress_min_size: b.value("precompress_min_size", validate::size)?,
            brotli: b.value("brotli", as_bool)?,
            no_cache: b.value("no_cache", as_bool)?,
            cache_max_size: b.value("cache_max_size", |r| {
                let v = validate::as_int(r)?;
                u64::try_from(v)
                    .map_err(|_| format!("{v} is negative; use a size in bytes (0 = keep nothing)"))
            })?,
            health_timeout: b.value("health_timeout", |r| ranged(r, 1..=600, "seconds"))?,
            drain: b.value("drain", |r| ranged(r, 0..=300, "seconds"))?,
            keep_images: b.value("keep_images", |r| ranged(r, 1..=100, "images"))?,
            skew_max_size: b.value("skew_max_size", |r| {
                let v = validate::as_int(r)?;
                u64::try_from(v).map_err(|_| {
                    format!("{v} is negative; use a size in bytes (0 = no skew protection)")
                })
            })?,
            lock_timeout: b.value("lock_timeout", |r| ranged(r, 1..=3600, "seconds"))?,
            probe_host: b.optional("probe_host", |r| checked(r, validate::host_or_ip))?,
            replicas: b.value("replicas", |r| {
                let n = validate::as_int(r)?;
                validate::replicas(n).map(|()| n)
            })?,
            ingress_host: b.optional("ingress_host", |r| checked(r, validate::hostname))?,
            namespace: b.optional("namespace", |r| checked(r, validate::namespace))?,
            target: b.value("target", Target::parse)?,
            registry: b.optional("registry", |r| checked(r, validate::repository))?,
            domains: b
                .optional("domains", validate::domains)?
                .unwrap_or_default(),
            tls: Tls::Off, // below: it depends on domains, tls_cert and tls_key
            hsts: b.value("hsts", |r| {
                ranged(r, 0..=63_072_000, "seconds (0 = no HSTS header)")
            })?,
            http_port: b.value("http_port", validate::port)?,
            https_port: b.value("https_port", validate::port)?,
            acme: Acme {
                email: b.optional("acme_email", |r| checked(r, validate::email))?,
                directory: b.value("acme_directory", validate::acme_directory)?,
                root: b.optional("acme_root", |r| {
                    Ok(project_dir.join(checked(r, validate::file_path)?))
                })?,
            },
            preview: None, // below: it changes name, domains and port
            preview_ttl: b.value("preview_ttl", |r| ranged(r, 0..=3650, "days (0 = keep)"))?,
            origin: BTreeMap::new(),
            project_dir: PathBuf::new(),
        };
        let preview_domain = b.optional("preview_domain", |r| {
            let d = validate::as_str(r)?;
            validate::domains(Raw::List(vec![format!("x.{d}")]))?;
            Ok(d)
        })?;
        let preview = b.optional("preview", |r| checked(r, validate::preview_label))?;
        let config = match preview {
            Some(label) => preview_config(config, &label, preview_domain, &b)?,
            None => config,
        };
        let tls = build_tls(&mut b, &project_dir, &config.domains)?;
        if tls.is_on() && config.http_port == config.https_port {
            bail!(
                "invalid `https_port` (from {}): {} is also `http_port`; the edge needs two ports",
                b.origin
                    .get("https_port")
                    .map_or("the default", String::as_str),
                config.https_port
            );
        }
        Ok(Config {
            origin: b.origin,
            project_dir,
            tls,
            ..config
        })
    }

    /// The edge's HTTP host port: `http_port` for a project with domains, else `port`.
    pub(crate) fn edge_http_port(&self) -> u16 {
        if self.domains.is_empty() {
            self.port
        } else {
            self.http_port
        }
    }

    /// The repository of the project's images: the project's name, also for its previews
    /// (a preview runs production's images and builds into them).
    pub(crate) fn image_repo(&self) -> &str {
        self.preview.as_ref().map_or(&self.name, |p| &p.of)
    }

    /// The labels every resource of this instance starts from: its project and, for a
    /// preview, `preview-of`, `preview` and where it answers (production's get none).
    pub(crate) fn labels(&self) -> Labels {
        let l = Labels::project(&self.name);
        match &self.preview {
            Some(p) => l
                .with(labels::PREVIEW_OF, &p.of)
                .with(labels::PREVIEW, &p.label)
                .with(labels::URL, self.url()),
            None => l,
        }
    }

    /// `http://127.0.0.1:8080/` — what a browser opens.
    pub(crate) fn url(&self) -> String {
        if let Some(domain) = self.domains.first() {
            return match (self.tls.is_on(), self.https_port, self.http_port) {
                (true, 443, _) => format!("https://{domain}/"),
                (true, p, _) => format!("https://{domain}:{p}/"),
                (false, _, 80) => format!("http://{domain}/"),
                (false, _, p) => format!("http://{domain}:{p}/"),
            };
        }
        // Bound to every address: the name people reach the engine's host by (`probe_host`,
        // else the host of a remote DOCKER_HOST), or this machine.
        let public = || match self.probe_host.clone().or_else(crate::engine::remote_host) {
            Some(h) if h.contains(':') => format!("[{h}]"),
            Some(h) => h,
            None => "localhost".to_string(),
        };
        let host = match self.bind {
            IpAddr::V4(v4) if v4.is_unspecified() => public(),
            IpAddr::V6(v6) if v6.is_unspecified() => public(),
            IpAddr::V6(v6) => format!("[{v6}]"),
            IpAddr::V4(v4) => v4.to_string(),
        };
        format!("http://{host}:{}/", self.port)
    }

    /// "`SITEBUILD_PORT`", "--port", "…/sitebuild.toml", or "the default" for unset keys.
    pub(crate) fn origin_of(&self, name: &str) -> &str {
        self.origin.get(name).map_or("the default", String::as_str)
    }
}

/// The preview instance `label` of the project `config` describes: its own name (so its own
/// edge, network, lock and containers), the project's images (`image_repo`), its own host name
/// under `preview_domain` or no domains (then a port chosen at deploy time unless `--port` or
/// `SITEBUILD_PORT` names one: the file's `port` is production's).
fn preview_config(
    config: Config,
    label: &str,
    preview_domain: Option<String>,
    b: &Builder,
) -> Result<Config> {
    let from = b
        .origin
        .get("preview")
        .map_or("the default", String::as_str);
    if from.ends_with(CONFIG_FILE) {
        bail!(
            "`preview` is set in {from}: it names one deploy, not the project; pass --preview NAME \
             (or SITEBUILD_PREVIEW in CI) and remove it from the file"
        );
    }
    let name = format!("{}-preview-{label}", config.name);
    if name.len() > 63 {
        bail!(
            "invalid `preview` (from {from}): the instance name {name:?} would be {} characters, more than 63; use a shorter preview name",
            name.len()
        );
    }
    let port_given = b
        .origin
        .get("port")
        .is_some_and(|o| !o.ends_with(CONFIG_FILE));
    Ok(Config {
        preview: Some(Preview {
            label: label.to_string(),
            of: config.name.clone(),
            domain: preview_domain.as_ref().map(|d| format!("{label}.{d}")),
        }),
        domains: preview_domain
            .map(|d| vec![format!("{label}.{d}")])
            .unwrap_or_default(),
        port: if port_given { config.port } else { 0 },
        name,
        ..config
    })
}

/// What makes a config a preview instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Preview {
    /// The preview's name (`--preview`), a DNS label.
    pub(crate) label: String,
    /// The production project's name: its images are the preview's.
    pub(crate) of: String,
    /// `<label>.<preview_domain>`, or None (a local port).
    pub(crate) domain: Option<String>,
}

/// `tls` with its files: acme by default when there are domains, off without; `files` reads
/// and checks the certificate and key now, so a bad pair never reaches an engine.
fn build_tls(b: &mut Builder, project_dir: &Path, domains: &[String]) -> Result<Tls> {
    let mode = b.optional("tls", |r| {
        let s = validate::as_str(r)?;
        match s.trim() {
            m @ ("acme" | "files" | "off") => Ok(m.to_string()),
            other => Err(format!(
                "{other:?} is not a TLS mode; use \"acme\", \"files\" or \"off\""
            )),
        }
    })?;
    let path = |r: Raw| -> Result<PathBuf, String> { Ok(project_dir.join(checked_path(r)?)) };
    let cert = b.optional("tls_cert", path)?;
    let key = b.optional("tls_key", path)?;
    let origin = |b: &Builder, k: &str| {
        b.origin
            .get(k)
            .cloned()
            .unwrap_or_else(|| "the default".to_string())
    };
    let mode = mode.unwrap_or_else(|| if domains.is_empty() { "off" } else { "acme" }.to_string());
    if mode != "off" && domains.is_empty() {
        bail!(
            "invalid `tls` (from {}): tls = {mode:?} needs `domains` (the host names the \
             certificate is for), e.g. domains = [\"example.com\"]",
            origin(b, "tls")
        );
    }
    if mode != "files"
        && let Some(k) = [("tls_cert", &cert), ("tls_key", &key)]
            .iter()
            .find_map(|(k, v)| v.is_some().then_some(*k))
    {
        bail!(
            "`{k}` (from {}) is set but tls is {mode:?}; set tls = \"files\" to use it, or remove it",
            origin(b, k)
        );
    }
    match mode.as_str() {
        "off" => Ok(Tls::Off),
        "acme" => Ok(Tls::Acme),
        _ => {
            let (Some(cert), Some(key)) = (cert, key) else {
                bail!(
                    "tls = \"files\" (from {}) needs both `tls_cert` and `tls_key` (PEM files)",
                    origin(b, "tls")
                );
            };
            let read = |p: &Path, k: &str| {
                std::fs::read_to_string(p).with_context(|| {
                    format!(
                        "invalid `{k}` (from {}): cannot read {}",
                        origin(b, k),
                        p.display()
                    )
                })
            };
            let (cert_pem, key_pem) = (read(&cert, "tls_cert")?, read(&key, "tls_key")?);
            let ck = crate::tls::check(&cert_pem, &key_pem, std::time::SystemTime::now()).map_err(
                |p| {
                    let (k, file, m) = match p {
                        crate::tls::Problem::Cert(m) => ("tls_cert", &cert, m),
                        crate::tls::Problem::Key(m) => ("tls_key", &key, m),
                    };
                    anyhow::anyhow!(
                        "invalid `{k}` (from {}): {} {m}",
                        origin(b, k),
                        file.display()
                    )
                },
            )?;
            if let Some(d) = domains.iter().find(|d| !ck.info.covers(d)) {
                bail!(
                    "invalid `tls_cert` (from {}): {} does not cover {d:?} from `domains` (it names: {}); \
                     use a certificate for every domain, or tls = \"acme\"",
                    origin(b, "tls_cert"),
                    cert.display(),
                    if ck.info.names.is_empty() {
                        "no DNS names".to_string()
                    } else {
                        ck.info.names.join(", ")
                    }
                );
            }
            Ok(Tls::Files(ck))
        }
    }
}

/// A file path: relative to the project or absolute; no nginx syntax (it is never written into
/// a config, but the rule is the same for every string).
fn checked_path(r: Raw) -> Result<String, String> {
    checked(r, validate::file_path)
}

use validate::checked;

/// `sitebuild.toml`: unknown keys and wrong types are errors with the file and line.
fn read_file(path: &Path, layers: &mut Layers) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let located = |line: Option<usize>, what: String| {
        anyhow::Error::new(crate::located::Located::new(
            path,
            line,
            format!(
                "{}{}: {what}\n(the keys are documented in the README's Configuration section)",
                path.display(),
                line.map(|l| format!(", line {l}")).unwrap_or_default()
            ),
        ))
    };
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        located(line, e.to_string().trim_end().to_string())
    })?;
    // The line a top-level key is written on (toml's table keeps no positions).
    let line_of = |name: &str| {
        text.lines()
            .position(|l| {
                l.trim_start()
                    .strip_prefix(name)
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            })
            .map(|i| i + 1)
    };
    let origin = path.display().to_string();
    for (name, value) in table {
        let Some(k) = KEYS.iter().find(|k| k.name == name) else {
            let hint = closest(&name)
                .map(|k| format!("; did you mean `{}` ({})?", k.name, k.doc))
                .unwrap_or_default();
            return Err(located(
                line_of(&name),
                format!("unknown field `{name}`{hint} (remove it or fix its name)"),
            ));
        };
        let raw = match (k.kind, value) {
            (Kind::Str, toml::Value::String(s)) => Raw::Str(s),
            (Kind::Int, toml::Value::Integer(i)) => Raw::Int(i),
            (Kind::Bool, toml::Value::Boolean(b)) => Raw::Bool(b),
            (Kind::List, toml::Value::Array(items)) => Raw::List(
                items
                    .into_iter()
                    .map(|v| match v {
                        toml::Value::String(s) => Ok(s),
                        other => Err(located(
                            line_of(&name),
                            format!(
                                "invalid `{name}`: expected a list of strings, got {} `{other}` in it",
                                other.type_str()
                            ),
                        )),
                    })
                    .collect::<Result<_>>()?,
            ),
            (kind, other) => {
                return Err(located(
                    line_of(&name),
                    format!(
                        "invalid `{name}`: expected {}, got {} `{other}`",
                        kind.describe(),
                        other.type_str()
                    ),
                ));
            }
        };
        layers.set(k.name, raw, &origin);
    }
    Ok(())
}

/// `SITEBUILD_<KEY>` variables. Other `SITEBUILD_*` variables are fine (CI secrets, dotenv
/// reports), but one that is a typo of a setting is an error: it would be silently ignored.
fn read_env(env: &BTreeMap<String, String>, layers: &mut Layers) -> Result<()> {
    for k in KEYS {
        if let Some(v) = env.get(&k.env_var()) {
            layers.set(k.name, Raw::Str(v.clone()), k.env_var());
        }
    }
    for var in env.keys() {
        if KEYS.iter().any(|k| k.env_var() == *var) {
            continue;
        }
        let name = var.trim_start_matches("SITEBUILD_").to_ascii_lowercase();
        if let Some(k) = KEYS
            .iter()
            .find(|k| strsim::osa_distance(&name, k.name) == 1)
        {
            bail!(
                "unknown environment variable {var}: did you mean {}? (unset it or fix its name)",
                k.env_var()
            );
        }
    }
    Ok(())
}

/// The declared key nearest to a misspelled one (at most two edits away).
fn closest(name: &str) -> Option<&'static keys::Key> {
    KEYS.iter()
        .map(|k| (strsim::osa_distance(name, k.name), k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str, env: &[(&str, &str)], ov: Overrides) -> Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), toml).unwrap();
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load_with_env(dir.path(), &ov, &env)
    }

    fn err_of(toml: &str, env: &[(&str, &str)]) -> String {
        format!("{:#}", load(toml, env, Overrides::default()).unwrap_err())
    }

    #[test]
    fn defaults() {
        let c = load("", &[], Overrides::default()).unwrap();
        assert_eq!(c.port, 8080);
        assert_eq!(c.bind.to_string(), "127.0.0.1");
        assert_eq!(c.server_name, "_");
        assert_eq!(c.base_image, keys::DEFAULT_BASE_IMAGE);
        assert!(!c.spa);
        assert!(!c.clean_urls);
        assert_eq!(c.trailing_slash, TrailingSlash::Ignore);
        assert_eq!(c.health_timeout, 30);
        assert_eq!(c.url(), "http://127.0.0.1:8080/");
        assert!(c.site_dir.ends_with("site"));
    }

    #[test]
    fn a_preview_is_its_own_instance_of_the_projects_images() {
        let toml = "name = \"blog\"\nport = 9001\ndomains = [\"blog.example.com\"]\n";
        let mut ov = Overrides::default();
        ov.set("preview", Some("pr-42".to_string()));
        let c = load(toml, &[], ov).unwrap();
        assert_eq!(c.name, "blog-preview-pr-42");
        assert_eq!(c.image_repo(), "blog");
        assert_eq!(
            c.port, 0,
            "the file's port is production's: chosen at deploy time"
        );
        assert!(
            c.domains.is_empty(),
            "production's domains are not the preview's"
        );
        assert_eq!(c.preview.as_ref().unwrap().label, "pr-42");

        let c = load(
            &format!("{toml}preview_domain = \"preview.example.com\"\n"),
            &[("SITEBUILD_PREVIEW", "pr-7"), ("SITEBUILD_PORT", "9100")],
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.domains, ["pr-7.preview.example.com"]);
        assert_eq!(
            c.port, 9100,
            "an explicit port (env or flag) is the preview's"
        );
        let production = load(toml, &[], Overrides::default()).unwrap();
        assert_eq!(production.image_repo(), "blog");
        assert!(production.preview.is_none());
    }

    #[test]
    fn bad_previews_name_the_key_and_the_fix() {
        for (name, want) in [
            ("PR-1", "not a preview name"),
            ("pr_1", "not a preview name"),
            ("-pr", "not a preview name"),
            ("a;b", "not a preview name"),
        ] {
            let e = err_of("", &[("SITEBUILD_PREVIEW", name)]);
            assert!(e.contains("`preview`") && e.contains(want), "{name}: {e}");
            assert!(e.contains("pr-42"), "the fix shows an example: {e}");
        }
        let e = err_of("preview = \"pr-1\"", &[]);
        assert!(e.contains("--preview NAME"), "{e}");
        let e = err_of("preview_domain = \"a b\"", &[("SITEBUILD_PREVIEW", "x")]);
        assert!(e.contains("`preview_domain`"), "{e}");
        let long = "n".repeat(40);
        let e = err_of(
            &format!("name = \"{}\"", "p".repeat(30)),
            &[("SITEBUILD_PREVIEW", &long)],
        );
        assert!(e.contains("more than 63"), "{e}");
    }

    #[test]
    fn precedence_flag_over_env_over_file() {
        let mut ov = Overrides::default();
        ov.set("port", Some(9003u16));
        let c = load("port = 9001", &[("SITEBUILD_PORT", "9002")], ov).unwrap();
        assert_eq!(c.port, 9003);
        assert_eq!(c.origin["port"], "--port");
        let c = load(
            "port = 9001",
            &[("SITEBUILD_PORT", "9002")],
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.port, 9002);
        let c = load("port = 9001", &[], Overrides::default()).unwrap();
        assert_eq!(c.port, 9001);
    }

    #[test]
    fn target_and_replicas_from_flags() {
        let mut ov = Overrides::default();
        ov.set("target", Some(Target::Swarm))
            .set("replicas", Some(4u32));
        let c = load("target = \"local\"\nreplicas = 2", &[], ov).unwrap();
        assert_eq!(c.target, Target::Swarm);
        assert_eq!(c.replicas, 4);
        assert_eq!(c.origin["replicas"], "--replicas");
        let c = load(
            "registry = \"127.0.0.1:5000/me/site\"",
            &[],
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.target, Target::Local);
        assert_eq!(c.registry.as_deref(), Some("127.0.0.1:5000/me/site"));
        let mut ov = Overrides::default();
        ov.set("replicas", Some(0u32));
        let e = format!("{:#}", load("", &[], ov).unwrap_err());
        assert!(e.contains("invalid `replicas` (from --replicas)"), "{e}");
    }

    #[test]
    fn port_range() {
        for bad in ["port = 0", "port = 70000", "port = -1"] {
            let e = err_of(bad, &[]);
            assert!(e.contains("invalid `port`"), "{e}");
            assert!(e.contains("sitebuild.toml"), "{e}");
            assert!(e.contains("between 1 and 65535"), "{e}");
        }
        let e = err_of("", &[("SITEBUILD_PORT", "eighty")]);
        assert!(e.contains("from SITEBUILD_PORT") && e.contains("not a whole number"));
        assert_eq!(load("port = 1", &[], Overrides::default()).unwrap().port, 1);
        assert_eq!(
            load("port = 65535", &[], Overrides::default())
                .unwrap()
                .port,
            65535
        );
    }

    #[test]
    fn server_name_injection_refused() {
        for bad in [
            "server_name = \"a.com; return 301 x\"",
            "server_name = \"a.com\\nlisten 81\"",
            "server_name = \"a{b\"",
            "server_name = \"a'b\"",
            "server_name = \"\"",
            "server_name = \"a/b\"",
        ] {
            let e = err_of(bad, &[]);
            assert!(e.contains("invalid `server_name`"), "{bad}: {e}");
        }
        for good in [
            "example.com",
            "_",
            "example.com www.example.com",
            "*.example.com",
        ] {
            let c = load(
                &format!("server_name = \"{good}\""),
                &[],
                Overrides::default(),
            )
            .unwrap();
            assert_eq!(c.server_name, good);
        }
    }

    #[test]
    fn every_key_is_validated() {
        let cases = [
            ("name = \"Bad Name\"", "`name`"),
            ("name = \"x;y\"", "`name`"),
            ("bind = \"localhost:80\"", "`bind`"),
            ("base_image = \"nginx latest\"", "`base_image`"),
            ("base_image = \"nginx;rm\"", "`base_image`"),
            ("site_dir = \"../other\"", "`site_dir`"),
            ("site_dir = \"/etc\"", "`site_dir`"),
            ("templates_dir = \"a/../../b\"", "`templates_dir`"),
            ("spa = \"maybe\"", "spa"),
            ("clean_urls = \"maybe\"", "`clean_urls`"),
            ("trailing_slash = \"yes\"", "`trailing_slash`"),
            ("trailing_slash = true", "`trailing_slash`"),
            ("precompress_min_size = -5", "`precompress_min_size`"),
            ("health_timeout = 0", "`health_timeout`"),
            ("health_timeout = 601", "`health_timeout`"),
            ("drain = -1", "`drain`"),
            ("keep_images = 0", "`keep_images`"),
            ("skew_max_size = -1", "`skew_max_size`"),
            ("lock_timeout = 0", "`lock_timeout`"),
            ("replicas = 0", "`replicas`"),
            ("replicas = -3", "`replicas`"),
            ("ingress_host = \"a.com; x\"", "`ingress_host`"),
            ("ingress_host = \"*.a.com\"", "`ingress_host`"),
            ("namespace = \"Prod\"", "`namespace`"),
            ("target = \"k8s\"", "`target`"),
            ("registry = \"ghcr.io/me/site:latest\"", "`registry`"),
            ("registry = \"ghcr.io/me/site@sha256:ab\"", "`registry`"),
            ("registry = \"ghcr.io/me site\"", "`registry`"),
            ("port = \"8080\"", "port"),
        ];
        for (toml, key) in cases {
            let e = err_of(toml, &[]);
            assert!(e.contains(key), "{toml}: {e}");
        }
    }

    #[test]
    fn unknown_key_and_syntax_errors_name_the_problem() {
        let e = err_of("prot = 8080", &[]);
        assert!(e.contains("unknown field `prot`"), "{e}");
        assert!(e.contains("sitebuild.toml"), "{e}");
        let e = err_of("port = ", &[]);
        assert!(e.contains("sitebuild.toml") && e.contains("line 1"), "{e}");
        let e = err_of("", &[("SITEBUILD_PROT", "1")]);
        assert!(
            e.contains("SITEBUILD_PROT") && e.contains("did you mean SITEBUILD_PORT"),
            "{e}"
        );
        // CI secrets and report variables are not typos of settings.
        for other in [
            "SITEBUILD_DOCKER_HOST",
            "SITEBUILD_SHORT",
            "SITEBUILD_CHANGED",
            "SITEBUILD_SSH_KEY",
        ] {
            assert!(
                load("", &[(other, "x")], Overrides::default()).is_ok(),
                "{other}"
            );
        }
    }

    #[test]
    fn env_values_parse() {
        let c = load(
            "",
            &[
                ("SITEBUILD_SPA", "true"),
                ("SITEBUILD_CLEAN_URLS", "true"),
                ("SITEBUILD_TRAILING_SLASH", "never"),
                ("SITEBUILD_BIND", "0.0.0.0"),
                ("SITEBUILD_HEALTH_TIMEOUT", "5"),
            ],
            Overrides::default(),
        )
        .unwrap();
        assert!(c.spa);
        assert!(c.clean_urls);
        assert_eq!(c.trailing_slash, TrailingSlash::Never);
        assert_eq!(c.health_timeout, 5);
        assert_eq!(c.url(), "http://localhost:8080/");
        let c = load("probe_host = \"127.0.0.2\"", &[], Overrides::default()).unwrap();
        assert_eq!(c.probe_host.as_deref(), Some("127.0.0.2"));
        let e = err_of("probe_host = \"a b\"", &[]);
        assert!(e.contains("`probe_host`"), "{e}");
    }

    #[test]
    fn domains_and_tls_defaults() {
        let c = load("", &[], Overrides::default()).unwrap();
        assert!(c.domains.is_empty() && matches!(c.tls, Tls::Off));
        assert_eq!((c.http_port, c.https_port, c.hsts), (80, 443, 0));
        assert_eq!(c.acme.directory, LETSENCRYPT_PRODUCTION);
        let c = load(
            "domains = [\"example.com\", \"www.example.com\"]\nacme_directory = \"staging\"",
            &[],
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.domains, ["example.com", "www.example.com"]);
        assert!(matches!(c.tls, Tls::Acme));
        assert_eq!(c.acme.directory, LETSENCRYPT_STAGING);
        let c = load(
            "",
            &[
                ("SITEBUILD_DOMAINS", "a.example.com, b.example.com"),
                ("SITEBUILD_TLS", "off"),
                ("SITEBUILD_ACME_DIRECTORY", "https://127.0.0.1:14000/dir"),
            ],
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.domains, ["a.example.com", "b.example.com"]);
        assert!(matches!(c.tls, Tls::Off));
        assert_eq!(c.acme.directory, "https://127.0.0.1:14000/dir");
        let mut ov = Overrides::default();
        ov.set("http_port", Some(8081u16))
            .set("https_port", Some(8444u16));
        let c = load("domains = [\"a.example.com\"]", &[], ov).unwrap();
        assert_eq!((c.http_port, c.https_port), (8081, 8444));
    }

    #[test]
    fn tls_and_domain_errors_name_the_key() {
        let cases = [
            ("domains = [\"a.com; return 301 x\"]", "`domains`"),
            ("domains = [\"a.com\\nlisten 81\"]", "`domains`"),
            ("domains = [\"*.a.com\"]", "wildcard"),
            ("domains = [\"a.com:443\"]", "`domains`"),
            ("domains = [\"A.com\"]", "uppercase"),
            ("domains = [\"localhost\"]", "no dot"),
            ("domains = [\"a.com\", \"a.com\"]", "twice"),
            ("domains = [1]", "list of strings"),
            ("domains = \"a.com\"", "`domains`"),
            ("tls = \"maybe\"", "`tls`"),
            ("tls = \"files\"", "needs `domains`"),
            ("tls = \"acme\"", "needs `domains`"),
            ("domains = [\"a.com\"]\ntls = \"files\"", "needs both"),
            (
                "domains = [\"a.com\"]\ntls_cert = \"c.pem\"",
                "`tls_cert` (from",
            ),
            (
                "domains = [\"a.com\"]\ntls = \"files\"\ntls_cert = \"nope.pem\"\ntls_key = \"k.pem\"",
                "cannot read",
            ),
            ("domains = [\"a.com\"]\nhttps_port = 80", "`https_port`"),
            ("hsts = -1", "`hsts`"),
            ("http_port = 0", "`http_port`"),
            ("acme_email = \"me\"", "`acme_email`"),
            ("acme_email = \"a@b.com;x\"", "`acme_email`"),
            ("acme_directory = \"http://x/dir\"", "`acme_directory`"),
            ("acme_directory = \"prod\"", "`acme_directory`"),
            ("acme_root = \"a;b\"", "`acme_root`"),
        ];
        for (toml, want) in cases {
            let e = err_of(toml, &[]);
            assert!(e.contains(want), "{toml}: {e}");
        }
        let e = err_of("", &[("SITEBUILD_DOMAINS", "a.com;b.com")]);
        assert!(e.contains("from SITEBUILD_DOMAINS"), "{e}");
    }

    #[test]
    fn default_name_is_sanitized() {
        use validate::{check_name, default_name};
        assert_eq!(default_name(Path::new("/x/My Site!")), "my-site");
        assert_eq!(default_name(Path::new("/x/___")), "site");
        assert!(check_name(&default_name(Path::new("/x/Über Blog"))).is_ok());
    }
}
