//! `sitebuild renew`: renew the project's ACME certificate when it has less than a third of its
//! lifetime left (or with `--force`), on the running edge; the old one serves until the new one
//! is installed, and keeps serving when renewal fails (exit code 1). `sitebuild renewer` (hidden)
//! is the loop of the renewer container (`deploy/renew_daemon.rs`).

use std::path::Path;

use anyhow::Result;

use super::load;
use crate::cli::{BuildArgs, UpArgs};
use crate::deploy::certs;
use crate::engine::Engine;
use crate::ui::Ui;

pub(super) async fn run(dir: &Path, force: bool, ui: &Ui) -> Result<()> {
    let config = load(dir, &BuildArgs::default(), Some(&UpArgs::default()))?;
    let engine = Engine::connect().await?;
    let line = certs::renew(&engine, &config, force, ui).await?;
    ui.result(line);
    Ok(())
}

/// `sitebuild renewer`: the renewer container's loop over the edge volume at `dir`.
pub(super) async fn daemon(dir: &Path, interval: std::time::Duration, force: bool) -> Result<()> {
    crate::deploy::renew_daemon::run(dir, interval, force).await
}
