//! `sitebuild down`: remove everything sitebuild created for this project.

use std::path::Path;

use anyhow::Result;

use super::load;
use crate::cli::BuildArgs;
use crate::deploy;
use crate::engine::Engine;
use crate::ui::Ui;

pub(super) async fn run(dir: &Path, images: bool, ui: &Ui) -> Result<()> {
    let config = load(dir, &BuildArgs::default(), None)?;
    let engine = Engine::connect().await?;
    let line = deploy::down(&engine, &config, images, ui).await?;
    ui.result(line);
    Ok(())
}
