//! `sitebuild maintenance on [--message TEXT]` / `off`: the edge answers the project's requests
//! with 503, `Retry-After` and a maintenance page (while /healthz stays 200), until turned off;
//! the state is a file in the edge's volume, so it survives deploys and other machines see it.

use std::path::Path;

use anyhow::{Result, bail};

use super::load;
use crate::cli::{BuildArgs, UpArgs};
use crate::deploy;
use crate::engine::Engine;
use crate::ui::Ui;

/// Longest `--message` accepted.
const MAX_MESSAGE: usize = 2000;

pub(super) async fn run(dir: &Path, on: bool, message: Option<&str>, ui: &Ui) -> Result<()> {
    if !on && message.is_some() {
        bail!("--message goes with `sitebuild maintenance on`; `off` takes no message");
    }
    if let Some(m) = message
        && m.chars().count() > MAX_MESSAGE
    {
        bail!(
            "--message has {} characters; at most {MAX_MESSAGE} fit the maintenance page (put a \
             longer page in site/maintenance.html and deploy it)",
            m.chars().count()
        );
    }
    let config = load(dir, &BuildArgs::default(), Some(&UpArgs::default()))?;
    deploy::require_local(&config, "maintenance")?;
    let engine = Engine::connect().await?;
    let wanted = on.then(|| message.unwrap_or(""));
    let line = deploy::maintenance(&engine, &config, wanted, ui).await?;
    ui.result(line);
    Ok(())
}
