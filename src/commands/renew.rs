//! `sitebuild renew`: renew the project's ACME certificate when it has less than a third of its
//! lifetime left (or with `--force`), on the running edge; the old one serves until the new one
//! is installed, and keeps serving when renewal fails (exit code 1).

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
