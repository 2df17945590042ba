//! `sitebuild changed`: does anything that affects the site differ between a git revision and
//! the working tree? Site files after the dotfile and ignore rules, the templates, the config.
//! Pipelines use it as a second guard beside their path filters.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::config::{CONFIG_FILE, Config};
use crate::site;

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) changed: bool,
    pub(crate) since: String,
    /// Project-relative paths that affect the site.
    pub(crate) relevant: Vec<String>,
    /// Other changed paths (README, sources, …), for the record.
    pub(crate) ignored: Vec<String>,
    /// Why the answer is "changed" without a diff (unknown revision, new branch).
    pub(crate) reason: Option<String>,
}

/// The revision compared against when none is given.
pub(crate) const DEFAULT_SINCE: &str = "HEAD~1";

fn git(dir: &Path, args: &[&str]) -> Result<std::process::Output> {
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .context("cannot run git (is it installed?)")
}

fn git_ok(dir: &Path, args: &[&str]) -> Result<String> {
    let out = git(dir, args)?;
    if !out.status.success() {
        bail!(
            "git {} failed in {}: {}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Compare `since` (default [`DEFAULT_SINCE`]) with the working tree.
pub(crate) fn changed_since(cfg: &Config, since: Option<&str>) -> Result<Change> {
    let since = since.unwrap_or(DEFAULT_SINCE).to_string();
    let dir = &cfg.project_dir;
    if git(dir, &["rev-parse", "--git-dir"]).map_or(true, |o| !o.status.success()) {
        bail!(
            "{} is not in a git repository: `sitebuild changed` compares git revisions",
            dir.display()
        );
    }
    let all_changed = |reason: String| Change {
        changed: true,
        since: since.clone(),
        relevant: vec![],
        ignored: vec![],
        reason: Some(reason),
    };
    if since.is_empty() || since.chars().all(|c| c == '0') {
        return Ok(all_changed(format!(
            "no previous revision ({since:?}: a new branch or the first push)"
        )));
    }
    let verify = git(
        dir,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{since}^{{commit}}"),
        ],
    )?;
    if !verify.status.success() {
        return Ok(all_changed(format!(
            "{since} is not in this clone's history (a shallow clone? fetch with depth 0); assuming a change"
        )));
    }

    // Paths relative to the project directory, from the repository root.
    let prefix = git_ok(dir, &["rev-parse", "--show-prefix"])?
        .trim()
        .to_string();
    let mut paths: Vec<String> = Vec::new();
    let diff = git_ok(
        dir,
        &[
            "diff",
            "--name-only",
            "--no-renames",
            "-z",
            &since,
            "--",
            ".",
        ],
    )?;
    let untracked = git_ok(
        dir,
        &[
            "ls-files",
            "--others",
            "--exclude-standard",
            "-z",
            "--",
            ".",
        ],
    )?;
    for p in diff.split('\0').chain(untracked.split('\0')) {
        if p.is_empty() {
            continue;
        }
        // `git diff` names are repository-relative; ls-files ones are relative to `dir`.
        let rel = p.strip_prefix(&prefix).unwrap_or(p).to_string();
        paths.push(rel);
    }
    paths.sort();
    paths.dedup();

    let rel_of = |abs: &Path| -> String {
        abs.strip_prefix(&cfg.project_dir)
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .unwrap_or_default()
    };
    let site_rel = rel_of(&cfg.site_dir);
    let templates_rel = rel_of(&cfg.templates_dir);
    let ignore =
        site::load_ignore(&cfg.site_dir).unwrap_or_else(|_| ignore::gitignore::Gitignore::empty());

    let (mut relevant, mut ignored) = (Vec::new(), Vec::new());
    for p in paths {
        let affects = if p == CONFIG_FILE {
            true
        } else if let Some(rest) = p.strip_prefix(&format!("{templates_rel}/")) {
            std::path::Path::new(rest)
                .extension()
                .is_some_and(|e| e == "j2")
        } else if let Some(rest) = p.strip_prefix(&format!("{site_rel}/")) {
            rest == site::IGNORE_FILE
                || crate::rules::is_rule_file(std::path::Path::new(rest))
                || site::is_served(rest, &ignore)
        } else {
            false
        };
        if affects {
            relevant.push(p);
        } else {
            ignored.push(p);
        }
    }
    Ok(Change {
        changed: !relevant.is_empty(),
        since,
        relevant,
        ignored,
        reason: None,
    })
}

impl Change {
    /// One line for people.
    pub(crate) fn describe(&self) -> String {
        match (&self.reason, self.changed) {
            (Some(r), _) => format!("changed: {r}"),
            (None, true) => format!("changed since {}: {}", self.since, self.relevant.join(", ")),
            (None, false) if self.ignored.is_empty() => {
                format!("no change since {}", self.since)
            }
            (None, false) => format!(
                "no change that affects the site since {} (also changed: {})",
                self.since,
                self.ignored.join(", ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overrides;

    fn sh(dir: &Path, args: &[&str]) {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn repo() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::create_dir_all(p.join("site/drafts")).unwrap();
        std::fs::create_dir_all(p.join("nginx")).unwrap();
        std::fs::write(p.join("site/index.html"), "v1").unwrap();
        std::fs::write(p.join("site/.sitebuildignore"), "drafts/\n").unwrap();
        std::fs::write(p.join("README.md"), "readme").unwrap();
        std::fs::write(p.join("sitebuild.toml"), "").unwrap();
        sh(p, &["init", "-q", "-b", "main"]);
        commit_all(p, "one");
        d
    }

    /// `git add -A` and commit, with a throwaway identity.
    fn commit_all(d: &Path, message: &str) {
        sh(d, &["add", "-A"]);
        let id = ["-c", "user.email=t@t", "-c", "user.name=t"];
        sh(d, &[&id[..], &["commit", "-qm", message]].concat());
    }

    fn commit(d: &Path, file: &str, body: &str) -> Change {
        let path = d.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
        commit_all(d, file);
        let cfg = Config::load_with_env(d, &Overrides::default(), &Default::default()).unwrap();
        changed_since(&cfg, None).unwrap()
    }

    #[test]
    fn which_commits_count() {
        let d = repo();
        let p = d.path();
        let c = commit(p, "README.md", "new readme");
        assert!(!c.changed, "{c:?}");
        assert_eq!(c.ignored, ["README.md"]);
        assert!(commit(p, "site/index.html", "v2").changed);
        assert!(commit(p, "nginx/nginx.conf.j2", "x").changed);
        assert!(commit(p, "sitebuild.toml", "spa = true\n").changed);
        assert!(!commit(p, "site/.env", "SECRET=1").changed, "dotfile");
        assert!(
            !commit(p, "site/drafts/post.html", "x").changed,
            "ignored path"
        );
        assert!(
            commit(p, "site/.sitebuildignore", "").changed,
            "the ignore rules themselves"
        );
        assert!(!commit(p, "src/main.rs", "fn main(){}").changed);
        let c = commit(p, "site/.well-known/security.txt", "x");
        assert!(c.changed, ".well-known is served: {c:?}");
    }

    #[test]
    fn working_tree_unknown_and_zero_revisions() {
        let d = repo();
        let cfg =
            Config::load_with_env(d.path(), &Overrides::default(), &Default::default()).unwrap();
        std::fs::write(d.path().join("site/new.html"), "untracked").unwrap();
        let c = changed_since(&cfg, Some("HEAD")).unwrap();
        assert_eq!(c.relevant, ["site/new.html"], "untracked files count");
        let c = changed_since(&cfg, Some("0000000000000000000000000000000000000000")).unwrap();
        assert!(c.changed && c.reason.is_some());
        let c = changed_since(&cfg, Some("deadbeefdeadbeef")).unwrap();
        assert!(c.changed && c.reason.unwrap().contains("not in this clone's history"));
        let not_repo = tempfile::tempdir().unwrap();
        let cfg =
            Config::load_with_env(not_repo.path(), &Overrides::default(), &Default::default())
                .unwrap();
        let e = changed_since(&cfg, None).unwrap_err().to_string();
        assert!(e.contains("not in a git repository"), "{e}");
    }
}
