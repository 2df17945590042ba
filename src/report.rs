//! The result of a command, for people (one line), scripts (`--json`), and CI (step outputs,
//! job summary, GitLab dotenv report).

use std::path::PathBuf;

use anyhow::Result;
use serde_json::Value;

use crate::ci;
use crate::ui::Ui;

/// What a command reports.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    /// Summary heading, e.g. "sitebuild deploy".
    pub(crate) title: String,
    /// The line people read.
    pub(crate) human: String,
    /// Machine-readable fields, in order.
    pub(crate) fields: Vec<(&'static str, Value)>,
}

/// Where reports go.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sink {
    pub(crate) json: bool,
    pub(crate) dotenv: Option<PathBuf>,
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(as_text).collect::<Vec<_>>().join(" "),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl Sink {
    pub(crate) fn emit(&self, report: &Report, ui: &Ui) -> Result<()> {
        if self.json {
            let obj: serde_json::Map<String, Value> = report
                .fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            println!("{}", Value::Object(obj));
        } else {
            ui.result(&report.human);
        }
        let pairs: Vec<(&str, String)> = report
            .fields
            .iter()
            .map(|(k, v)| (*k, as_text(v)))
            .collect();
        ci::github_outputs(&pairs)?;
        ci::step_summary(&ci::summary_table(&report.title, &pairs))?;
        if let Some(path) = &self.dotenv {
            ci::dotenv(path, &pairs)?;
        }
        Ok(())
    }
}
