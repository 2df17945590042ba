//! Records the git commit the binary is built from (`sitebuild --version` prints it):
//! `git rev-parse --short HEAD` when this is a git checkout and git is installed, else "unknown"
//! (a crates.io download, a tarball), unless `SITEBUILD_COMMIT` is set. The fingerprint uses only
//! the package version.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// Rebuild when the git file at `path` (relative to the git dir) changes; a missing file (no
/// packed-refs) is left out, else cargo would rerun this script on every build.
fn watch(path: &str) {
    if let Some(p) = git(&["rev-parse", "--git-path", path])
        && std::path::Path::new(&p).exists()
    {
        println!("cargo:rerun-if-changed={p}");
    }
}

fn main() {
    // Only this crate's own checkout counts, not a git repository it happens to sit in (a
    // vendored copy, `cargo package`'s target/package/).
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let own_checkout = git(&["rev-parse", "--show-toplevel"])
        .and_then(|top| std::fs::canonicalize(top).ok())
        .is_some_and(|top| std::fs::canonicalize(&manifest).is_ok_and(|m| m == top));
    // SITEBUILD_COMMIT set by whoever builds from a tarball wins over git.
    let commit = std::env::var("SITEBUILD_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| {
            own_checkout
                .then(|| git(&["rev-parse", "--short", "HEAD"]))
                .flatten()
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=SITEBUILD_COMMIT={commit}");
    // Rebuild when HEAD moves: HEAD itself (a branch switch) and the ref it points to (a commit).
    if own_checkout {
        watch("HEAD");
        watch("packed-refs");
        if let Some(name) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watch(&name);
        }
    }
    println!("cargo:rerun-if-env-changed=SITEBUILD_COMMIT");
}
