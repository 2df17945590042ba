//! `sitebuild changed`: does anything that affects the site differ from a git revision?

use std::path::Path;

use anyhow::Result;
use serde_json::json;

use super::load;
use crate::changed;
use crate::cli::BuildArgs;
use crate::report::{Report, Sink};
use crate::ui::Ui;

/// Exit code of `sitebuild changed` when nothing that affects the site changed.
pub(crate) const EXIT_NO_CHANGE: u8 = 3;

pub(super) fn run(dir: &Path, since: Option<&str>, ui: &Ui, sink: &Sink) -> Result<u8> {
    let config = load(dir, &BuildArgs::default(), None)?;
    let change = changed::changed_since(&config, since)?;
    if let Some(reason) = &change.reason {
        ui.step(format!("note: {reason}"));
    }
    sink.emit(
        &Report {
            title: "sitebuild changed".into(),
            human: change.describe(),
            fields: vec![
                ("changed", json!(change.changed)),
                ("since", json!(change.since)),
                ("files", json!(change.relevant)),
                ("other_files", json!(change.ignored)),
                ("reason", json!(change.reason.clone().unwrap_or_default())),
            ],
        },
        ui,
    )?;
    Ok(if change.changed { 0 } else { EXIT_NO_CHANGE })
}
