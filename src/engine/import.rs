//! Images made from a root filesystem sitebuild assembles itself (the renewer's FROM-scratch
//! image: `/images/create?fromSrc=-`), what the engine runs on, and directories owned by the
//! containers' user in a volume (the renewer's writable place).

use anyhow::{Context, Result, anyhow};
use bollard::query_parameters::{CreateImageOptionsBuilder, UploadToContainerOptionsBuilder};
use futures_util::StreamExt;

use super::Engine;
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

    /// Import `rootfs` (an uncompressed tar of a whole root filesystem) as `repo:tag`.
    pub(crate) async fn import_rootfs(&self, rootfs: Vec<u8>, repo: &str, tag: &str) -> Result<()> {
        let what = format!("import the image {repo}:{tag}");
        // A few hundred MB through the engine: more than a quick request.
        self.bounded_for(std::time::Duration::from_mins(5), what.clone(), async {
            let opts = CreateImageOptionsBuilder::new()
                .from_src("-")
                .repo(repo)
                .tag(tag)
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
        self.bounded(format!("write files into {id}:{dir}"), async {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let mut tar = tar::Builder::new(Vec::new());
            for (name, data, mode) in files {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_uid(layout::RUN_AS_GID);
                h.set_gid(layout::RUN_AS_GID);
                h.set_size(data.len() as u64);
                h.set_mtime(now);
                tar.append_data(&mut h, name, *data)?;
            }
            let body = tar.into_inner()?;
            let opts = UploadToContainerOptionsBuilder::new().path(dir).build();
            self.docker
                .upload_to_container(id, Some(opts), bollard::body_full(body.into()))
                .await
                .with_context(|| format!("cannot write files into {id}:{dir}"))
        })
        .await
    }

    /// Make `dir/name` in a container a directory owned by the containers' user (uid/gid 101)
    /// with `mode`; an existing one gets that owner and mode (its files stay).
    pub(crate) async fn owned_dir(&self, id: &str, dir: &str, name: &str, mode: u32) -> Result<()> {
        self.bounded(
            format!("make {id}:{dir}/{name} writable for its user"),
            async {
                let mut tar = tar::Builder::new(Vec::new());
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(mode);
                h.set_uid(layout::RUN_AS_GID);
                h.set_gid(layout::RUN_AS_GID);
                h.set_size(0);
                h.set_mtime(layout::FIXED_MTIME);
                tar.append_data(
                    &mut h,
                    format!("{}/", name.trim_end_matches('/')),
                    std::io::empty(),
                )?;
                let body = tar.into_inner()?;
                let opts = UploadToContainerOptionsBuilder::new().path(dir).build();
                self.docker
                    .upload_to_container(id, Some(opts), bollard::body_full(body.into()))
                    .await
                    .with_context(|| format!("cannot create the directory {dir}/{name} in {id}"))
            },
        )
        .await
    }
}
