//! `sitebuild build`: the site image, unless one with this fingerprint exists.

use std::path::Path;

use anyhow::Result;
use serde_json::json;

use super::load;
use crate::cli::BuildArgs;
use crate::engine::Engine;
use crate::image::{self, BuildOutcome, Prepared};
use crate::report::{Report, Sink};
use crate::ui::Ui;

pub(super) async fn build_image(p: &Prepared, ui: &Ui) -> Result<(Engine, BuildOutcome)> {
    let engine = Engine::connect().await?;
    let outcome = image::ensure_image(&engine, p, ui).await?;
    Ok((engine, outcome))
}

pub(super) fn describe_build(p: &Prepared, outcome: &BuildOutcome) -> String {
    match outcome {
        BuildOutcome::Reused { .. } => {
            format!(
                "{} is up to date (fingerprint {}): nothing to build",
                p.tag(),
                p.short()
            )
        }
        BuildOutcome::Built { took, summary, .. } => format!(
            "built {} in {:.1} s ({} files, {} precompressed)",
            p.tag(),
            took.as_secs_f64(),
            summary.files,
            summary.gz_files
        ),
    }
}

fn build_report(p: &Prepared, outcome: &BuildOutcome) -> Report {
    Report {
        title: "sitebuild build".into(),
        human: describe_build(p, outcome),
        fields: vec![
            ("image", json!(p.tag())),
            ("fingerprint", json!(p.fingerprint)),
            ("short", json!(p.short())),
            ("image_id", json!(outcome.image_id())),
            (
                "built",
                json!(matches!(outcome, BuildOutcome::Built { .. })),
            ),
            ("file_count", json!(p.site.files.len())),
        ],
    }
}

pub(super) async fn run(dir: &Path, args: &BuildArgs, ui: &Ui, sink: &Sink) -> Result<()> {
    let config = load(dir, args, None)?;
    let p = image::prepare(&config)?;
    let (_, outcome) = build_image(&p, ui).await?;
    sink.emit(&build_report(&p, &outcome), ui)
}
