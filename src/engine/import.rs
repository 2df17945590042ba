//! Images made from a root filesystem sitebuild assembles itself (the renewer's FROM-scratch
//! image: `/images/create?fromSrc=-`), what the engine runs on, and directories owned by the
//! containers' user in a volume (the renewer's writable place).

use anyhow::{Context, Result, anyhow};
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures_util::StreamExt;

use super::Engine;
use super::container::Entry;
use crate::layout;

impl Engine {
    /// The engine's (OS type, architecture) as it reports them (`linux`, `x86_64`).
    pub(crate) async fn platform(&self) -> Result<(String, String)> {
        self.bounded("ask the engine for its platform".to_string(), async {
            let info = self
                .docker
                .info()
                .await
                .context("cannot read the engine's system info")?;
            Ok((
                info.os_type.unwrap_or_default(),
                info.architecture.unwrap_or_default(),
            ))
        })
        .await
    }

    /// Import `rootfs` (an uncompressed tar of a whole root filesystem) as `repo:tag`, with
    /// `labels` on the image (so an image that lost its tag can still be found by them).
    pub(crate) async fn import_rootfs(
        &self,
        rootfs: Vec<u8>,
        repo: &str,
        tag: &str,
        labels: &[(&str, &str)],
    ) -> Result<()> {
        let what = format!("import the image {repo}:{tag}");
        // A few hundred MB through the engine: more than a quick request.
        self.bounded_for(std::time::Duration::from_mins(5), what.clone(), async {
            let changes = labels
                .iter()
                .map(|(k, v)| format!("LABEL {k}={v}"))
                .collect();
            let opts = CreateImageOptionsBuilder::new()
                .from_src("-")
                .repo(repo)
                .tag(tag)
                .changes(changes)
                .build();
            let mut stream =
                self.docker
                    .create_image(Some(opts), Some(bollard::body_full(rootfs.into())), None);
            while let Some(event) = stream.next().await {
                let event = event
                    .map_err(|e| anyhow!(e))
                    .with_context(|| format!("cannot {what}"))?;
                if let Some(err) = event.error_detail.and_then(|d| d.message) {
                    return Err(anyhow!(err)).with_context(|| format!("cannot {what}"));
                }
            }
            Ok(())
        })
        .await
    }

    /// Write `files` (name, content, mode) into `dir` in one archive, owned by the containers'
    /// user and stamped with the current time: nginx keeps a certificate it loaded before across
    /// a reload when the file's mtime and inode look unchanged (`ssl_object_cache_inheritable`),
    /// so a replaced certificate must not carry a fixed mtime.
    pub(crate) async fn upload_fresh_files(
        &self,
        id: &str,
        dir: &str,
        files: &[(&str, &[u8], u32)],
    ) -> Result<()> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let entries: Vec<Entry> = files
            .iter()
            .map(|(name, data, mode)| Entry {
                name: (*name).to_string(),
                data,
                mode: *mode,
                owner: (layout::RUN_AS_GID, layout::RUN_AS_GID),
                mtime: now,
            })
            .collect();
        self.upload_entries(id, dir, &entries, "write files into")
            .await
    }

    /// Make `dir/name` in a container a directory owned by the containers' user (uid/gid 101)
    /// with `mode`; an existing one gets that owner and mode (its files stay).
    pub(crate) async fn owned_dir(&self, id: &str, dir: &str, name: &str, mode: u32) -> Result<()> {
        let entry = Entry {
            name: format!("{}/", name.trim_end_matches('/')),
            data: &[],
            mode,
            owner: (layout::RUN_AS_GID, layout::RUN_AS_GID),
            mtime: layout::FIXED_MTIME,
        };
        let what = format!("create the directory {name} in");
        self.upload_entries(id, dir, &[entry], &what).await
    }
}
