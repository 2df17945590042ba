//! `sitebuild push`: build if needed, push `REPO:<fingerprint>` and extra tags.

use std::path::Path;

use anyhow::{Result, bail};
use serde_json::json;

use super::build::{build_image, describe_build};
use super::load;
use crate::cli::BuildArgs;
use crate::config::validate;
use crate::image::BuildOutcome;
use crate::registry;
use crate::report::{Report, Sink};
use crate::ui::Ui;

/// A tag as the registry accepts it.
fn check_tag(tag: &str) -> Result<()> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !ok {
        bail!("invalid --tag {tag:?}: use up to 128 letters, digits, '_', '.', '-' (not first)");
    }
    Ok(())
}

pub(super) async fn run(
    dir: &Path,
    to: &str,
    tags: &[String],
    args: &BuildArgs,
    ui: &Ui,
    sink: &Sink,
) -> Result<()> {
    if let Err(m) = validate::check_image_ref(to) {
        bail!("invalid --to: {m}");
    }
    if to.rsplit('/').next().is_some_and(|last| last.contains(':')) || to != to.to_ascii_lowercase()
    {
        bail!("invalid --to {to:?}: give a lowercase repository without a tag (tags go in --tag)");
    }
    for t in tags {
        check_tag(t)?;
    }
    let config = load(dir, args, None)?;
    let (engine, p, outcome) = build_image(&config, ui).await?;
    if matches!(outcome, BuildOutcome::Built { .. }) {
        ui.step(describe_build(&p, &outcome));
    }
    let creds = registry::credentials_for(&registry::registry_of(to))?;
    let mut all_tags = vec![p.short().to_string()];
    all_tags.extend(tags.iter().cloned());
    all_tags.dedup();
    let mut pushed = Vec::new();
    for tag in &all_tags {
        ui.step(format!("pushing {to}:{tag}"));
        registry::push(&engine, outcome.image_id(), to, tag, creds.as_ref()).await?;
        pushed.push(format!("{to}:{tag}"));
    }
    sink.emit(
        &Report {
            title: "sitebuild push".into(),
            human: format!("pushed {}", pushed.join(", ")),
            fields: vec![
                ("image", json!(format!("{to}:{}", p.short()))),
                ("fingerprint", json!(p.fingerprint)),
                ("tags", json!(pushed)),
                ("registry", json!(registry::registry_of(to))),
            ],
        },
        ui,
    )
}
