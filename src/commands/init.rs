//! `sitebuild init`: find the site in a repository and write `sitebuild.toml` plus the CI
//! configuration that deploys it (the planning is `crate::init`, pure).

use std::path::Path;

use anyhow::Result;
use serde_json::json;

use crate::init::{self, CiKind};
use crate::report::{Report, Sink};
use crate::ui::Ui;

pub(super) fn run(dir: &Path, ci: Option<CiKind>, force: bool, ui: &Ui, sink: &Sink) -> Result<()> {
    let ci = ci.unwrap_or_else(|| CiKind::guess(dir));
    let plan = init::plan(dir, ci)?;
    let written = init::write(&plan, force)?;
    for path in &written {
        ui.step(format!("wrote {}", path.display()));
    }
    let files: Vec<String> = plan
        .files
        .iter()
        .map(|f| f.path.display().to_string())
        .collect();
    let d = &plan.detected;
    sink.emit(
        &Report {
            title: "sitebuild init".into(),
            human: plan.next.clone(),
            fields: vec![
                ("name", json!(plan.name)),
                ("site_dir", json!(d.site_dir)),
                ("generator", json!(d.generator.name())),
                ("build_command", json!(d.build_command)),
                ("files", json!(files)),
                ("next", json!(plan.next)),
            ],
        },
        ui,
    )
}
