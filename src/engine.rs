//! The Docker engine, through bollard. The only module that imports bollard: everything else
//! talks in the plain types defined here.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bollard::Docker;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerConfig, ContainerCreateBody, ExecConfig, HostConfig, Mount, MountType,
    NetworkCreateRequest, PortBinding, RestartPolicy, RestartPolicyNameEnum, VolumeCreateRequest,
};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CommitContainerOptionsBuilder, CreateContainerOptionsBuilder,
    CreateImageOptionsBuilder, DownloadFromContainerOptionsBuilder, KillContainerOptionsBuilder,
    ListContainersOptionsBuilder, ListImagesOptionsBuilder, LogsOptionsBuilder,
    PushImageOptionsBuilder, RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
    RemoveVolumeOptionsBuilder, StopContainerOptionsBuilder, TagImageOptionsBuilder,
    TopOptionsBuilder, UploadToContainerOptionsBuilder,
};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

pub mod swarm;

/// Errors callers branch on.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
}

/// Label keys sitebuild puts on everything it creates.
pub mod labels {
    pub const MANAGED: &str = "dev.sitebuild.managed";
    pub const PROJECT: &str = "dev.sitebuild.project";
    pub const FINGERPRINT: &str = "dev.sitebuild.fingerprint";
    pub const ROLE: &str = "dev.sitebuild.role";
    pub const ADDRESS: &str = "dev.sitebuild.address";
    pub const HOLDER: &str = "dev.sitebuild.holder";
    pub const SINCE: &str = "dev.sitebuild.since";
    pub const MODE: &str = "dev.sitebuild.mode";
}

/// A connected engine.
pub struct Engine {
    docker: Docker,
    host: String,
}

/// What we need to know about a container.
#[derive(Debug, Clone)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub image: String,
    pub labels: HashMap<String, String>,
    /// "running", "exited", "created", …
    pub state: String,
    pub started_at: Option<String>,
    pub exit_code: Option<i64>,
    /// How often the engine restarted it (a crash loop shows here).
    pub restart_count: i64,
}

impl ContainerInfo {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
    pub fn is_running(&self) -> bool {
        self.state == "running"
    }
}

/// What we need to know about an image.
#[derive(Debug, Clone)]
pub struct ImageInfo {
    pub id: String,
    pub tags: Vec<String>,
    pub labels: HashMap<String, String>,
    pub size: i64,
    /// Seconds since the epoch (0 when unknown).
    pub created: i64,
}

/// A hardened site container: non-root, read-only rootfs, no capabilities, no privilege
/// escalation, memory and pid limits, /tmp as the only writable place.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub labels: HashMap<String, String>,
    /// (host ip, host port, container port) to publish; None = no published port.
    pub publish: Option<(String, u16, u16)>,
    pub user: String,
    pub memory_bytes: i64,
    pub pids_limit: i64,
    /// Override the image's entrypoint and command (used for the `nginx -t` check).
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub network_disabled: bool,
    /// User-defined network to join (the project's private network).
    pub network: Option<String>,
    /// Named volumes: `volume:/path`.
    pub binds: Vec<String>,
    /// A fresh anonymous volume at this path, filled from the image (`watch`'s writable site
    /// directory); removed with the container.
    pub scratch_volume: Option<String>,
    /// `unless-stopped` for the site; no restart for one-shot checks.
    pub restart: bool,
}

/// Runtime settings committed into the final image.
#[derive(Debug, Clone)]
pub struct ImageConfig {
    pub user: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub exposed_port: u16,
    pub stop_signal: String,
    pub labels: HashMap<String, String>,
}

/// One event from a build, for progress display.
#[derive(Debug, Clone)]
pub enum BuildEvent {
    /// A line of builder output ("Step 3/8 : COPY …").
    Log(String),
}

fn status_of(err: &bollard::errors::Error) -> Option<u16> {
    match err {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

fn classify(err: bollard::errors::Error, what: &str) -> anyhow::Error {
    match status_of(&err) {
        Some(404) => anyhow!(EngineError::NotFound(what.to_string())).context(err.to_string()),
        Some(409) => anyhow!(EngineError::Conflict(what.to_string())).context(err.to_string()),
        _ => anyhow!(err),
    }
}

fn docker_credentials(c: &crate::registry::Credentials) -> bollard::auth::DockerCredentials {
    bollard::auth::DockerCredentials {
        username: Some(c.username.clone()),
        password: Some(c.password.clone()),
        serveraddress: Some(c.server.clone()),
        ..Default::default()
    }
}

/// Is this error (anywhere in the chain) a 409 from the engine?
pub fn is_conflict(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        matches!(
            e.downcast_ref::<EngineError>(),
            Some(EngineError::Conflict(_))
        )
    })
}

/// Is this error (anywhere in the chain) a 404 from the engine?
pub fn is_not_found(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        matches!(
            e.downcast_ref::<EngineError>(),
            Some(EngineError::NotFound(_))
        )
    })
}

impl Engine {
    /// Connect like the docker CLI: `DOCKER_HOST`, else the local socket. Fails within a few
    /// seconds with the address and what to do when the engine does not answer.
    pub async fn connect() -> Result<Engine> {
        let host = std::env::var("DOCKER_HOST")
            .unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string());
        let hint = || {
            format!(
                "cannot reach the Docker engine at {host} (from DOCKER_HOST or the default socket): \
                 start the daemon (`sudo service docker start`), or point DOCKER_HOST at a running engine"
            )
        };
        let docker = Docker::connect_with_defaults().with_context(hint)?;
        let docker = docker.with_timeout(Duration::from_secs(600));
        // One request answers both "is it there?" and "which API version?".
        let docker =
            match tokio::time::timeout(Duration::from_secs(5), docker.negotiate_version()).await {
                Ok(Ok(d)) => d,
                Ok(Err(e)) => return Err(anyhow!(e).context(hint())),
                Err(_) => return Err(anyhow!("no answer within 5 s").context(hint())),
            };
        Ok(Engine { docker, host })
    }

    /// Does the engine answer (within 3 s)?
    pub async fn ping(&self) -> Result<()> {
        match tokio::time::timeout(Duration::from_secs(3), self.docker.ping()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(anyhow!(e)),
            Err(_) => bail!("the engine at {} did not answer within 3 s", self.host),
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// The image with this reference, if it exists locally.
    pub async fn image(&self, reference: &str) -> Result<Option<ImageInfo>> {
        match self.docker.inspect_image(reference).await {
            Ok(img) => Ok(Some(ImageInfo {
                id: img.id.unwrap_or_default(),
                tags: img.repo_tags.unwrap_or_default(),
                labels: img.config.and_then(|c| c.labels).unwrap_or_default(),
                size: img.size.unwrap_or_default(),
                created: 0,
            })),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(anyhow!(e)).with_context(|| format!("cannot inspect image {reference}")),
        }
    }

    /// Make sure `base` is local: pull it if not. A clear error (with the offline fix) if neither.
    pub async fn ensure_base_image(&self, base: &str) -> Result<()> {
        if self.image(base).await?.is_some() {
            return Ok(());
        }
        let opts = CreateImageOptionsBuilder::new().from_image(base).build();
        let pull = async {
            let mut stream = self.docker.create_image(Some(opts), None, None);
            while let Some(item) = stream.next().await {
                let info = item?;
                if let Some(e) = info.error_detail.and_then(|d| d.message) {
                    return Err(anyhow!(e));
                }
            }
            Ok::<(), anyhow::Error>(())
        };
        let result = match tokio::time::timeout(Duration::from_secs(120), pull).await {
            Ok(r) => r,
            Err(_) => Err(anyhow!("pull timed out after 120 s")),
        };
        result.with_context(|| {
            format!(
                "base image {base} is not available locally and could not be pulled. \
                 Fix: pull it on a connected machine (`docker pull {base}`), or build the offline base \
                 with scripts/offline-base.sh and set base_image = \"sitebuild/nginx:offline\" \
                 (or SITEBUILD_BASE_IMAGE=sitebuild/nginx:offline)"
            )
        })
    }

    /// Build an image from a tar stream; tags it `tag`; returns the image id.
    /// Build errors (e.g. `nginx -t` failing in the image) come back with the builder's output.
    /// `tag` names the build in messages only: the result is an untagged image.
    pub async fn build(
        &self,
        context: impl Stream<Item = std::result::Result<Bytes, std::io::Error>> + Send + 'static,
        tag: &str,
        mut on_event: impl FnMut(BuildEvent),
    ) -> Result<String> {
        let opts = BuildImageOptionsBuilder::new()
            .dockerfile("Dockerfile")
            .rm(true)
            .forcerm(true)
            .build();
        let mut stream =
            self.docker
                .build_image(opts, None, Some(bollard::body_try_stream(context)));
        let mut image_id = None;
        let mut tail: Vec<String> = Vec::new();
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| anyhow!(e)).with_context(|| {
                format!("the engine failed while building {tag}:\n{}", tail.join(""))
            })?;
            if let Some(line) = info.stream {
                tail.push(line.clone());
                if tail.len() > 30 {
                    tail.remove(0);
                }
                on_event(BuildEvent::Log(line));
            }
            if let Some(detail) = info.error_detail {
                let msg = detail
                    .message
                    .unwrap_or_else(|| "unknown build error".into());
                bail!(
                    "building {tag} failed: {}\n{}",
                    msg.trim_end(),
                    tail.join("").trim_end()
                );
            }
            if let Some(id) = info.aux.and_then(|aux| aux.id) {
                image_id = Some(id);
            }
        }
        match image_id {
            Some(id) => Ok(id),
            None => self.image(tag).await?.map(|i| i.id).with_context(|| {
                format!(
                    "the build of {tag} ended without an image:\n{}",
                    tail.join("")
                )
            }),
        }
    }

    /// Run a created container to its end; returns the exit code and its output.
    pub async fn run_to_end(&self, id: &str, timeout: Duration) -> Result<(i64, String)> {
        self.start(id).await?;
        let wait = async {
            let mut stream = self.docker.wait_container(id, None);
            // A non-zero exit arrives as an error item; the exit code is read below.
            while stream.next().await.is_some() {}
        };
        if tokio::time::timeout(timeout, wait).await.is_err() {
            bail!(
                "container {id} did not finish within {} s",
                timeout.as_secs()
            );
        }
        let info = self.container(id).await?;
        Ok((info.exit_code.unwrap_or(-1), self.logs_tail(id, 50).await))
    }

    /// Commit a container's filesystem with `config` as a new image `repo:tag`; returns its id.
    pub async fn commit(
        &self,
        id: &str,
        repo: &str,
        tag: &str,
        config: &ImageConfig,
    ) -> Result<String> {
        let opts = CommitContainerOptionsBuilder::new()
            .container(id)
            .repo(repo)
            .tag(tag)
            .pause(false)
            .build();
        let body = ContainerConfig {
            user: Some(config.user.clone()),
            entrypoint: Some(config.entrypoint.clone()),
            cmd: Some(config.cmd.clone()),
            exposed_ports: Some(vec![format!("{}/tcp", config.exposed_port)]),
            stop_signal: Some(config.stop_signal.clone()),
            labels: Some(config.labels.clone()),
            ..Default::default()
        };
        let resp = self
            .docker
            .commit_container(opts, body)
            .await
            .with_context(|| format!("cannot commit container {id} as {repo}:{tag}"))?;
        Ok(resp.id)
    }

    /// Add `repo:tag` to an image.
    pub async fn tag(&self, image: &str, repo: &str, tag: &str) -> Result<()> {
        let opts = TagImageOptionsBuilder::new().repo(repo).tag(tag).build();
        self.docker
            .tag_image(image, Some(opts))
            .await
            .with_context(|| format!("cannot tag {image} as {repo}:{tag}"))
    }

    /// Push `repo:tag` (already tagged locally) with optional credentials. Registry errors come
    /// back with the registry's words, e.g. "unauthorized: authentication required".
    pub async fn push(
        &self,
        repo: &str,
        tag: &str,
        creds: Option<&crate::registry::Credentials>,
    ) -> Result<()> {
        let opts = PushImageOptionsBuilder::new().tag(tag).build();
        let mut stream = self
            .docker
            .push_image(repo, Some(opts), creds.map(docker_credentials));
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| anyhow!(e))?;
            if let Some(detail) = info.error_detail {
                bail!("{}", detail.message.unwrap_or_else(|| "push failed".into()));
            }
        }
        Ok(())
    }

    /// Images carrying all these labels.
    pub async fn images_with_labels(&self, wanted: &[(&str, &str)]) -> Result<Vec<ImageInfo>> {
        let filters: HashMap<&str, Vec<String>> = HashMap::from([(
            "label",
            wanted.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        )]);
        let opts = ListImagesOptionsBuilder::new().filters(&filters).build();
        let list = self
            .docker
            .list_images(Some(opts))
            .await
            .context("cannot list images")?;
        Ok(list
            .into_iter()
            .map(|i| ImageInfo {
                id: i.id,
                tags: i.repo_tags,
                labels: i.labels,
                size: i.size,
                created: i.created,
            })
            .collect())
    }

    /// Remove an image; with `force` even when several tags or a stopped container use it.
    pub async fn remove_image(&self, image: &str, force: bool) -> Result<()> {
        let opts = RemoveImageOptionsBuilder::new().force(force).build();
        match self.docker.remove_image(image, Some(opts), None).await {
            Ok(_) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            Err(e) => {
                Err(classify(e, image)).with_context(|| format!("cannot remove image {image}"))
            }
        }
    }

    /// Containers (running or not) carrying all these labels.
    pub async fn containers_with_labels(
        &self,
        wanted: &[(&str, &str)],
    ) -> Result<Vec<ContainerInfo>> {
        let filters: HashMap<&str, Vec<String>> = HashMap::from([(
            "label",
            wanted.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        )]);
        let opts = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .context("cannot list containers")?;
        // From the list alone (one request): no start time, exit code or restart count; call
        // [`Engine::container`] for those.
        let mut out: Vec<ContainerInfo> = list
            .into_iter()
            .filter_map(|c| {
                Some(ContainerInfo {
                    id: c.id?,
                    name: c
                        .names
                        .and_then(|n| n.into_iter().next())
                        .unwrap_or_default()
                        .trim_start_matches('/')
                        .to_string(),
                    image: c.image.unwrap_or_default(),
                    labels: c.labels.unwrap_or_default(),
                    state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                    started_at: None,
                    exit_code: None,
                    restart_count: 0,
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub async fn container(&self, id: &str) -> Result<ContainerInfo> {
        let c = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(|e| classify(e, id))
            .with_context(|| format!("cannot inspect container {id}"))?;
        let state = c.state.unwrap_or_default();
        Ok(ContainerInfo {
            id: c.id.unwrap_or_default(),
            name: c
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            image: c
                .config
                .as_ref()
                .and_then(|cfg| cfg.image.clone())
                .unwrap_or_default(),
            labels: c.config.and_then(|cfg| cfg.labels).unwrap_or_default(),
            state: state.status.map(|s| s.to_string()).unwrap_or_default(),
            started_at: state.started_at,
            exit_code: state.exit_code,
            restart_count: c.restart_count.unwrap_or(0),
        })
    }

    /// Create (not start) a hardened container.
    pub async fn create(&self, spec: &ContainerSpec) -> Result<String> {
        let port_key = spec.publish.as_ref().map(|(_, _, c)| format!("{c}/tcp"));
        let host_config = HostConfig {
            port_bindings: spec.publish.as_ref().map(|(ip, host_port, c)| {
                HashMap::from([(
                    format!("{c}/tcp"),
                    Some(vec![PortBinding {
                        host_ip: Some(ip.clone()),
                        host_port: Some(host_port.to_string()),
                    }]),
                )])
            }),
            network_mode: if spec.network_disabled {
                Some("none".to_string())
            } else {
                spec.network.clone()
            },
            binds: (!spec.binds.is_empty()).then(|| spec.binds.clone()),
            mounts: spec.scratch_volume.as_ref().map(|target| {
                vec![Mount {
                    target: Some(target.clone()),
                    typ: Some(MountType::VOLUME),
                    ..Default::default()
                }]
            }),
            readonly_rootfs: Some(true),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges:true".into()]),
            tmpfs: Some(HashMap::from([(
                "/tmp".to_string(),
                "rw,noexec,nosuid,size=64m".to_string(),
            )])),
            memory: Some(spec.memory_bytes),
            pids_limit: Some(spec.pids_limit),
            restart_policy: Some(RestartPolicy {
                name: Some(if spec.restart {
                    RestartPolicyNameEnum::UNLESS_STOPPED
                } else {
                    RestartPolicyNameEnum::NO
                }),
                maximum_retry_count: None,
            }),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            user: Some(spec.user.clone()),
            labels: Some(spec.labels.clone()),
            exposed_ports: port_key.map(|k| vec![k]),
            entrypoint: spec.entrypoint.clone(),
            cmd: spec.cmd.clone(),
            network_disabled: spec.network_disabled.then_some(true),
            host_config: Some(host_config),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::new()
            .name(&spec.name)
            .build();
        let resp = self
            .docker
            .create_container(Some(opts), body)
            .await
            .map_err(|e| classify(e, &spec.name))
            .with_context(|| {
                format!("cannot create container {} from {}", spec.name, spec.image)
            })?;
        Ok(resp.id)
    }

    pub async fn start(&self, id: &str) -> Result<()> {
        self.docker
            .start_container(id, None)
            .await
            .map_err(|e| classify(e, id))
            .with_context(|| format!("cannot start container {id}"))
    }

    /// Stop gracefully (SIGQUIT lets nginx finish requests), then SIGKILL after `grace`.
    pub async fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        let opts = StopContainerOptionsBuilder::new()
            .t(grace.as_secs() as i32)
            .build();
        match self.docker.stop_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if matches!(status_of(&e), Some(304) | Some(404)) => Ok(()),
            Err(e) => Err(anyhow!(e)).with_context(|| format!("cannot stop container {id}")),
        }
    }

    /// Send `signal` (e.g. "HUP") to the container's main process: one engine request, no exec.
    pub async fn signal(&self, id: &str, signal: &str) -> Result<()> {
        let opts = KillContainerOptionsBuilder::new().signal(signal).build();
        self.docker
            .kill_container(id, Some(opts))
            .await
            .map_err(|e| classify(e, id))
            .with_context(|| format!("cannot send SIG{signal} to container {id}"))
    }

    /// Remove (force: kill first). Missing containers are fine.
    pub async fn remove(&self, id: &str) -> Result<()> {
        let opts = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            // 409: removal already in progress.
            Err(e) if status_of(&e) == Some(409) => Ok(()),
            Err(e) => Err(anyhow!(e)).with_context(|| format!("cannot remove container {id}")),
        }
    }

    /// Create the network if it does not exist.
    pub async fn ensure_network(&self, name: &str, labels: &HashMap<String, String>) -> Result<()> {
        if self.docker.inspect_network(name, None).await.is_ok() {
            return Ok(());
        }
        let req = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            labels: Some(labels.clone()),
            ..Default::default()
        };
        match self.docker.create_network(req).await {
            Ok(_) => Ok(()),
            Err(e) if status_of(&e) == Some(409) => Ok(()),
            Err(e) => Err(anyhow!(e)).with_context(|| format!("cannot create network {name}")),
        }
    }

    /// The gateway address of a network (the host's address on it), if it has one.
    pub async fn network_gateway(&self, name: &str) -> Result<Option<std::net::IpAddr>> {
        let net = self
            .docker
            .inspect_network(name, None)
            .await
            .with_context(|| format!("cannot inspect network {name}"))?;
        Ok(net
            .ipam
            .and_then(|i| i.config)
            .unwrap_or_default()
            .iter()
            .filter_map(|c| c.gateway.as_ref()?.parse().ok())
            .next())
    }

    pub async fn remove_network(&self, name: &str) -> Result<bool> {
        match self.docker.remove_network(name).await {
            Ok(()) => Ok(true),
            Err(e) if status_of(&e) == Some(404) => Ok(false),
            Err(e) => Err(anyhow!(e)).with_context(|| format!("cannot remove network {name}")),
        }
    }

    /// Create the named volume if it does not exist.
    pub async fn ensure_volume(&self, name: &str, labels: &HashMap<String, String>) -> Result<()> {
        let req = VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(labels.clone()),
            ..Default::default()
        };
        self.docker
            .create_volume(req)
            .await
            .map(|_| ())
            .with_context(|| format!("cannot create volume {name}"))
    }

    pub async fn remove_volume(&self, name: &str) -> Result<bool> {
        let opts = RemoveVolumeOptionsBuilder::new().force(true).build();
        match self.docker.remove_volume(name, Some(opts)).await {
            Ok(()) => Ok(true),
            Err(e) if status_of(&e) == Some(404) => Ok(false),
            Err(e) => Err(anyhow!(e)).with_context(|| format!("cannot remove volume {name}")),
        }
    }

    /// Write small files into `dir` of a container (which may be a volume of a read-only
    /// container), owned by root, mode 0644.
    pub async fn upload_files(&self, id: &str, dir: &str, files: &[(&str, &[u8])]) -> Result<()> {
        let mut tar = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            h.set_mtime(crate::context::FIXED_MTIME);
            tar.append_data(&mut h, name, *data)?;
        }
        let body = tar.into_inner()?;
        let opts = UploadToContainerOptionsBuilder::new().path(dir).build();
        self.docker
            .upload_to_container(id, Some(opts), bollard::body_full(body.into()))
            .await
            .with_context(|| format!("cannot write files into {id}:{dir}"))
    }

    /// Extract a tar archive into `dir` of a container (e.g. its writable site volume).
    pub async fn upload_tar(&self, id: &str, dir: &str, tar: Vec<u8>) -> Result<()> {
        let opts = UploadToContainerOptionsBuilder::new().path(dir).build();
        self.docker
            .upload_to_container(id, Some(opts), bollard::body_full(tar.into()))
            .await
            .with_context(|| format!("cannot copy files into {id}:{dir}"))
    }

    /// Read one small file from a container; None when it does not exist.
    pub async fn download_file(&self, id: &str, path: &str) -> Result<Option<Vec<u8>>> {
        let opts = DownloadFromContainerOptionsBuilder::new()
            .path(path)
            .build();
        let mut stream = self.docker.download_from_container(id, Some(opts));
        let mut raw = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => raw.extend_from_slice(&bytes),
                Err(e) if status_of(&e) == Some(404) => return Ok(None),
                Err(e) => {
                    return Err(anyhow!(e)).with_context(|| format!("cannot read {id}:{path}"));
                }
            }
        }
        let mut archive = tar::Archive::new(raw.as_slice());
        for entry in archive.entries()? {
            let mut entry = entry?;
            if entry.header().entry_type().is_file() {
                let mut out = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut out)?;
                return Ok(Some(out));
            }
        }
        Ok(None)
    }

    /// Run a command in a running container; returns its exit code and output.
    pub async fn exec(&self, id: &str, cmd: &[String]) -> Result<(i64, String)> {
        let config = ExecConfig {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(cmd.to_vec()),
            ..Default::default()
        };
        let exec = self
            .docker
            .create_exec(id, config)
            .await
            .map_err(|e| classify(e, id))
            .with_context(|| format!("cannot run {cmd:?} in {id}"))?;
        let mut output = String::new();
        if let StartExecResults::Attached {
            output: mut out, ..
        } = self
            .docker
            .start_exec(&exec.id, None::<StartExecOptions>)
            .await
            .with_context(|| format!("cannot start {cmd:?} in {id}"))?
        {
            while let Some(Ok(chunk)) = out.next().await {
                output.push_str(&chunk.to_string());
            }
        }
        let inspect = self.docker.inspect_exec(&exec.id).await?;
        Ok((inspect.exit_code.unwrap_or(-1), output))
    }

    /// The container's processes as (pid, command line with its title), via `ps` on the host.
    pub async fn processes(&self, id: &str) -> Result<Vec<(String, String)>> {
        let opts = TopOptionsBuilder::new().ps_args("-o pid,args").build();
        let top = self
            .docker
            .top_processes(id, Some(opts))
            .await
            .with_context(|| format!("cannot list the processes of {id}"))?;
        Ok(top
            .processes
            .unwrap_or_default()
            .into_iter()
            .filter_map(|row| {
                let mut it = row.into_iter();
                Some((it.next()?, it.collect::<Vec<_>>().join(" ")))
            })
            .collect())
    }

    /// The last `lines` lines of a container's output.
    pub async fn logs_tail(&self, id: &str, lines: usize) -> String {
        let opts = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        let mut stream = self.docker.logs(id, Some(opts));
        let mut out = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            out.push_str(&chunk.to_string());
        }
        out
    }
}
