//! Command-line flags (clap derive only; no logic here).

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use crate::config::Target;
pub use crate::init::CiKind;

/// `sitebuild --version`: the package version and the git commit it was built from
/// (`unknown` outside a git checkout; see build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("SITEBUILD_COMMIT"),
    ")"
);

/// Turn a static site into a running, hardened nginx container.
///
/// The project directory holds `site/` (the files to serve), optionally `nginx/` (template
/// overrides) and `sitebuild.toml`. Settings come from flags > `SITEBUILD_*` env > sitebuild.toml
/// > defaults. The Docker engine is found like the docker CLI finds it (`DOCKER_HOST`).
#[derive(Debug, Parser)]
#[command(name = "sitebuild", version = VERSION, propagate_version = true)]
pub struct Cli {
    /// Project directory (default: the current directory).
    ///
    /// Example: `sitebuild --dir ~/www/blog up`
    #[arg(long, global = true, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,

    /// Only print errors and the final result.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Print the engine's build output and every step.
    #[arg(short, long, global = true)]
    pub verbose: bool,

    /// Print the result as one JSON object on stdout (for scripts).
    ///
    /// Example: `sitebuild --json build | jq -r .image`
    #[arg(long, global = true)]
    pub json: bool,

    /// Also write the result as a dotenv file (`SITEBUILD_FINGERPRINT=…`), e.g. a GitLab
    /// `artifacts:reports:dotenv` report.
    ///
    /// Example: `sitebuild --dotenv sitebuild.env build`
    #[arg(long, global = true, value_name = "FILE")]
    pub dotenv: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the rendered nginx.conf (or write it with --out).
    ///
    /// Example: `sitebuild render --out /tmp/nginx.conf`
    Render {
        /// Write the config to FILE instead of standard output (with --k8s: a directory).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Render Kubernetes manifests (Deployment, Service, optional Ingress) for the site's
        /// image instead of nginx.conf. Templates in deploy/k8s/ override the built-in ones.
        ///
        /// Example: `sitebuild render --k8s --image ghcr.io/me/site --out k8s/`
        #[arg(long)]
        k8s: bool,
        /// With --k8s: the image repository the cluster pulls (tagged with the fingerprint);
        /// default: the local `<name>:<fingerprint>`.
        #[arg(long, value_name = "REPO", requires = "k8s")]
        image: Option<String>,
    },
    /// Build the site image (nothing is built when the fingerprint already exists).
    ///
    /// Example: `sitebuild build` → tags `<name>:<fingerprint>` and `<name>:latest`
    Build(BuildArgs),
    /// Build if needed and serve the site on http://<bind>:<port> (same path as `deploy`).
    ///
    /// Example: `sitebuild up --port 9000`
    Up(UpArgs),
    /// Build if needed, then swap the live version without dropping a request: the new
    /// container must answer /healthz before the edge proxy switches to it.
    ///
    /// Example: `sitebuild deploy` (run it again with nothing changed: a no-op)
    ///
    /// With --image, deploy an image sitebuild already built and pushed (build once, deploy that
    /// artifact): `sitebuild deploy --image ghcr.io/me/site:3f2a1c9d0b4e`
    Deploy {
        #[command(flatten)]
        args: UpArgs,
        /// Pull this image (`REPO@sha256:…` or `REPO:<fingerprint>`, with the registry
        /// credentials `push` uses) instead of building the site, check that sitebuild built it
        /// (its `dev.sitebuild.fingerprint` label) and deploy it through the same health gate.
        ///
        /// Example: `--image ghcr.io/me/site@sha256:…`
        #[arg(long, value_name = "REF", conflicts_with = "base_image")]
        image: Option<String>,
    },
    /// Watch site/, the templates and sitebuild.toml; redeploy on every change (site-only
    /// changes are synced into the running container in milliseconds) and reload open browser
    /// tabs. Errors are printed and the last good version stays live.
    ///
    /// Example: `sitebuild watch` then edit site/index.html; `sitebuild watch --rm` cleans up on Ctrl-C
    Watch {
        #[command(flatten)]
        args: UpArgs,
        /// On Ctrl-C remove the containers (like `sitebuild down`).
        #[arg(long)]
        rm: bool,
    },
    /// Go back to the previous image (or the one with the given fingerprint) through the same
    /// health gate.
    ///
    /// Example: `sitebuild rollback` or `sitebuild rollback 3f2a1c`
    Rollback {
        /// Fingerprint (at least 4 leading hex digits) of a kept image; default: the previous one.
        fingerprint: Option<String>,
        #[command(flatten)]
        args: UpArgs,
    },
    /// Does anything that affects the site (site files after the ignore rules, templates,
    /// sitebuild.toml) differ between REF and the working tree? Exit code 0: changed;
    /// 3: no change; 1: error.
    ///
    /// Example: `sitebuild changed --since "$GITHUB_EVENT_BEFORE"`
    Changed {
        /// Git revision to compare with (default HEAD~1). An all-zero or unknown revision counts
        /// as a change.
        #[arg(long, value_name = "REF")]
        since: Option<String>,
    },
    /// Build if needed and push the image to a registry as REPO:<fingerprint> plus any --tag.
    /// Credentials: `SITEBUILD_REGISTRY_USER/SITEBUILD_REGISTRY_PASSWORD`, else docker's
    /// config.json (`DOCKER_CONFIG`), else none.
    ///
    /// Example: `sitebuild push --to ghcr.io/me/site --tag sha-1a2b3c4 --tag latest`
    Push {
        /// Repository to push to, without a tag.
        #[arg(long, value_name = "REPO")]
        to: String,
        /// Extra tags (repeatable).
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        #[command(flatten)]
        build: BuildArgs,
    },
    /// Show what runs for this project: container, fingerprint, URL, health, since when.
    ///
    /// Example: `sitebuild status`
    Status {
        /// Which target to report on (overrides `target`): `local` or `swarm`.
        ///
        /// Example: `sitebuild status --target swarm`
        #[arg(long, value_name = "TARGET")]
        target: Option<Target>,
    },
    /// Remove every container, network and volume sitebuild created for this project and its
    /// previews (and with --images, its images), or for one preview with --preview.
    ///
    /// Example: `sitebuild down --images`
    Down {
        /// Also remove the project's images.
        #[arg(long)]
        images: bool,
        /// Take down only the preview NAME (production and other previews stay).
        ///
        /// Example: `sitebuild down --preview pr-42`
        #[arg(long, value_name = "NAME")]
        preview: Option<String>,
    },
    /// Renew the ACME certificate (tls = "acme") when less than a third of its lifetime is
    /// left; the old one keeps serving if renewal fails (exit code 1). Run it daily from a
    /// systemd timer or cron.
    ///
    /// Example: `sitebuild renew` (or `sitebuild renew --force` to renew now)
    Renew {
        /// Renew even when the certificate is not due.
        #[arg(long)]
        force: bool,
    },
    /// The renewal loop of the renewer container next to a shared edge (run by sitebuild in
    /// that container, `--dir` = the edge's volume; not for humans).
    #[command(hide = true)]
    Renewer {
        /// Seconds between checks (default 12 h, with jitter).
        #[arg(long, default_value_t = 43_200)]
        interval: u64,
        /// Renew at every check, due or not (tests).
        #[arg(long)]
        force: bool,
    },
    /// Maintenance mode: the edge answers every request of this project with 503, a
    /// `Retry-After` header and a page (`site/maintenance.html` of the live version when it has
    /// one, else a built-in page with --message), while /healthz keeps answering 200. It stays
    /// on across deploys until `sitebuild maintenance off`.
    ///
    /// Example: `sitebuild maintenance on --message "Back at 14:00 UTC"`
    Maintenance {
        /// `on` or `off`.
        #[arg(value_enum)]
        state: OnOff,
        /// The text of the built-in page (HTML-escaped; at most 2000 characters).
        #[arg(long)]
        message: Option<String>,
    },
    /// Set up a repository: find the site (an `index.html` in public/, _site/, dist/, build/,
    /// out/, docs/, site/ or the root, or a Hugo, Jekyll, Eleventy, Astro or Vite config) and
    /// write sitebuild.toml and the CI configuration that deploys it. Existing files are never
    /// overwritten without --force.
    ///
    /// Example: `sitebuild init --ci github` then commit the files it lists
    Init {
        /// Which CI configuration to write: `github` (.github/workflows/sitebuild.yml, using the
        /// sitebuild Action), `gitlab` (.gitlab-ci.yml, including the sitebuild component) or
        /// `both`. Default: gitlab when the repository's remote is on GitLab, else github.
        #[arg(long, value_enum, value_name = "CI")]
        ci: Option<CiKind>,
        /// Overwrite files that already exist.
        #[arg(long)]
        force: bool,
    },
    /// Print a shell completion script for SHELL (bash, zsh, fish, elvish, powershell).
    ///
    /// Example: `sitebuild completions bash > ~/.local/share/bash-completion/completions/sitebuild`
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    ///
    /// Example: `sitebuild man > ~/.local/share/man/man1/sitebuild.1`
    #[command(hide = true)]
    Man,
}

#[derive(Debug, Args, Default, Clone)]
pub struct BuildArgs {
    /// Base image with nginx (overrides `base_image`).
    ///
    /// Example: `--base-image sitebuild/nginx:offline`
    #[arg(long, value_name = "IMAGE")]
    pub base_image: Option<String>,

    /// Compress every `.gz` sibling again instead of reusing the precompression cache
    /// (overrides `no_cache` and `SITEBUILD_NO_CACHE`). The image is the same either way.
    ///
    /// Example: `sitebuild build --no-cache`
    #[arg(long)]
    pub no_cache: bool,
}

#[derive(Debug, Args, Default, Clone)]
pub struct UpArgs {
    #[command(flatten)]
    pub build: BuildArgs,

    /// Host port to publish the site on (overrides `port` and `SITEBUILD_PORT`; default 8080).
    ///
    /// Example: `--port 9000`
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,

    /// Host address to bind (overrides `bind`; default 127.0.0.1). Use 0.0.0.0 to expose it.
    ///
    /// Example: `--bind 0.0.0.0`
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<IpAddr>,

    /// Where to deploy (overrides `target`): `local` (this engine, an edge container owns the
    /// port) or `swarm` (a Docker Swarm service; the engine must be a swarm manager).
    ///
    /// Example: `sitebuild deploy --target swarm --replicas 3`
    #[arg(long, value_name = "TARGET")]
    pub target: Option<Target>,

    /// Swarm tasks to run (overrides `replicas`; default 2).
    ///
    /// Example: `--replicas 3`
    #[arg(long, value_name = "N")]
    pub replicas: Option<u32>,

    /// With `domains`: host port of the edge's HTTP listener (overrides `http_port`; default 80).
    ///
    /// Example: `--http-port 8080`
    #[arg(long, value_name = "N")]
    pub http_port: Option<u16>,

    /// With `domains` and TLS: host port of the edge's HTTPS listener (overrides `https_port`;
    /// default 443).
    ///
    /// Example: `--https-port 8443`
    #[arg(long, value_name = "N")]
    pub https_port: Option<u16>,

    /// Deploy the current content as the preview NAME (a DNS label), a separate instance beside
    /// production: at `NAME.<preview_domain>`, or on a free port in 20000-29999 (kept across its
    /// redeploys) without `preview_domain`. Production must be deployed first.
    ///
    /// Example: `sitebuild deploy --preview pr-42`
    #[arg(long, value_name = "NAME")]
    pub preview: Option<String>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;
    use crate::config::keys::KEYS;

    /// The flag each setting declares in `config::keys` exists on every command that deploys.
    #[test]
    fn every_declared_flag_exists() {
        let cli = Cli::command();
        for key in KEYS {
            let Some(flag) = key.flag else { continue };
            for cmd in ["deploy", "up"] {
                let sub = cli.find_subcommand(cmd).unwrap();
                assert!(
                    sub.get_arguments()
                        .any(|a| a.get_long() == flag.strip_prefix("--")),
                    "`{}` declares {flag}, which `sitebuild {cmd}` does not have",
                    key.name
                );
            }
        }
    }
}

/// `sitebuild maintenance on|off`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnOff {
    On,
    Off,
}
