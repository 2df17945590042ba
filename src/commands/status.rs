//! `sitebuild status`: what runs for this project, on the configured target.

use std::path::Path;

use anyhow::Result;

use super::load;
use crate::cli::{BuildArgs, UpArgs};
use crate::config::Target;
use crate::deploy;
use crate::engine::Engine;
use crate::image;
use crate::ui::Ui;

pub(super) async fn run(dir: &Path, target: Option<Target>, ui: &Ui) -> Result<()> {
    let up = UpArgs {
        target,
        ..Default::default()
    };
    let config = load(dir, &BuildArgs::default(), Some(&up))?;
    let engine = Engine::connect().await?;
    let current = image::prepare_for(&engine, &config)
        .await
        .map(|p| p.fingerprint);
    ui.result(format!(
        "project    {} (engine {})",
        config.name,
        engine.host()
    ));
    for line in deploy::status(&engine, &config, &current).await? {
        ui.result(line);
    }
    for line in deploy::preview::status_lines(&engine, &config).await? {
        ui.result(line);
    }
    Ok(())
}
