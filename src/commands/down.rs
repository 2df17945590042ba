//! `sitebuild down`: remove everything sitebuild created for this project (with its
//! previews), or for one preview (`--preview NAME`).

use std::path::Path;

use anyhow::{Result, bail};

use super::load;
use crate::cli::{BuildArgs, UpArgs};
use crate::deploy;
use crate::engine::Engine;
use crate::ui::Ui;

pub(super) async fn run(dir: &Path, images: bool, preview: Option<String>, ui: &Ui) -> Result<()> {
    let up = UpArgs {
        preview,
        ..Default::default()
    };
    let config = load(dir, &BuildArgs::default(), Some(&up))?;
    let engine = Engine::connect().await?;
    if let Some(p) = &config.preview {
        if images {
            bail!(
                "--images with --preview {}: a preview's images are the project's; `sitebuild \
                 down --images` (without --preview) removes them",
                p.label
            );
        }
        let listed = deploy::preview::list(&engine, &p.of).await?;
        if !listed.iter().any(|l| l.instance == config.name) {
            let names: Vec<&str> = listed.iter().map(|l| l.label.as_str()).collect();
            bail!(
                "--preview {}: project {:?} has no such preview on {} (previews: {})",
                p.label,
                p.of,
                engine.host(),
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            );
        }
    } else {
        for p in deploy::preview::list(&engine, &config.name).await? {
            ui.step(format!("taking down preview {}", p.label));
            ui.step(deploy::preview::down(&engine, &config, &p, ui).await?);
        }
    }
    let line = deploy::down(&engine, &config, images, ui).await?;
    ui.result(line);
    Ok(())
}
