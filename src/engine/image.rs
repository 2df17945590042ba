//! Images: load an image archive, inspect, tag, push, list, remove.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bollard::query_parameters::{
    CreateImageOptionsBuilder, ImportImageOptionsBuilder, ListImagesOptionsBuilder,
    PushImageOptionsBuilder, RemoveImageOptionsBuilder, TagImageOptionsBuilder,
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

/// What an image archive built on top of an image needs from it.
#[derive(Debug, Clone)]
pub(crate) struct ImageDetails {
    pub(crate) id: String,
    /// `RootFS.Layers`: the diff IDs, bottom first.
    pub(crate) layers: Vec<String>,
    pub(crate) os: String,
    pub(crate) architecture: String,
    pub(crate) variant: Option<String>,
    /// The image's runtime config as the engine's JSON (`Env`, `WorkingDir`, `Labels`, …).
    pub(crate) config: serde_json::Value,
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

    /// What an image archive on top of `reference` needs (its layers, platform and config), if
    /// the image exists locally.
    pub(crate) async fn image_details(&self, reference: &str) -> Result<Option<ImageDetails>> {
        match self.docker.inspect_image(reference).await {
            Ok(img) => Ok(Some(ImageDetails {
                id: img.id.unwrap_or_default(),
                layers: img.root_fs.and_then(|r| r.layers).unwrap_or_default(),
                os: img.os.unwrap_or_else(|| "linux".into()),
                architecture: img.architecture.unwrap_or_else(|| "amd64".into()),
                variant: img.variant.filter(|v| !v.is_empty()),
                config: serde_json::to_value(img.config.unwrap_or_default())
                    .with_context(|| format!("cannot read the config of image {reference}"))?,
            })),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(anyhow!(e)).with_context(|| format!("cannot inspect image {reference}")),
        }
    }

    /// `POST /images/load` of an image archive (`docker save` format) streamed from `archive`.
    /// `what` names the image in messages. Layers whose chain the engine already has are not
    /// read from the archive.
    pub(crate) async fn load(
        &self,
        archive: impl Stream<Item = std::result::Result<Bytes, std::io::Error>> + Send + 'static,
        what: &str,
    ) -> Result<()> {
        let opts = ImportImageOptionsBuilder::new().quiet(true).build();
        let mut stream = self
            .docker
            .import_image(opts, bollard::body_try_stream(archive), None);
        while let Some(item) = stream.next().await {
            let info = item
                .map_err(|e| anyhow!(e))
                .with_context(|| format!("the engine could not load the image {what}"))?;
            if let Some(detail) = info.error_detail {
                bail!(
                    "the engine could not load the image {what}: {}",
                    detail
                        .message
                        .unwrap_or_else(|| "unknown error".into())
                        .trim_end()
                );
            }
        }
        Ok(())
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
        let values = wanted.iter().map(|(k, v)| format!("{k}={v}")).collect();
        self.images_where("label", values).await
    }

    /// Images of the repository `repo` (any tag).
    pub(crate) async fn images_of_repo(&self, repo: &str) -> Result<Vec<ImageInfo>> {
        self.images_where("reference", vec![repo.to_string()]).await
    }

    async fn images_where(&self, filter: &str, values: Vec<String>) -> Result<Vec<ImageInfo>> {
        let filters: HashMap<&str, Vec<String>> = HashMap::from([(filter, values)]);
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
