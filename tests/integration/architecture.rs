//! The invariants ARCHITECTURE.md states, checked on the source as it is: no import cycle
//! between modules (a folder's `mod.rs` and its own files are one package and may use each
//! other), nothing below `deploy` imports it, and only `engine` uses bollard.
//!
//! A module is a file under `src/` (`a.rs` and `a/mod.rs` are `a`, `a/b.rs` is `a::b`); its
//! imports are the `crate::…` and `super::…` paths in its code (not its comments) before its
//! `#[cfg(test)]` part.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every module of the crate with the text of its non-test code.
fn modules() -> BTreeMap<String, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read module");
                let text = match text.find("#[cfg(test)]") {
                    Some(at) => &text[..at],
                    None => &text[..],
                };
                // Comments (doc links included) are not imports.
                let code: String = text
                    .lines()
                    .map(|l| l.split_once("//").map_or(l, |(code, _)| code))
                    .collect::<Vec<_>>()
                    .join("\n");
                out.insert(module_name(&src, &path), code);
            }
        }
    }
    out
}

fn module_name(src: &Path, path: &Path) -> String {
    let rel: PathBuf = path.strip_prefix(src).expect("under src").to_path_buf();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|l| l == "mod") {
        parts.pop();
    }
    if parts == ["lib"] || parts == ["main"] {
        return "crate".to_string();
    }
    parts.join("::")
}

/// The package a module belongs to: `a::b` → `a`, a top-level `a` → `a` itself.
fn package(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

/// The modules `name` imports (identifiers after `crate::` / `super::`, resolved to the longest
/// module that exists).
fn imports(name: &str, code: &str, all: &BTreeMap<String, String>) -> BTreeSet<String> {
    let is_mod_rs = all.contains_key(name) && name != "crate" && {
        // A folder's own module (a/mod.rs) has children named a::x.
        all.keys().any(|k| k.starts_with(&format!("{name}::")))
    };
    let parent = if is_mod_rs {
        "crate".to_string()
    } else {
        name.rsplit_once("::")
            .map_or("crate", |(p, _)| p)
            .to_string()
    };
    let mut out = BTreeSet::new();
    for (prefix, base) in [("crate::", "crate"), ("super::", parent.as_str())] {
        let mut rest = code;
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().next_back();
            rest = &rest[at + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let path: Vec<&str> = rest
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or("")
                .split("::")
                .filter(|s| !s.is_empty())
                .collect();
            // `use super::{a, b}` / `use crate::x::{a, b}`: the braces name modules too.
            let braced = rest
                .strip_prefix(&path.join("::"))
                .and_then(|r| r.trim_start_matches("::").strip_prefix('{'))
                .and_then(|r| r.split('}').next())
                .map(|inner| {
                    inner
                        .split(',')
                        .map(|s| s.trim().split("::").next().unwrap_or("").to_string())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            let root: Vec<String> = if base == "crate" {
                Vec::new()
            } else {
                base.split("::").map(String::from).collect()
            };
            let mut candidates = vec![path.iter().map(|s| (*s).to_string()).collect::<Vec<_>>()];
            for b in braced {
                let mut p: Vec<String> = path.iter().map(|s| (*s).to_string()).collect();
                p.push(b);
                candidates.push(p);
            }
            for cand in candidates {
                let full: Vec<String> = root.iter().cloned().chain(cand).collect();
                let target = (1..=full.len())
                    .rev()
                    .map(|n| full[..n].join("::"))
                    .find(|m| all.contains_key(m));
                if let Some(t) = target
                    && t != name
                {
                    out.insert(t);
                }
            }
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let all = modules();
    all.iter()
        .map(|(name, code)| (name.clone(), imports(name, code, &all)))
        .collect()
}

/// True when one of `a`, `b` is the package module of the other (`deploy` and `deploy::local`).
fn parent_and_child(a: &str, b: &str) -> bool {
    a.starts_with(&format!("{b}::")) || b.starts_with(&format!("{a}::"))
}

#[test]
fn no_import_cycle_between_modules() {
    let g = graph();
    assert!(
        g.get("deploy").is_some_and(|d| d.contains("engine")),
        "the import reader is broken: deploy must be seen importing engine ({g:?})"
    );
    // Reachability without the parent/child edges of one package.
    let edges = |m: &str| -> Vec<String> {
        g.get(m)
            .map(|s| {
                s.iter()
                    .filter(|t| !parent_and_child(m, t) && t.as_str() != "crate")
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut cycles = Vec::new();
    for start in g.keys() {
        // Depth-first search for a path back to `start`.
        let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((m, path)) = stack.pop() {
            for t in edges(&m) {
                if &t == start {
                    let mut c = path.clone();
                    c.push(t.clone());
                    cycles.push(c.join(" -> "));
                } else if seen.insert(t.clone()) {
                    let mut p = path.clone();
                    p.push(t.clone());
                    stack.push((t, p));
                }
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "import cycles (move the shared item down, see ARCHITECTURE.md):\n{}",
        cycles.join("\n")
    );
}

#[test]
fn nothing_below_deploy_imports_it_and_only_engine_uses_bollard() {
    let g = graph();
    let above_deploy = ["crate", "commands", "watch", "deploy"];
    for (m, targets) in &g {
        if above_deploy.contains(&package(m)) {
            continue;
        }
        let up: Vec<_> = targets.iter().filter(|t| package(t) == "deploy").collect();
        assert!(up.is_empty(), "{m} is below deploy but imports {up:?}");
    }
    let users: Vec<_> = modules()
        .into_iter()
        .filter(|(m, code)| code.contains("bollard::") && package(m) != "engine")
        .map(|(m, _)| m)
        .collect();
    assert!(users.is_empty(), "only engine may use bollard: {users:?}");
}
