//! Every setting, declared once: its name (the `sitebuild.toml` key), the TOML type the file
//! accepts, its default, the flag that overrides it and what it does. The environment variable
//! is always `SITEBUILD_<NAME>`. [`super::Config::build`] turns each into a typed field with
//! one validator from [`super::validate`].
//!
//! A new setting is one entry here, one field (and its line) in [`super::Config`], and its
//! use. A test checks that every `flag` named here exists on the command line.

/// What `sitebuild.toml` accepts for a key (env and flags are strings, parsed the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Str,
    Int,
    Bool,
    /// A TOML array of strings; env and flags give it comma- or space-separated.
    List,
}

impl Kind {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Kind::Str => "a string",
            Kind::Int => "a whole number",
            Kind::Bool => "true or false",
            Kind::List => "a list of strings",
        }
    }
}

/// One setting.
#[derive(Debug)]
pub(crate) struct Key {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    /// The default as it would be written in `sitebuild.toml`; it goes through the key's
    /// validator like any other value. None: unset, or derived (the doc says from what).
    pub(crate) default: Option<&'static str>,
    /// The command-line flag that overrides the file and the environment.
    pub(crate) flag: Option<&'static str>,
    pub(crate) doc: &'static str,
}

impl Key {
    /// `port` → `SITEBUILD_PORT`.
    pub(crate) fn env_var(&self) -> String {
        env_var(self.name)
    }
}

/// Environment variable for a key name: `port` → `SITEBUILD_PORT`.
pub(crate) fn env_var(name: &str) -> String {
    format!("SITEBUILD_{}", name.to_ascii_uppercase())
}

/// Default base image for real users: a pinned official nginx alpine tag.
/// Air-gapped machines build `sitebuild/nginx:offline` with `scripts/offline-base.sh`.
pub(crate) const DEFAULT_BASE_IMAGE: &str = "nginx:1.30.6-alpine";

pub(crate) const KEYS: &[Key] = &[
    Key {
        name: "name",
        kind: Kind::Str,
        default: None,
        flag: None,
        doc: "image repository, container prefix and project label (default: the directory name, sanitized)",
    },
    Key {
        name: "port",
        kind: Kind::Int,
        default: Some("8080"),
        flag: Some("--port"),
        doc: "host port the site is published on",
    },
    Key {
        name: "bind",
        kind: Kind::Str,
        default: Some("127.0.0.1"),
        flag: Some("--bind"),
        doc: "host address the port is bound to (0.0.0.0 exposes it)",
    },
    Key {
        name: "server_name",
        kind: Kind::Str,
        default: Some("_"),
        flag: None,
        doc: "nginx server_name: space-separated hostnames, or _ for any host",
    },
    Key {
        name: "base_image",
        kind: Kind::Str,
        default: Some(DEFAULT_BASE_IMAGE),
        flag: Some("--base-image"),
        doc: "image with nginx the site image is built on",
    },
    Key {
        name: "site_dir",
        kind: Kind::Str,
        default: Some("site"),
        flag: None,
        doc: "directory with the files to serve, relative to the project",
    },
    Key {
        name: "templates_dir",
        kind: Kind::Str,
        default: Some("nginx"),
        flag: None,
        doc: "directory with template overrides (nginx.conf.j2, edge.conf.j2), relative to the project",
    },
    Key {
        name: "spa",
        kind: Kind::Bool,
        default: Some("false"),
        flag: None,
        doc: "single-page app: unknown paths serve /index.html",
    },
    Key {
        name: "clean_urls",
        kind: Kind::Bool,
        default: Some("false"),
        flag: None,
        doc: "/about serves about.html; /about.html and /x/index.html redirect (301) to /about and /x/",
    },
    Key {
        name: "trailing_slash",
        kind: Kind::Str,
        default: Some("ignore"),
        flag: None,
        doc: "\"always\" (/about -> /about/), \"never\" (/about/ -> /about) or \"ignore\" (serve both)",
    },
    Key {
        name: "precompress_min_size",
        kind: Kind::Int,
        default: Some("1024"),
        flag: None,
        doc: "text files at least this many bytes get a .gz sibling at build time (and a .br one when the base has the brotli module)",
    },
    Key {
        name: "brotli",
        kind: Kind::Bool,
        default: Some("false"),
        flag: None,
        doc: "also make .br siblings (brotli quality 9-11) when the base has nginx's brotli module; off by default: on a cold cache it costs several times gzip's build CPU",
    },
    Key {
        name: "no_cache",
        kind: Kind::Bool,
        default: Some("false"),
        flag: Some("--no-cache"),
        doc: "compress every .gz sibling again instead of reusing the precompression cache ($XDG_CACHE_HOME/sitebuild/precompressed, else ~/.cache/sitebuild/precompressed), and write the whole site layer instead of an incremental one on the previous image (what is served is the same)",
    },
    Key {
        name: "cache_max_size",
        kind: Kind::Int,
        default: Some("536870912"),
        flag: None,
        doc: "bytes the precompression cache may hold; the least recently used entries go first",
    },
    Key {
        name: "health_timeout",
        kind: Kind::Int,
        default: Some("30"),
        flag: None,
        doc: "seconds a new version gets to answer /healthz with 200",
    },
    Key {
        name: "drain",
        kind: Kind::Int,
        default: Some("5"),
        flag: None,
        doc: "seconds the old version keeps running after the switch, for in-flight requests",
    },
    Key {
        name: "keep_images",
        kind: Kind::Int,
        default: Some("3"),
        flag: None,
        doc: "images of the project kept for rollback (the live one always is)",
    },
    Key {
        name: "skew_max_size",
        kind: Kind::Int,
        default: Some("52428800"),
        flag: None,
        doc: "bytes of content-hashed assets of the previous keep_images - 1 versions packed into a new image, so pages loaded before a deploy still get their assets (skew protection); 0 turns it off",
    },
    Key {
        name: "lock_timeout",
        kind: Kind::Int,
        default: Some("300"),
        flag: None,
        doc: "seconds a deploy waits for another deploy of the same project",
    },
    Key {
        name: "probe_host",
        kind: Kind::Str,
        default: None,
        flag: None,
        doc: "host sitebuild checks health on (default: the remote engine's host, else the bind address)",
    },
    Key {
        name: "replicas",
        kind: Kind::Int,
        default: Some("2"),
        flag: Some("--replicas"),
        doc: "swarm tasks / Kubernetes pods",
    },
    Key {
        name: "ingress_host",
        kind: Kind::Str,
        default: None,
        flag: None,
        doc: "Kubernetes: Ingress hostname (no Ingress without it)",
    },
    Key {
        name: "namespace",
        kind: Kind::Str,
        default: None,
        flag: None,
        doc: "Kubernetes: namespace of the manifests (default: kubectl's context)",
    },
    Key {
        name: "target",
        kind: Kind::Str,
        default: Some("local"),
        flag: Some("--target"),
        doc: "where deploy, rollback and status act: local or swarm",
    },
    Key {
        name: "registry",
        kind: Kind::Str,
        default: None,
        flag: None,
        doc: "repository images are pushed to before a swarm deploy (required with several nodes)",
    },
    Key {
        name: "domains",
        kind: Kind::List,
        default: None,
        flag: None,
        doc: "host names the site answers to on the edge's HTTP and HTTPS ports (none: the edge serves any host on `port`)",
    },
    Key {
        name: "tls",
        kind: Kind::Str,
        default: None,
        flag: None,
        doc: "HTTPS for the domains: acme (automatic certificates; the default with domains), files (tls_cert + tls_key) or off",
    },
    Key {
        name: "tls_cert",
        kind: Kind::Str,
        default: None,
        flag: None,
        doc: "tls = files: PEM certificate chain (leaf first), relative to the project or absolute",
    },
    Key {
        name: "tls_key",
        kind: Kind::Str,
        default: None,
        flag: None,
        doc: "tls = files: PEM private key of tls_cert",
    },
    Key {
        name: "hsts",
        kind: Kind::Int,
        default: Some("0"),
        flag: None,
        doc: "Strict-Transport-Security max-age in seconds on HTTPS responses (0: no header)",
    },
    Key {
        name: "http_port",
        kind: Kind::Int,
        default: Some("80"),
        flag: Some("--http-port"),
        doc: "with domains: host port of the edge's HTTP listener (redirects to HTTPS, answers ACME challenges)",
    },
    Key {
        name: "https_port",
        kind: Kind::Int,
        default: Some("443"),
        flag: Some("--https-port"),
        doc: "with domains and TLS: host port of the edge's HTTPS listener",
    },
    Key {
        name: "acme_email",
        kind: Kind::Str,
        default: None,
        flag: None,
        doc: "tls = acme: contact address of the ACME account (optional)",
    },
    Key {
        name: "acme_directory",
        kind: Kind::Str,
        default: Some("production"),
        flag: None,
        doc: "tls = acme: ACME directory: production or staging (Let's Encrypt), or an https:// URL",
    },
    Key {
        name: "acme_root",
        kind: Kind::Str,
        default: None,
        flag: None,
        doc: "tls = acme: PEM file of extra root certificates to trust for the ACME server's own HTTPS (e.g. pebble's)",
    },
    Key {
        name: "preview",
        kind: Kind::Str,
        default: None,
        flag: Some("--preview"),
        doc: "deploy (or take down) the preview NAME instead of production: a separate instance `<name>-preview-<NAME>` serving the current content; a DNS label such as pr-42 (from the flag or SITEBUILD_PREVIEW in CI, not the file)",
    },
    Key {
        name: "preview_domain",
        kind: Kind::Str,
        default: None,
        flag: None,
        doc: "previews are served at <preview>.<preview_domain> (like `domains`, TLS as configured); unset: each preview on a free port in 20000-29999",
    },
    Key {
        name: "preview_ttl",
        kind: Kind::Int,
        default: Some("0"),
        flag: None,
        doc: "days after its last deploy a preview is removed (checked at every deploy of the project or its previews); 0 keeps previews until `down --preview`",
    },
];

/// The declaration of `name`. Every name passed here is a literal from [`super::Config`].
pub(crate) fn key(name: &str) -> &'static Key {
    KEYS.iter()
        .find(|k| k.name == name)
        .unwrap_or_else(|| panic!("`{name}` is not declared in config::keys::KEYS"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_snake_case() {
        for (i, k) in KEYS.iter().enumerate() {
            assert!(
                k.name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{}",
                k.name
            );
            assert!(
                KEYS[i + 1..].iter().all(|o| o.name != k.name),
                "{} twice",
                k.name
            );
            assert!(!k.doc.is_empty(), "{} has no doc", k.name);
        }
        assert_eq!(key("port").env_var(), "SITEBUILD_PORT");
    }
}
