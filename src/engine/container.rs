//! Containers: the spec sitebuild creates them from, the one hardening policy, and what it
//! reads back (state, logs, processes, files).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, ExecConfig, HostConfig, Mount, MountType, PortBinding, RestartPolicy,
    RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, DownloadFromContainerOptionsBuilder,
    ListContainersOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    StopContainerOptionsBuilder, TopOptionsBuilder, UploadToContainerOptionsBuilder,
};
use futures_util::StreamExt;

use super::{Engine, classify, status_of};
use crate::layout;

/// What we need to know about a container.
#[derive(Debug, Clone)]
pub(crate) struct ContainerInfo {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) labels: HashMap<String, String>,
    /// "running", "exited", "created", …
    pub(crate) state: String,
    pub(crate) started_at: Option<String>,
    pub(crate) exit_code: Option<i64>,
    /// How often the engine restarted it (a crash loop shows here).
    pub(crate) restart_count: i64,
}

impl ContainerInfo {
    pub(crate) fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
    pub(crate) fn is_running(&self) -> bool {
        self.state == "running"
    }
}

/// A host port published to a container port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Publish {
    pub(crate) host_ip: IpAddr,
    pub(crate) host_port: u16,
    pub(crate) container_port: u16,
}

/// What to create. [`ContainerSpec::new`] gives the hardened defaults (see
/// [`hardened_host_config`]); the setters change only what differs per role.
///
/// ```ignore
/// let spec = ContainerSpec::new("blog-edge", "nginx:1.30", labels)
///     .publish(Publish { host_ip, host_port: 8080, container_port: layout::CONTAINER_PORT })
///     .network("blog-net")
///     .restart();
/// ```
#[derive(Debug, Clone)]
pub(crate) struct ContainerSpec {
    pub(crate) name: String,
    pub(crate) image: String,
    pub(crate) labels: HashMap<String, String>,
    pub(crate) publish: Vec<Publish>,
    pub(crate) memory_bytes: i64,
    pub(crate) pids_limit: i64,
    /// Size of the `/tmp` tmpfs, the only writable place (its pages count as the container's
    /// memory).
    pub(crate) tmpfs_bytes: i64,
    pub(crate) entrypoint: Vec<String>,
    pub(crate) cmd: Vec<String>,
    /// User-defined network to join (the project's private network); None = no network at all.
    pub(crate) network: Option<String>,
    /// Named volumes: `volume:/path`.
    pub(crate) binds: Vec<String>,
    /// A fresh anonymous volume at this path, filled from the image (`watch`'s writable site
    /// directory); removed with the container.
    pub(crate) scratch_volume: Option<String>,
    /// `unless-stopped` (edge, site); no restart for one-shot checks and the lock.
    pub(crate) restart: bool,
    /// Join another container's PID namespace (`container:<id>`; the renewer signals its
    /// edge's nginx); None = its own.
    pub(crate) pid_of: Option<String>,
}

impl ContainerSpec {
    /// A container that serves the image's site with nginx: no network, no published port,
    /// 256 MiB, 256 pids, no restart.
    pub(crate) fn new(
        name: impl Into<String>,
        image: impl Into<String>,
        labels: HashMap<String, String>,
    ) -> ContainerSpec {
        ContainerSpec {
            name: name.into(),
            image: image.into(),
            labels,
            publish: Vec::new(),
            memory_bytes: 256 * 1024 * 1024,
            pids_limit: 256,
            tmpfs_bytes: layout::SITE_TMPFS_BYTES,
            entrypoint: vec![layout::NGINX.to_string()],
            cmd: layout::serve_args(),
            network: None,
            binds: Vec::new(),
            scratch_volume: None,
            restart: false,
            pid_of: None,
        }
    }

    pub(crate) fn publish(mut self, p: Publish) -> Self {
        self.publish.push(p);
        self
    }

    pub(crate) fn limits(mut self, memory_mib: i64, pids: i64) -> Self {
        self.memory_bytes = memory_mib * 1024 * 1024;
        self.pids_limit = pids;
        self
    }

    /// A `/tmp` of `mib` MiB instead of 64 (the edges: their cache and the responses they fill
    /// into it live there).
    pub(crate) fn tmpfs(mut self, mib: i64) -> Self {
        self.tmpfs_bytes = mib * 1024 * 1024;
        self
    }

    /// nginx with these arguments instead of the serving ones.
    pub(crate) fn nginx_args(mut self, args: Vec<String>) -> Self {
        self.cmd = args;
        self
    }

    pub(crate) fn network(mut self, name: impl Into<String>) -> Self {
        self.network = Some(name.into());
        self
    }

    pub(crate) fn volume(mut self, volume: &str, path: &str) -> Self {
        self.binds.push(format!("{volume}:{path}"));
        self
    }

    pub(crate) fn scratch_volume(mut self, path: Option<&str>) -> Self {
        self.scratch_volume = path.map(str::to_string);
        self
    }

    pub(crate) fn restart(mut self) -> Self {
        self.restart = true;
        self
    }

    /// Run `program args` instead of nginx (the renewer runs sitebuild).
    pub(crate) fn command(mut self, program: &str, args: Vec<String>) -> Self {
        self.entrypoint = vec![program.to_string()];
        self.cmd = args;
        self
    }

    /// Share the PID namespace of the container `id` (same uid: it may signal its processes).
    pub(crate) fn pid_of(mut self, id: &str) -> Self {
        self.pid_of = Some(id.to_string());
        self
    }
}

/// The hardening every container gets, in one place: non-root (the user is set in
/// [`Engine::create`]), read-only root filesystem, no capabilities, no privilege escalation,
/// memory and pid limits, `/tmp` as the only writable place (tmpfs, noexec).
fn hardened_host_config(spec: &ContainerSpec) -> HostConfig {
    HostConfig {
        port_bindings: (!spec.publish.is_empty()).then(|| {
            spec.publish
                .iter()
                .map(|p| {
                    (
                        format!("{}/tcp", p.container_port),
                        Some(vec![PortBinding {
                            host_ip: Some(p.host_ip.to_string()),
                            host_port: Some(p.host_port.to_string()),
                        }]),
                    )
                })
                .collect()
        }),
        network_mode: Some(spec.network.clone().unwrap_or_else(|| "none".to_string())),
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
            layout::TMPFS.to_string(),
            format!("rw,noexec,nosuid,size={}", spec.tmpfs_bytes),
        )])),
        memory: Some(spec.memory_bytes),
        pids_limit: Some(spec.pids_limit),
        pid_mode: spec.pid_of.as_ref().map(|id| format!("container:{id}")),
        restart_policy: Some(RestartPolicy {
            name: Some(if spec.restart {
                RestartPolicyNameEnum::UNLESS_STOPPED
            } else {
                RestartPolicyNameEnum::NO
            }),
            maximum_retry_count: None,
        }),
        ..Default::default()
    }
}

impl Engine {
    /// Containers (running or not) carrying all these labels.
    pub(crate) async fn containers_with_labels(
        &self,
        wanted: &[(&str, &str)],
    ) -> Result<Vec<ContainerInfo>> {
        self.bounded("list containers".to_string(), async {
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
        })
        .await
    }

    pub(crate) async fn container(&self, id: &str) -> Result<ContainerInfo> {
        self.bounded(format!("inspect container {id}"), async {
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
                labels: c.config.and_then(|cfg| cfg.labels).unwrap_or_default(),
                state: state.status.map(|s| s.to_string()).unwrap_or_default(),
                started_at: state.started_at,
                exit_code: state.exit_code,
                restart_count: c.restart_count.unwrap_or(0),
            })
        })
        .await
    }

    /// Create (not start) a hardened container.
    /// Create (not start) a container from `spec`, hardened by [`hardened_host_config`].
    pub(crate) async fn create(&self, spec: &ContainerSpec) -> Result<String> {
        self.bounded(format!("create container {}", spec.name), async {
            let body = ContainerCreateBody {
                image: Some(spec.image.clone()),
                user: Some(layout::RUN_AS.to_string()),
                labels: Some(spec.labels.clone()),
                exposed_ports: (!spec.publish.is_empty()).then(|| {
                    spec.publish
                        .iter()
                        .map(|p| format!("{}/tcp", p.container_port))
                        .collect()
                }),
                // Always explicit: sitebuild never relies on the base image's ENTRYPOINT/CMD (an
                // imported base may have none).
                entrypoint: Some(spec.entrypoint.clone()),
                cmd: Some(spec.cmd.clone()),
                network_disabled: spec.network.is_none().then_some(true),
                // nginx's graceful stop, on every container (the edge runs the base image,
                // which may have none).
                stop_signal: Some(layout::STOP_SIGNAL.to_string()),
                host_config: Some(hardened_host_config(spec)),
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
        })
        .await
    }

    pub(crate) async fn start(&self, id: &str) -> Result<()> {
        self.bounded(format!("start container {id}"), async {
            self.docker
                .start_container(id, None)
                .await
                .map_err(|e| classify(e, id))
                .with_context(|| format!("cannot start container {id}"))
        })
        .await
    }

    /// Stop gracefully (SIGQUIT lets nginx finish requests), then SIGKILL after `grace`.
    pub(crate) async fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        self.bounded_for(grace, format!("stop container {id}"), async {
            let opts = StopContainerOptionsBuilder::new()
                .t(grace.as_secs() as i32)
                .build();
            match self.docker.stop_container(id, Some(opts)).await {
                Ok(()) => Ok(()),
                Err(e) if matches!(status_of(&e), Some(304 | 404)) => Ok(()),
                Err(e) => Err(anyhow!(e)).with_context(|| format!("cannot stop container {id}")),
            }
        })
        .await
    }

    /// Remove (force: kill first). Missing containers are fine.
    pub(crate) async fn remove(&self, id: &str) -> Result<()> {
        self.bounded(format!("remove container {id}"), async {
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
        })
        .await
    }

    /// Run a created container to its end; returns the exit code and its output.
    pub(crate) async fn run_to_end(&self, id: &str, timeout: Duration) -> Result<(i64, String)> {
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

    /// Write small files into `dir` of a container (which may be a volume of a read-only
    /// container), owned by root, mode 0644.
    pub(crate) async fn upload_files(
        &self,
        id: &str,
        dir: &str,
        files: &[(&str, &[u8])],
    ) -> Result<()> {
        self.upload_files_as(id, dir, files, 0o644, 0).await
    }

    /// Write secrets (private keys) into `dir`: owned by root and group `gid` (the container's
    /// user), mode 0640, so only that user can read them.
    pub(crate) async fn upload_secret_files(
        &self,
        id: &str,
        dir: &str,
        files: &[(&str, &[u8])],
        gid: u64,
    ) -> Result<()> {
        self.upload_files_as(id, dir, files, 0o640, gid).await
    }

    async fn upload_files_as(
        &self,
        id: &str,
        dir: &str,
        files: &[(&str, &[u8])],
        mode: u32,
        gid: u64,
    ) -> Result<()> {
        let entries: Vec<Entry> = files
            .iter()
            .map(|(name, data)| Entry {
                name: (*name).to_string(),
                data,
                mode,
                owner: (0, gid),
                mtime: layout::FIXED_MTIME,
            })
            .collect();
        self.upload_entries(id, dir, &entries, "write files into")
            .await
    }

    /// One archive of `entries` extracted into `dir` of a container; `what` names the action in
    /// errors ("write files into" → "cannot write files into <id>:<dir>").
    pub(super) async fn upload_entries(
        &self,
        id: &str,
        dir: &str,
        entries: &[Entry<'_>],
        what: &str,
    ) -> Result<()> {
        self.bounded(format!("{what} {id}:{dir}"), async {
            let mut tar = tar::Builder::new(Vec::new());
            for e in entries {
                let mut h = tar::Header::new_gnu();
                let is_dir = e.name.ends_with('/');
                h.set_entry_type(if is_dir {
                    tar::EntryType::Directory
                } else {
                    tar::EntryType::Regular
                });
                h.set_mode(e.mode);
                h.set_uid(e.owner.0);
                h.set_gid(e.owner.1);
                h.set_size(e.data.len() as u64);
                h.set_mtime(e.mtime);
                tar.append_data(&mut h, &e.name, e.data)?;
            }
            self.upload_archive(id, dir, tar.into_inner()?, what).await
        })
        .await
    }

    /// Extract a tar archive into `dir` of a container (e.g. its writable site volume).
    pub(crate) async fn upload_tar(&self, id: &str, dir: &str, tar: Vec<u8>) -> Result<()> {
        self.bounded(format!("copy files into {id}:{dir}"), async {
            self.upload_archive(id, dir, tar, "copy files into").await
        })
        .await
    }

    /// The one upload of an archive (unbounded: callers bound it with the action they name).
    async fn upload_archive(&self, id: &str, dir: &str, tar: Vec<u8>, what: &str) -> Result<()> {
        let opts = UploadToContainerOptionsBuilder::new().path(dir).build();
        self.docker
            .upload_to_container(id, Some(opts), bollard::body_full(tar.into()))
            .await
            .with_context(|| format!("cannot {what} {id}:{dir}"))
    }

    /// Read one small file from a container; None when it does not exist.
    pub(crate) async fn download_file(&self, id: &str, path: &str) -> Result<Option<Vec<u8>>> {
        self.bounded(format!("read {id}:{path}"), async {
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
        })
        .await
    }

    /// Stream the tar of `path` in a container (created or running) into `out`; false when the
    /// path does not exist. The archive is never held in memory.
    pub(crate) async fn download_tree(
        &self,
        id: &str,
        path: &str,
        out: &mut std::fs::File,
    ) -> Result<bool> {
        use std::io::Write;
        let opts = DownloadFromContainerOptionsBuilder::new()
            .path(path)
            .build();
        let mut stream = self.docker.download_from_container(id, Some(opts));
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => out
                    .write_all(&bytes)
                    .with_context(|| format!("cannot store {id}:{path} in a temp file"))?,
                Err(e) if status_of(&e) == Some(404) => return Ok(false),
                Err(e) => {
                    return Err(anyhow!(e)).with_context(|| format!("cannot read {id}:{path}"));
                }
            }
        }
        out.flush()?;
        Ok(true)
    }

    /// Read the regular files under `dir` of a container: (path relative to `dir`, content);
    /// empty when `dir` does not exist.
    pub(crate) async fn download_dir(&self, id: &str, dir: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let opts = DownloadFromContainerOptionsBuilder::new().path(dir).build();
        let mut stream = self.docker.download_from_container(id, Some(opts));
        let mut raw = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => raw.extend_from_slice(&bytes),
                Err(e) if status_of(&e) == Some(404) => return Ok(Vec::new()),
                Err(e) => {
                    return Err(anyhow!(e)).with_context(|| format!("cannot read {id}:{dir}"));
                }
            }
        }
        let mut files = Vec::new();
        let mut archive = tar::Archive::new(raw.as_slice());
        for entry in archive.entries()? {
            let mut entry = entry?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            // The archive's entries start with the directory's own name.
            let path = entry.path()?.to_string_lossy().into_owned();
            let rel = path.split_once('/').map_or("", |(_, r)| r).to_string();
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut out)?;
            files.push((rel, out));
        }
        Ok(files)
    }

    /// Run a command in a running container; returns its exit code and output.
    pub(crate) async fn exec(&self, id: &str, cmd: &[String]) -> Result<(i64, String)> {
        self.exec_as(id, None, cmd).await
    }

    /// [`Engine::exec`] as root (still without capabilities): to remove files the engine wrote
    /// into a volume (root-owned directories), e.g. a project's directory in the shared edge.
    pub(crate) async fn exec_root(&self, id: &str, cmd: &[String]) -> Result<(i64, String)> {
        self.exec_as(id, Some("0"), cmd).await
    }

    async fn exec_as(&self, id: &str, user: Option<&str>, cmd: &[String]) -> Result<(i64, String)> {
        self.bounded(format!("run {} in {id}", cmd.join(" ")), async {
            let config = ExecConfig {
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                cmd: Some(cmd.to_vec()),
                user: user.map(String::from),
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
        })
        .await
    }

    /// The container's processes as (pid, command line with its title), via `ps` on the host.
    pub(crate) async fn processes(&self, id: &str) -> Result<Vec<(String, String)>> {
        self.bounded(format!("list the processes of {id}"), async {
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
        })
        .await
    }

    /// The last `lines` lines of a container's output.
    pub(crate) async fn logs_tail(&self, id: &str, lines: usize) -> String {
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

/// One entry of an archive sitebuild writes into a container: a file, or a directory when the
/// name ends with `/` (then `data` is empty).
pub(super) struct Entry<'a> {
    pub(super) name: String,
    pub(super) data: &'a [u8],
    pub(super) mode: u32,
    /// (uid, gid)
    pub(super) owner: (u64, u64),
    pub(super) mtime: u64,
}
