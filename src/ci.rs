//! CI awareness: step outputs (`$GITHUB_OUTPUT`), the job summary (`$GITHUB_STEP_SUMMARY`),
//! GitLab `dotenv` report files, and error annotations (`::error file=…,line=…::…`) when
//! running under GitHub Actions. Everything here is a no-op outside CI.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// Append `key=value` lines to the file named by `$GITHUB_OUTPUT`, if set.
pub(crate) fn github_outputs(pairs: &[(&str, String)]) -> Result<()> {
    let Ok(path) = std::env::var("GITHUB_OUTPUT") else {
        return Ok(());
    };
    append(Path::new(&path), &key_values(pairs))
}

/// Append markdown to the job summary (`$GITHUB_STEP_SUMMARY`), if set.
pub(crate) fn step_summary(markdown: &str) -> Result<()> {
    let Ok(path) = std::env::var("GITHUB_STEP_SUMMARY") else {
        return Ok(());
    };
    append(Path::new(&path), markdown)
}

/// Write a GitLab dotenv report (`SITEBUILD_KEY=value` lines), replacing the file.
pub(crate) fn dotenv(path: &Path, pairs: &[(&str, String)]) -> Result<()> {
    let body: String = pairs
        .iter()
        .map(|(k, v)| format!("SITEBUILD_{}={}\n", k.to_ascii_uppercase(), one_line(v)))
        .collect();
    std::fs::write(path, body).with_context(|| format!("cannot write {}", path.display()))
}

fn key_values(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}\n", one_line(v)))
        .collect()
}

fn one_line(v: &str) -> String {
    v.replace(['\n', '\r'], " ")
}

fn append(path: &Path, text: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot append to {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("cannot append to {}", path.display()))
}

/// `::error file=…,line=…::message` for GitHub Actions (None elsewhere).
#[must_use]
pub fn annotation(err: &anyhow::Error) -> Option<String> {
    if std::env::var("GITHUB_ACTIONS").as_deref() != Ok("true") {
        return None;
    }
    let message = format!("{err:#}");
    let mut props = String::new();
    if let Some(loc) = crate::located::find(err) {
        let cwd = std::env::current_dir().unwrap_or_default();
        let file = loc.file.strip_prefix(&cwd).unwrap_or(&loc.file);
        props.push_str(&format!(
            " file={}",
            escape_property(&file.to_string_lossy())
        ));
        if let Some(line) = loc.line {
            props.push_str(&format!(",line={line}"));
        }
    }
    Some(format!("::error{props}::{}", escape_data(&message)))
}

/// Workflow-command escaping (data): %, CR, LF.
pub(crate) fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Workflow-command escaping (properties): also `:` and `,`.
pub(crate) fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// A two-column markdown table.
pub(crate) fn summary_table(title: &str, rows: &[(&str, String)]) -> String {
    let mut md = format!("### {title}\n\n| | |\n|---|---|\n");
    for (k, v) in rows {
        md.push_str(&format!("| {k} | {} |\n", v.replace('|', "\\|")));
    }
    md.push('\n');
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_dotenv() {
        assert_eq!(escape_data("50% a\nb"), "50%25 a%0Ab");
        assert_eq!(escape_property("a:b,c"), "a%3Ab%2Cc");
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("sitebuild.env");
        dotenv(
            &f,
            &[("fingerprint", "abc".into()), ("image", "x:y\nz".into())],
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(f).unwrap(),
            "SITEBUILD_FINGERPRINT=abc\nSITEBUILD_IMAGE=x:y z\n"
        );
        let t = summary_table("t", &[("a", "b|c".into())]);
        assert!(t.contains("| a | b\\|c |"));
    }
}
