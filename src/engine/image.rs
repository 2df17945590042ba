//! Images: build from a context, commit a checked container, tag, push, list, remove.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bollard::models::ContainerConfig;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CommitContainerOptionsBuilder, CreateImageOptionsBuilder,
    ListImagesOptionsBuilder, PushImageOptionsBuilder, RemoveImageOptionsBuilder,
    TagImageOptionsBuilder,
};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::{Credentials, Engine, classify, docker_credentials, status_of};

/// What we need to know about an image.
#[derive(Debug, Clone)]
pub(crate) struct ImageInfo {
    pub(crate) id: String,
    pub(crate) tags: Vec<String>,
    pub(crate) labels: HashMap<String, String>,
    /// Seconds since the epoch (0 when unknown).
    pub(crate) created: i64,
}

/// Runtime settings committed into the final image.
#[derive(Debug, Clone)]
pub(crate) struct ImageConfig {
    pub(crate) user: String,
    pub(crate) entrypoint: Vec<String>,
    pub(crate) cmd: Vec<String>,
    pub(crate) exposed_port: u16,
    pub(crate) stop_signal: String,
    pub(crate) labels: HashMap<String, String>,
}

/// One event from a build, for progress display.
#[derive(Debug, Clone)]
pub(crate) enum BuildEvent {
    /// A line of builder output ("Step 3/8 : COPY …").
    Log(String),
}

impl Engine {
    /// The image with this reference, if it exists locally.
    pub(crate) async fn image(&self, reference: &str) -> Result<Option<ImageInfo>> {
        match self.docker.inspect_image(reference).await {
            Ok(img) => Ok(Some(ImageInfo {
                id: img.id.unwrap_or_default(),
                tags: img.repo_tags.unwrap_or_default(),
                labels: img.config.and_then(|c| c.labels).unwrap_or_default(),
                created: 0,
            })),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(anyhow!(e)).with_context(|| format!("cannot inspect image {reference}")),
        }
    }

    /// Make sure `base` is local: pull it if not. A clear error (with the offline fix) if neither.
    pub(crate) async fn ensure_base_image(&self, base: &str) -> Result<()> {
        if self.image(base).await?.is_some() {
            return Ok(());
        }
        self.pull(base, None).await.with_context(|| {
            format!(
                "base image {base} is not available locally and could not be pulled. \
                 Fix: pull it on a connected machine (`docker pull {base}`), or build the offline base \
                 with scripts/offline-base.sh and set base_image = \"sitebuild/nginx:offline\" \
                 (or SITEBUILD_BASE_IMAGE=sitebuild/nginx:offline)"
            )
        })
    }

    /// Pull `reference` (`repo:tag` or `repo@sha256:…`) onto this engine, with optional registry
    /// credentials; at most two minutes. Registry errors come back with the registry's words.
    pub(crate) async fn pull(&self, reference: &str, creds: Option<&Credentials>) -> Result<()> {
        let opts = CreateImageOptionsBuilder::new()
            .from_image(reference)
            .build();
        let pull = async {
            let mut stream =
                self.docker
                    .create_image(Some(opts), None, creds.map(docker_credentials));
            while let Some(item) = stream.next().await {
                let info = item?;
                if let Some(e) = info.error_detail.and_then(|d| d.message) {
                    return Err(anyhow!(e));
                }
            }
            Ok::<(), anyhow::Error>(())
        };
        match tokio::time::timeout(Duration::from_mins(2), pull).await {
            Ok(r) => r,
            Err(_) => Err(anyhow!("pull of {reference} timed out after 120 s")),
        }
    }

    /// Build an image from a tar stream; tags it `tag`; returns the image id.
    /// Build errors (e.g. `nginx -t` failing in the image) come back with the builder's output.
    /// `tag` names the build in messages only: the result is an untagged image.
    pub(crate) async fn build(
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

    /// Commit a container's filesystem with `config` as a new image `repo:tag`; returns its id.
    pub(crate) async fn commit(
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
    pub(crate) async fn tag(&self, image: &str, repo: &str, tag: &str) -> Result<()> {
        let opts = TagImageOptionsBuilder::new().repo(repo).tag(tag).build();
        self.docker
            .tag_image(image, Some(opts))
            .await
            .with_context(|| format!("cannot tag {image} as {repo}:{tag}"))
    }

    /// Push `repo:tag` (already tagged locally) with optional credentials. Registry errors come
    /// back with the registry's words, e.g. "unauthorized: authentication required".
    pub(crate) async fn push(
        &self,
        repo: &str,
        tag: &str,
        creds: Option<&Credentials>,
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
    pub(crate) async fn images_with_labels(
        &self,
        wanted: &[(&str, &str)],
    ) -> Result<Vec<ImageInfo>> {
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
                created: i.created,
            })
            .collect())
    }

    /// Remove an image; with `force` even when several tags or a stopped container use it.
    pub(crate) async fn remove_image(&self, image: &str, force: bool) -> Result<()> {
        let opts = RemoveImageOptionsBuilder::new().force(force).build();
        match self.docker.remove_image(image, Some(opts), None).await {
            Ok(_) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            Err(e) => {
                Err(classify(e, image)).with_context(|| format!("cannot remove image {image}"))
            }
        }
    }
}
