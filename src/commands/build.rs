//! `sitebuild build`: the site image, unless one with this fingerprint exists.

use std::path::Path;

use anyhow::Result;
use serde_json::json;

use super::load;
use crate::cli::BuildArgs;
use crate::config::Config;
use crate::engine::Engine;
use crate::image::{self, BaseSupport, BuildOutcome, Prepared};
use crate::report::{Report, Sink};
use crate::ui::Ui;

/// Every bad input fails in `prepare` first; then the engine: what the base supports (the
/// `.br` siblings), and the image unless it exists.
pub(super) async fn build_image(
    config: &Config,
    ui: &Ui,
) -> Result<(Engine, Prepared, BuildOutcome)> {
    let started = std::time::Instant::now();
    let p = image::prepare(config, BaseSupport::default())?;
    ui.detail(format!(
        "scanned, hashed and rendered {} files in {} ms",
        p.site.files.len(),
        started.elapsed().as_millis()
    ));
    let engine = Engine::connect().await?;
    let base = image::base_support(&engine, config).await?;
    let p = p.with_base(base)?;
    let outcome = image::ensure_image(&engine, &p, ui, true).await?;
    Ok((engine, p, outcome))
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
        BuildOutcome::Built {
            took,
            summary,
            incremental,
            ..
        } => {
            let precompressed = match image::brotli_note(p) {
                None => format!(
                    "{} .gz and {} .br siblings",
                    summary.gz_files, summary.br_files
                ),
                Some(note) => format!("{} .gz siblings; {note}", summary.gz_files),
            };
            let skew = match summary.carried_files {
                0 => String::new(),
                n => format!(
                    "; skew protection: kept {n} hashed file{} ({} KiB) of {} earlier version{}",
                    if n == 1 { "" } else { "s" },
                    summary.carried_bytes.div_ceil(1024),
                    summary.carried_versions,
                    if summary.carried_versions == 1 {
                        ""
                    } else {
                        "s"
                    },
                ),
            };
            let left_out = match summary.carried_left_out {
                0 => String::new(),
                n => format!(
                    "; the hashed assets of {n} older version{} did not fit in skew_max_size ({} bytes)",
                    if n == 1 { "" } else { "s" },
                    p.config.skew_max_size
                ),
            };
            let layer = match incremental {
                None => String::new(),
                Some(n) => format!(
                    "; incremental site layer {n} of {}: {} changed file{}, {} deletion{}",
                    crate::image_archive::MAX_SITE_LAYERS,
                    summary.files,
                    if summary.files == 1 { "" } else { "s" },
                    summary.whiteouts,
                    if summary.whiteouts == 1 { "" } else { "s" },
                ),
            };
            format!(
                "built {} in {:.1} s ({} files, {precompressed}{skew}{left_out}{layer})",
                p.tag(),
                took.as_secs_f64(),
                p.site.files.len(),
            )
        }
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
    let (_, p, outcome) = build_image(&config, ui).await?;
    sink.emit(&build_report(&p, &outcome), ui)
}
