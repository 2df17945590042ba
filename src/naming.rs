//! Names and labels of everything sitebuild creates on an engine: one builder, so every
//! container, network, volume, image and service of a project carries the same keys.
//!
//! ```text
//! <project>-edge        edge container (and its volume)     role=edge
//! <project>-net         the project's private network        role=network
//! <project>-lock        deploy lock (never started)          role=lock
//! <project>-<fp12>-<6>  site container                       role=site
//! <project>-check-<6>   `nginx -t` check during a build      role=check (+ holder, since)
//! <project>             swarm service                        role=swarm-service / swarm-task
//! <project>-preview-<p> a preview instance (`--preview p`): its own edge, net, lock, sites;
//!                       the edge also carries preview-of=<project>, preview=<p>, url
//! sitebuild-edge-<port> shared edge of projects with `domains`  role=shared-edge, project=its name
//!                       (and its volume; its lock is sitebuild-edge-<port>-lock)
//! sitebuild-edge-<port>-renewer  the shared edge's certificate renewer   role=renewer,
//!                       project=the edge's name, edge=<edge id>, spec=<image and arguments>
//! ```

use std::collections::HashMap;

/// Label keys sitebuild puts on everything it creates.
pub(crate) mod labels {
    pub(crate) const MANAGED: &str = "dev.sitebuild.managed";
    pub(crate) const PROJECT: &str = "dev.sitebuild.project";
    pub(crate) const FINGERPRINT: &str = "dev.sitebuild.fingerprint";
    pub(crate) const ROLE: &str = "dev.sitebuild.role";
    pub(crate) const ADDRESS: &str = "dev.sitebuild.address";
    pub(crate) const HOLDER: &str = "dev.sitebuild.holder";
    pub(crate) const SINCE: &str = "dev.sitebuild.since";
    pub(crate) const MODE: &str = "dev.sitebuild.mode";
    /// On a preview's edge: the production project's name, the preview's name, its URL.
    pub(crate) const PREVIEW_OF: &str = "dev.sitebuild.preview-of";
    pub(crate) const PREVIEW: &str = "dev.sitebuild.preview";
    pub(crate) const URL: &str = "dev.sitebuild.url";
    /// On a renewer: the id of the edge whose PID namespace it joined, and what it runs.
    pub(crate) const EDGE: &str = "dev.sitebuild.edge";
    pub(crate) const SPEC: &str = "dev.sitebuild.spec";
}

/// Values of the `dev.sitebuild.role` label.
pub(crate) mod roles {
    pub(crate) const SITE: &str = "site";
    pub(crate) const EDGE: &str = "edge";
    pub(crate) const SHARED_EDGE: &str = "shared-edge";
    /// The certificate renewer next to a shared edge with `tls = "acme"` projects.
    pub(crate) const RENEWER: &str = "renewer";
    pub(crate) const LOCK: &str = "lock";
    pub(crate) const NETWORK: &str = "network";
    /// A build's one-shot `nginx -t` container; one left by a killed build is removed by the
    /// next build once its holder process is gone.
    pub(crate) const CHECK: &str = "check";
    pub(crate) const SWARM_SERVICE: &str = "swarm-service";
    pub(crate) const SWARM_TASK: &str = "swarm-task";
}

/// The label map of one resource of a project: `managed`, `project`, then whatever is added.
///
/// ```ignore
/// let l = Labels::project("blog").role(roles::EDGE).with(labels::ADDRESS, "127.0.0.1:8080");
/// ```
#[derive(Debug, Clone)]
pub(crate) struct Labels(HashMap<String, String>);

impl Labels {
    pub(crate) fn project(project: &str) -> Labels {
        Labels(HashMap::from([
            (labels::MANAGED.to_string(), "true".to_string()),
            (labels::PROJECT.to_string(), project.to_string()),
        ]))
    }

    /// A short-lived container this run holds (a build's `nginx -t`, a probe of an image):
    /// role `check`, held by this process since now, so the next build or deploy removes it
    /// once this process is gone (`image::remove_stale_checks`).
    pub(crate) fn held(project: &str) -> Labels {
        Labels::project(project)
            .role(roles::CHECK)
            .with(labels::HOLDER, crate::holder::this_process())
            .with(labels::SINCE, crate::holder::now_secs().to_string())
    }

    pub(crate) fn role(self, role: &str) -> Labels {
        self.with(labels::ROLE, role)
    }

    pub(crate) fn with(mut self, key: &str, value: impl Into<String>) -> Labels {
        self.0.insert(key.to_string(), value.into());
        self
    }

    pub(crate) fn build(self) -> HashMap<String, String> {
        self.0
    }
}

pub(crate) fn edge_container(project: &str) -> String {
    format!("{project}-edge")
}

pub(crate) fn edge_volume(project: &str) -> String {
    format!("{project}-edge")
}

/// The shared edge of the projects with `domains` on `http_port` (also its volume's name, and
/// the `project` label of both).
pub(crate) fn shared_edge(http_port: u16) -> String {
    format!("sitebuild-edge-{http_port}")
}

/// The renewal container of the shared edge `edge` (`sitebuild-edge-<port>`).
pub(crate) fn renewer(edge: &str) -> String {
    format!("{edge}-renewer")
}

pub(crate) fn network(project: &str) -> String {
    format!("{project}-net")
}

pub(crate) fn lock_container(project: &str) -> String {
    format!("{project}-lock")
}

/// The swarm service of a project is named like the project.
pub(crate) fn service(project: &str) -> String {
    project.to_string()
}

/// A new site container: `<project>-<short fingerprint>-<6 hex>` (the edge's candidate map
/// admits exactly this shape).
pub(crate) fn site_container(project: &str, short_fingerprint: &str) -> String {
    format!("{project}-{short_fingerprint}-{}", unique_suffix())
}

/// The one-shot `nginx -t` container of a build.
pub(crate) fn check_container(project: &str) -> String {
    format!("{project}-check-{}", unique_suffix())
}

/// The never-started container that shows what a base image holds (`image::base_support`).
pub(crate) fn probe_container(project: &str) -> String {
    format!("{project}-probe-{}", unique_suffix())
}

/// Six hex digits to keep container names unique across runs.
fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() ^ (d.as_secs() as u32));
    format!(
        "{:06x}",
        (nanos ^ std::process::id().rotate_left(12)) & 0xff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_names() {
        let l = Labels::project("blog")
            .role(roles::EDGE)
            .with(labels::ADDRESS, "127.0.0.1:8080")
            .build();
        assert_eq!(l[labels::MANAGED], "true");
        assert_eq!(l[labels::PROJECT], "blog");
        assert_eq!(l[labels::ROLE], "edge");
        assert_eq!(l[labels::ADDRESS], "127.0.0.1:8080");
        let site = site_container("blog", "0123456789ab");
        let (prefix, suffix) = site.rsplit_once('-').unwrap();
        assert_eq!(prefix, "blog-0123456789ab");
        assert!(suffix.len() == 6 && suffix.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(network("blog"), "blog-net");
        assert_eq!(lock_container("blog"), "blog-lock");
        assert_eq!(shared_edge(443), "sitebuild-edge-443");
        assert_eq!(lock_container(&shared_edge(80)), "sitebuild-edge-80-lock");
        assert_eq!(renewer(&shared_edge(80)), "sitebuild-edge-80-renewer");
    }
}
