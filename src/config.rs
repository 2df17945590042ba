//! Settings: `sitebuild.toml` < `SITEBUILD_*` env < flags, validated into a [`Config`].
//!
//! Every value that reaches the nginx config is checked here first, so a value can never add
//! nginx syntax (`;`, `{`, `}`, quotes, newlines). Errors name the key and where it came from.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// The file read from the project directory, when present.
pub const CONFIG_FILE: &str = "sitebuild.toml";

/// Default base image for real users: a pinned official nginx alpine tag.
/// Air-gapped machines build `sitebuild/nginx:offline` with `scripts/offline-base.sh`.
pub const DEFAULT_BASE_IMAGE: &str = "nginx:1.28.0-alpine";

/// The keys of `sitebuild.toml` (unknown keys are an error). Every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub name: Option<String>,
    pub port: Option<i64>,
    pub bind: Option<String>,
    pub server_name: Option<String>,
    pub base_image: Option<String>,
    pub site_dir: Option<String>,
    pub templates_dir: Option<String>,
    pub spa: Option<bool>,
    pub precompress_min_size: Option<i64>,
    pub health_timeout: Option<i64>,
    pub drain: Option<i64>,
    pub keep_images: Option<i64>,
    pub lock_timeout: Option<i64>,
    pub probe_host: Option<String>,
    pub replicas: Option<i64>,
    pub ingress_host: Option<String>,
    pub namespace: Option<String>,
    pub target: Option<String>,
    pub registry: Option<String>,
}

/// Values given on the command line (highest precedence).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub port: Option<String>,
    pub bind: Option<String>,
    pub base_image: Option<String>,
    pub target: Option<String>,
    pub replicas: Option<String>,
}

/// Where `deploy`, `rollback` and `status` act.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// This engine: an edge container owns the port and swaps site containers behind it.
    Local,
    /// A Docker Swarm service (the engine must be a swarm manager): the routing mesh publishes
    /// the port and swarm rolls tasks over one by one.
    Swarm,
}

/// The validated settings every stage works from.
#[derive(Debug, Clone)]
pub struct Config {
    /// Absolute project directory.
    pub project_dir: PathBuf,
    /// Image repository and container name prefix; also the project label.
    pub name: String,
    /// Host port the site is published on.
    pub port: u16,
    /// Host address the port is bound to.
    pub bind: IpAddr,
    /// nginx `server_name` ("_" = any host).
    pub server_name: String,
    pub base_image: String,
    /// Absolute path of the site directory.
    pub site_dir: PathBuf,
    /// Absolute path of the template override directory (may not exist).
    pub templates_dir: PathBuf,
    pub spa: bool,
    /// Text files at least this big get a `.gz` sibling at build time.
    pub precompress_min_size: u64,
    /// Seconds to wait for `/healthz` to answer 200.
    pub health_timeout: u64,
    /// Seconds the old version keeps running after the switch, for in-flight requests.
    pub drain: u64,
    /// Images of this project kept for `rollback` (the live one always is).
    pub keep_images: u64,
    /// Seconds a deploy waits for another deploy of the same project to finish.
    pub lock_timeout: u64,
    /// Host sitebuild connects to for health checks (None = derived, see [`Config::probe_addr`]).
    pub probe_host: Option<String>,
    /// Swarm tasks / Kubernetes pods.
    pub replicas: i64,
    /// `local` (default) or `swarm`.
    pub target: Target,
    /// Repository images are pushed to before a swarm deploy (`ghcr.io/me/site`; required when
    /// the swarm has more than one node).
    pub registry: Option<String>,
    /// Kubernetes: Ingress hostname (None = no Ingress).
    pub ingress_host: Option<String>,
    /// Kubernetes: namespace of the manifests (None = the kubectl context's).
    pub namespace: Option<String>,
    /// Where each key's value came from ("sitebuild.toml", "SITEBUILD_PORT", "--port", "default").
    pub origin: BTreeMap<&'static str, String>,
}

/// Raw values before validation, each with its origin.
#[derive(Default)]
struct Layered {
    values: BTreeMap<&'static str, (Raw, String)>,
}

#[derive(Clone, Debug)]
enum Raw {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl Layered {
    fn set(&mut self, key: &'static str, value: Raw, origin: impl Into<String>) {
        self.values.insert(key, (value, origin.into()));
    }
}

/// Environment variable for a key: `port` → `SITEBUILD_PORT`.
pub fn env_var(key: &str) -> String {
    format!("SITEBUILD_{}", key.to_ascii_uppercase())
}

const KEYS: [&str; 19] = [
    "name",
    "port",
    "bind",
    "server_name",
    "base_image",
    "site_dir",
    "templates_dir",
    "spa",
    "precompress_min_size",
    "health_timeout",
    "drain",
    "keep_images",
    "lock_timeout",
    "probe_host",
    "replicas",
    "ingress_host",
    "namespace",
    "target",
    "registry",
];

impl Config {
    /// Load `sitebuild.toml` (if any) from `dir`, apply env and flags, validate.
    pub fn load(dir: &Path, overrides: &Overrides) -> Result<Config> {
        // An empty variable counts as unset: CI systems pass unset settings as "".
        let env: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, v)| k.starts_with("SITEBUILD_") && !v.is_empty())
            .collect();
        Self::load_with_env(dir, overrides, &env)
    }

    /// Like [`Config::load`] with an explicit environment (for tests).
    pub fn load_with_env(
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
        let mut layered = Layered::default();

        let file_path = project_dir.join(CONFIG_FILE);
        if file_path.exists() {
            let text = std::fs::read_to_string(&file_path)
                .with_context(|| format!("cannot read {}", file_path.display()))?;
            let file: FileConfig = toml::from_str(&text).map_err(|e| {
                let line = e
                    .span()
                    .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
                anyhow::Error::new(crate::located::Located::new(
                    &file_path,
                    line,
                    format!(
                        "{}: {}\n(the keys are documented in the README's Configuration section)",
                        file_path.display(),
                        e.to_string().trim_end()
                    ),
                ))
            })?;
            let origin = file_path.display().to_string();
            let strs = [
                ("name", file.name),
                ("bind", file.bind),
                ("server_name", file.server_name),
                ("base_image", file.base_image),
                ("site_dir", file.site_dir),
                ("templates_dir", file.templates_dir),
                ("probe_host", file.probe_host),
                ("ingress_host", file.ingress_host),
                ("namespace", file.namespace),
                ("target", file.target),
                ("registry", file.registry),
            ];
            for (k, v) in strs {
                if let Some(v) = v {
                    layered.set(k, Raw::Str(v), &origin);
                }
            }
            let ints = [
                ("port", file.port),
                ("precompress_min_size", file.precompress_min_size),
                ("health_timeout", file.health_timeout),
                ("drain", file.drain),
                ("keep_images", file.keep_images),
                ("lock_timeout", file.lock_timeout),
                ("replicas", file.replicas),
            ];
            for (k, v) in ints {
                if let Some(v) = v {
                    layered.set(k, Raw::Int(v), &origin);
                }
            }
            if let Some(v) = file.spa {
                layered.set("spa", Raw::Bool(v), &origin);
            }
        }

        for key in KEYS {
            let var = env_var(key);
            if let Some(v) = env.get(&var) {
                layered.set(key, Raw::Str(v.clone()), var);
            }
        }
        // Other SITEBUILD_* variables are fine (CI secrets, dotenv reports), but one that is a
        // typo of a setting is an error: it would otherwise be silently ignored.
        for var in env.keys() {
            if KEYS.iter().any(|key| env_var(key) == *var) {
                continue;
            }
            let name = var.trim_start_matches("SITEBUILD_").to_ascii_lowercase();
            if let Some(key) = KEYS.iter().find(|key| edit_distance(&name, key) == 1) {
                bail!(
                    "unknown environment variable {var}: did you mean {}? (unset it or fix its name)",
                    env_var(key)
                );
            }
        }

        if let Some(v) = &overrides.port {
            layered.set("port", Raw::Str(v.clone()), "--port");
        }
        if let Some(v) = &overrides.bind {
            layered.set("bind", Raw::Str(v.clone()), "--bind");
        }
        if let Some(v) = &overrides.base_image {
            layered.set("base_image", Raw::Str(v.clone()), "--base-image");
        }
        if let Some(v) = &overrides.target {
            layered.set("target", Raw::Str(v.clone()), "--target");
        }
        if let Some(v) = &overrides.replicas {
            layered.set("replicas", Raw::Str(v.clone()), "--replicas");
        }

        validate(project_dir, layered)
    }

    /// `http://127.0.0.1:8080/` — what a browser opens.
    pub fn url(&self) -> String {
        let host = match self.bind {
            IpAddr::V4(v4) if v4.is_unspecified() => "localhost".to_string(),
            IpAddr::V6(v6) if v6.is_unspecified() => "localhost".to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
            IpAddr::V4(v4) => v4.to_string(),
        };
        format!("http://{host}:{}/", self.port)
    }

    /// Where sitebuild reaches the published port to check health: `probe_host` when set; the
    /// engine's host for a remote `DOCKER_HOST` (tcp://, ssh://); else the bind address
    /// (loopback when bound to all interfaces).
    pub fn probe_addr(&self) -> Result<std::net::SocketAddr> {
        let host = match (&self.probe_host, remote_engine_host()) {
            (Some(h), _) => h.clone(),
            (None, Some(h)) => h,
            (None, None) if self.bind.is_unspecified() => "127.0.0.1".to_string(),
            (None, None) => self.bind.to_string(),
        };
        use std::net::ToSocketAddrs;
        let bracketed = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        format!("{bracketed}:{}", self.port)
            .to_socket_addrs()
            .with_context(|| {
                format!("cannot resolve {host}, where sitebuild checks the site's health (set `probe_host`)")
            })?
            .next()
            .with_context(|| format!("{host} has no address (set `probe_host`)"))
    }
}

/// The host of a remote `DOCKER_HOST` (`tcp://host:2376`, `ssh://user@host:22`); None for a
/// local socket or a loopback address.
pub fn remote_engine_host() -> Option<String> {
    let raw = std::env::var("DOCKER_HOST").ok()?;
    let rest = raw
        .strip_prefix("tcp://")
        .or_else(|| raw.strip_prefix("ssh://"))
        .or_else(|| raw.strip_prefix("http://"))
        .or_else(|| raw.strip_prefix("https://"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let hostport = authority
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(authority);
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split(']').next().unwrap_or(v6).to_string()
    } else {
        hostport.split(':').next().unwrap_or(hostport).to_string()
    };
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    (!host.is_empty() && !loopback).then_some(host)
}

/// Optimal-string-alignment distance (an adjacent swap counts as one edit).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

fn validate(project_dir: PathBuf, mut layered: Layered) -> Result<Config> {
    let mut origin = BTreeMap::new();
    let mut take = |key: &'static str| -> Option<(Raw, String)> {
        let v = layered.values.remove(key);
        if let Some((_, o)) = &v {
            origin.insert(key, o.clone());
        }
        v
    };
    let err = |key: &str, from: &str, what: String| -> anyhow::Error {
        anyhow::anyhow!("invalid `{key}` (from {from}): {what}")
    };

    let str_of = |key: &'static str, raw: Raw, from: &str| -> Result<String> {
        match raw {
            Raw::Str(s) => Ok(s),
            other => Err(err(key, from, format!("expected a string, got {other:?}"))),
        }
    };
    let int_of = |key: &'static str, raw: Raw, from: &str| -> Result<i64> {
        match raw {
            Raw::Int(i) => Ok(i),
            Raw::Str(s) => s
                .trim()
                .parse::<i64>()
                .map_err(|_| err(key, from, format!("{s:?} is not a whole number"))),
            Raw::Bool(b) => Err(err(key, from, format!("expected a number, got {b}"))),
        }
    };
    let bool_of = |key: &'static str, raw: Raw, from: &str| -> Result<bool> {
        match raw {
            Raw::Bool(b) => Ok(b),
            Raw::Str(s) => match s.trim() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(err(key, from, format!("{s:?} is not true/false"))),
            },
            Raw::Int(i) => Err(err(key, from, format!("expected true/false, got {i}"))),
        }
    };

    // name
    let name = match take("name") {
        Some((raw, from)) => {
            let name = str_of("name", raw, &from)?;
            check_name(&name).map_err(|m| err("name", &from, m))?;
            name
        }
        None => default_name(&project_dir),
    };

    let port = match take("port") {
        Some((raw, from)) => {
            let p = int_of("port", raw, &from)?;
            if !(1..=65535).contains(&p) {
                return Err(err(
                    "port",
                    &from,
                    format!("{p} is out of range; use a port between 1 and 65535"),
                ));
            }
            p as u16
        }
        None => 8080,
    };

    let bind = match take("bind") {
        Some((raw, from)) => {
            let s = str_of("bind", raw, &from)?;
            s.trim().parse::<IpAddr>().map_err(|_| {
                err(
                    "bind",
                    &from,
                    format!("{s:?} is not an IP address (e.g. 127.0.0.1 or 0.0.0.0)"),
                )
            })?
        }
        None => IpAddr::from([127, 0, 0, 1]),
    };

    let server_name = match take("server_name") {
        Some((raw, from)) => {
            let s = str_of("server_name", raw, &from)?;
            check_server_name(&s).map_err(|m| err("server_name", &from, m))?;
            s
        }
        None => "_".to_string(),
    };

    let base_image = match take("base_image") {
        Some((raw, from)) => {
            let s = str_of("base_image", raw, &from)?;
            check_image_ref(&s).map_err(|m| err("base_image", &from, m))?;
            s
        }
        None => DEFAULT_BASE_IMAGE.to_string(),
    };

    let mut dir_key = |key: &'static str, default: &str| -> Result<PathBuf> {
        match take(key) {
            Some((raw, from)) => {
                let s = str_of(key, raw, &from)?;
                check_rel_path(&s).map_err(|m| err(key, &from, m))?;
                Ok(project_dir.join(s))
            }
            None => Ok(project_dir.join(default)),
        }
    };
    let site_dir = dir_key("site_dir", "site")?;
    let templates_dir = dir_key("templates_dir", "nginx")?;

    let spa = match take("spa") {
        Some((raw, from)) => bool_of("spa", raw, &from)?,
        None => false,
    };

    let precompress_min_size = match take("precompress_min_size") {
        Some((raw, from)) => {
            let v = int_of("precompress_min_size", raw, &from)?;
            if v < 0 {
                return Err(err(
                    "precompress_min_size",
                    &from,
                    format!("{v} is negative; use a size in bytes (0 = compress every text file)"),
                ));
            }
            v as u64
        }
        None => 1024,
    };

    let mut ranged = |key: &'static str,
                      range: std::ops::RangeInclusive<i64>,
                      unit: &str,
                      default: u64|
     -> Result<u64> {
        match take(key) {
            Some((raw, from)) => {
                let v = int_of(key, raw, &from)?;
                if !range.contains(&v) {
                    return Err(err(
                        key,
                        &from,
                        format!(
                            "{v} is out of range; use {} to {} {unit}",
                            range.start(),
                            range.end()
                        ),
                    ));
                }
                Ok(v as u64)
            }
            None => Ok(default),
        }
    };
    let health_timeout = ranged("health_timeout", 1..=600, "seconds", 30)?;
    let drain = ranged("drain", 0..=300, "seconds", 3)?;

    let keep_images = ranged("keep_images", 1..=100, "images", 3)?;
    let lock_timeout = ranged("lock_timeout", 1..=3600, "seconds", 300)?;
    let replicas = ranged("replicas", 1..=100, "replicas", 2)? as i64;
    let mut plain_str = |key: &'static str| -> Result<Option<(String, String)>> {
        match take(key) {
            Some((raw, from)) => Ok(Some((str_of(key, raw, &from)?, from))),
            None => Ok(None),
        }
    };
    let ingress_host = match plain_str("ingress_host")? {
        Some((h, from)) => {
            let ok = check_server_name(&h).is_ok()
                && !h.contains([' ', '*'])
                && h != "_"
                && h == h.to_ascii_lowercase();
            if !ok {
                return Err(err(
                    "ingress_host",
                    &from,
                    format!("{h:?} is not one lowercase hostname (e.g. www.example.com)"),
                ));
            }
            Some(h)
        }
        None => None,
    };
    let namespace = match plain_str("namespace")? {
        Some((n, from)) => {
            let ok = !n.is_empty()
                && n.len() <= 63
                && n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !n.starts_with('-')
                && !n.ends_with('-');
            if !ok {
                return Err(err(
                    "namespace",
                    &from,
                    format!("{n:?} is not a Kubernetes namespace (lowercase letters, digits, '-')"),
                ));
            }
            Some(n)
        }
        None => None,
    };
    let target = match plain_str("target")? {
        Some((t, from)) => match t.trim() {
            "local" => Target::Local,
            "swarm" => Target::Swarm,
            other => {
                return Err(err(
                    "target",
                    &from,
                    format!("{other:?} is not a target; use \"local\" or \"swarm\""),
                ));
            }
        },
        None => Target::Local,
    };
    let registry = match plain_str("registry")? {
        Some((r, from)) => {
            check_image_ref(&r).map_err(|m| err("registry", &from, m))?;
            let last = r.rsplit('/').next().unwrap_or(&r);
            if r.contains('@') || last.contains(':') {
                return Err(err(
                    "registry",
                    &from,
                    format!(
                        "{r:?} has a tag or digest; give the repository only (e.g. ghcr.io/me/site): \
                         sitebuild tags it with the fingerprint"
                    ),
                ));
            }
            Some(r)
        }
        None => None,
    };
    let probe_host = match take("probe_host") {
        Some((raw, from)) => {
            let s = str_of("probe_host", raw, &from)?;
            let one_host = check_server_name(&s).is_ok() && !s.contains([' ', '*']) && s != "_";
            if s.parse::<IpAddr>().is_err() && !one_host {
                return Err(err(
                    "probe_host",
                    &from,
                    format!("{s:?} is not a hostname or IP address"),
                ));
            }
            Some(s)
        }
        None => None,
    };

    Ok(Config {
        project_dir,
        name,
        port,
        bind,
        server_name,
        base_image,
        site_dir,
        templates_dir,
        spa,
        precompress_min_size,
        health_timeout,
        drain,
        keep_images,
        lock_timeout,
        probe_host,
        replicas,
        ingress_host,
        namespace,
        target,
        registry,
        origin,
    })
}

/// The directory name made into a valid image name: "My Site" → "my-site".
pub fn default_name(dir: &Path) -> String {
    let raw = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    name = name
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string();
    if name.is_empty() {
        "site".to_string()
    } else {
        name.chars().take(48).collect()
    }
}

const INJECTION: [char; 7] = [';', '{', '}', '"', '\'', '\n', '\r'];

fn injection_message(s: &str) -> Option<String> {
    s.chars().find(|c| INJECTION.contains(c) || *c == '\\').map(|c| {
        format!(
            "{s:?} contains {c:?}, which could inject nginx syntax; remove it (`;`, `{{`, `}}`, quotes, backslashes and newlines are refused)"
        )
    })
}

/// Image/container name: lowercase letters, digits, `-`, `_`, `.`; starts with a letter or digit.
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    if let Some(m) = injection_message(name) {
        return Err(m);
    }
    let ok = !name.is_empty()
        && name.len() <= 48
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid name: use 1-48 lowercase letters, digits, '-', '_' or '.', starting with a letter or digit"
        ))
    }
}

/// `server_name`: space-separated hostnames (letters, digits, `-`, `.`, a leading `*.`) or `_`.
pub fn check_server_name(s: &str) -> std::result::Result<(), String> {
    if let Some(m) = injection_message(s) {
        return Err(m);
    }
    let names: Vec<&str> = s.split(' ').filter(|n| !n.is_empty()).collect();
    if names.is_empty() {
        return Err("is empty; use a hostname such as example.com, or _ for any host".into());
    }
    for n in names {
        if n == "_" {
            continue;
        }
        let host = n.strip_prefix("*.").unwrap_or(n);
        let ok = !host.is_empty()
            && host.len() <= 253
            && host
                .split('.')
                .all(|label| !label.is_empty() && label.len() <= 63)
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if !ok {
            return Err(format!(
                "{n:?} is not a hostname: use letters, digits, '-' and '.', or _ for any host"
            ));
        }
    }
    Ok(())
}

/// A Docker image reference: `[registry/]repo[:tag][@digest]`, no whitespace or shell/nginx syntax.
pub fn check_image_ref(s: &str) -> std::result::Result<(), String> {
    if let Some(m) = injection_message(s) {
        return Err(m);
    }
    let ok = !s.is_empty()
        && s.len() <= 255
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c))
        && !s.starts_with(['-', '/', ':', '.']);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not an image reference (e.g. nginx:1.28.0-alpine or sitebuild/nginx:offline)"
        ))
    }
}

/// Directory keys: relative to the project, no `..`, no nginx syntax.
pub fn check_rel_path(s: &str) -> std::result::Result<(), String> {
    if let Some(m) = injection_message(s) {
        return Err(m);
    }
    let p = Path::new(s);
    if s.is_empty() {
        return Err("is empty; give a directory relative to the project".into());
    }
    if p.is_absolute() {
        return Err(format!(
            "{s:?} is absolute; give a directory relative to the project directory"
        ));
    }
    if p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!(
            "{s:?} contains `..`; the directory must be inside the project directory"
        ));
    }
    Ok(())
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
        assert_eq!(c.base_image, DEFAULT_BASE_IMAGE);
        assert!(!c.spa);
        assert_eq!(c.health_timeout, 30);
        assert_eq!(c.url(), "http://127.0.0.1:8080/");
        assert!(c.site_dir.ends_with("site"));
    }

    #[test]
    fn precedence_flag_over_env_over_file() {
        let ov = Overrides {
            port: Some("9003".into()),
            ..Default::default()
        };
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
        let ov = Overrides {
            target: Some("swarm".into()),
            replicas: Some("4".into()),
            ..Default::default()
        };
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
        let ov = Overrides {
            replicas: Some("0".into()),
            ..Default::default()
        };
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
            ("precompress_min_size = -5", "`precompress_min_size`"),
            ("health_timeout = 0", "`health_timeout`"),
            ("health_timeout = 601", "`health_timeout`"),
            ("drain = -1", "`drain`"),
            ("keep_images = 0", "`keep_images`"),
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
                ("SITEBUILD_BIND", "0.0.0.0"),
                ("SITEBUILD_HEALTH_TIMEOUT", "5"),
            ],
            Overrides::default(),
        )
        .unwrap();
        assert!(c.spa);
        assert_eq!(c.health_timeout, 5);
        assert_eq!(c.url(), "http://localhost:8080/");
        if remote_engine_host().is_none() {
            assert_eq!(c.probe_addr().unwrap().to_string(), "127.0.0.1:8080");
        }
        let c = load("probe_host = \"127.0.0.2\"", &[], Overrides::default()).unwrap();
        assert_eq!(c.probe_addr().unwrap().to_string(), "127.0.0.2:8080");
        let e = err_of("probe_host = \"a b\"", &[]);
        assert!(e.contains("`probe_host`"), "{e}");
    }

    #[test]
    fn default_name_is_sanitized() {
        assert_eq!(default_name(Path::new("/x/My Site!")), "my-site");
        assert_eq!(default_name(Path::new("/x/___")), "site");
        assert!(check_name(&default_name(Path::new("/x/Über Blog"))).is_ok());
    }
}
