//! Scan the site directory (what goes into the image) and fingerprint it.
//!
//! Rules: sorted order; dotfiles and dot-directories are left out (except `/.well-known/`);
//! paths matched by `site/.sitebuildignore` (gitignore syntax) are left out; a symlink is
//! followed only when its target is inside the site directory; file names must be UTF-8;
//! `index.html` must exist at the top. `_redirects` and `_headers` at the top are read by
//! sitebuild ([`crate::rules`]), never served: they are kept apart in [`Site::rules`], out of
//! the image but in the fingerprint.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use sha2::{Digest, Sha256};

/// The ignore file read from the top of the site directory.
pub(crate) const IGNORE_FILE: &str = ".sitebuildignore";

/// One regular file that will be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SiteFile {
    /// Path inside the site, `/`-separated, e.g. `css/site.css`.
    pub(crate) rel: String,
    /// Where to read the bytes (the symlink target for an in-site symlink).
    pub(crate) abs: PathBuf,
    /// Permission bits as found on disk.
    pub(crate) mode: u32,
    pub(crate) size: u64,
    /// sha256 of the bytes, filled in by [`hash_files`].
    pub(crate) sha256: Option<[u8; 32]>,
}

impl SiteFile {
    /// Mode written into the image: world-readable, executable only if it was.
    pub(crate) fn image_mode(&self) -> u32 {
        if self.mode & 0o111 != 0 { 0o755 } else { 0o644 }
    }
}

/// The scanned site: files and directories in sorted order.
#[derive(Debug, Clone)]
pub(crate) struct Site {
    pub(crate) dirs: Vec<String>,
    /// What is served (packed into the image).
    pub(crate) files: Vec<SiteFile>,
    /// `_redirects` and `_headers` when present: hashed and fingerprinted, never packed.
    pub(crate) rules: Vec<SiteFile>,
}

impl Site {
    pub(crate) fn has(&self, rel: &str) -> bool {
        self.files
            .binary_search_by(|f| f.rel.as_str().cmp(rel))
            .is_ok()
    }

    /// Every served `404.html` (`404.html`, `docs/404.html`, …): the nearest one up the tree
    /// answers a 404.
    pub(crate) fn not_found_pages(&self) -> Vec<String> {
        self.files
            .iter()
            .filter(|f| f.rel == "404.html" || f.rel.ends_with("/404.html"))
            .map(|f| f.rel.clone())
            .collect()
    }

    pub(crate) fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// Is this path left out because of a leading dot in any component?
/// `.well-known` at the top level is allowed (ACME challenges, security.txt).
pub(crate) fn is_hidden(rel: &str) -> bool {
    rel.split('/')
        .enumerate()
        .any(|(i, part)| part.starts_with('.') && !(i == 0 && part == ".well-known"))
}

/// The `.sitebuildignore` rules of a site directory (empty when there is none).
pub(crate) fn load_ignore(root: &Path) -> Result<Gitignore> {
    let mut builder = GitignoreBuilder::new(root);
    let path = root.join(IGNORE_FILE);
    if path.exists()
        && let Some(err) = builder.add(&path)
    {
        bail!("{}: {err} (fix or remove the pattern)", path.display());
    }
    builder
        .build()
        .with_context(|| format!("{}: invalid ignore pattern", path.display()))
}

/// Walk `root` and return what will be served.
pub(crate) fn scan(root: &Path) -> Result<Site> {
    if !root.is_dir() {
        bail!(
            "site directory {} does not exist: create it with an index.html, or set `site_dir` in sitebuild.toml",
            root.display()
        );
    }
    let canonical_root = root
        .canonicalize()
        .with_context(|| format!("cannot resolve site directory {}", root.display()))?;
    let ignore = load_ignore(root)?;

    let mut dirs = Vec::new();
    let mut files = Vec::new();
    let mut rules = Vec::new();
    let walker = walkdir::WalkDir::new(root)
        .min_depth(1)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            let Ok(rel) = e.path().strip_prefix(root) else {
                return true;
            };
            let rel_s = rel.to_string_lossy().replace('\\', "/");
            // The rule files are read whatever .sitebuildignore says, so they are always
            // fingerprinted.
            if crate::rules::is_rule_file(rel) {
                return true;
            }
            !is_hidden(&rel_s)
                && !ignore
                    .matched_path_or_any_parents(rel, e.file_type().is_dir())
                    .is_ignore()
        });

    for entry in walker {
        let entry = entry.map_err(|e| {
            let path = e
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            if e.loop_ancestor().is_some() {
                anyhow::anyhow!("{path}: symlink loop in the site directory; remove the link")
            } else if e
                .io_error()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
            {
                anyhow::anyhow!(
                    "{path}: broken symlink (its target does not exist); fix or remove it"
                )
            } else {
                anyhow::anyhow!("{path}: cannot read: {e} (check its permissions)")
            }
        })?;
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .expect("walkdir yields paths under root");
        let Some(rel_str) = rel.to_str() else {
            bail!(
                "{}: file name is not valid UTF-8; rename it (URLs need UTF-8 names)",
                path.display()
            );
        };
        let rel_str = rel_str.replace('\\', "/");

        let mut abs = path.to_path_buf();
        if entry.path_is_symlink() {
            let target = path
                .canonicalize()
                .with_context(|| format!("{}: cannot resolve symlink", path.display()))?;
            if !target.starts_with(&canonical_root) {
                return Err(crate::located::Located::new(
                    path,
                    None,
                    format!(
                        "{}: symlink points outside the site directory (to {}); replace it with a copy or remove it",
                        path.display(),
                        target.display()
                    ),
                )
                .into());
            }
            abs = target;
        }

        let ft = entry.file_type();
        if crate::rules::is_rule_file(rel) && !ft.is_dir() {
            let meta = entry
                .metadata()
                .with_context(|| format!("{}: cannot read metadata", path.display()))?;
            rules.push(SiteFile {
                rel: rel_str,
                abs,
                mode: meta.permissions().mode() & 0o7777,
                size: meta.len(),
                sha256: None,
            });
        } else if ft.is_dir() {
            dirs.push(rel_str);
        } else if ft.is_file() {
            let meta = entry
                .metadata()
                .with_context(|| format!("{}: cannot read metadata", path.display()))?;
            files.push(SiteFile {
                rel: rel_str,
                abs,
                mode: meta.permissions().mode() & 0o7777,
                size: meta.len(),
                sha256: None,
            });
        } else {
            bail!(
                "{}: not a regular file or directory (a socket, fifo or device); remove it from the site",
                path.display()
            );
        }
    }

    // walkdir sorts per directory by name; sort globally by the `/` path so the order is total.
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    // Only directories that end up holding a served file: an empty (or all-hidden) directory
    // would answer 403 instead of 404.
    dirs.retain(|d: &String| {
        let prefix = format!("{d}/");
        files.iter().any(|f| f.rel.starts_with(&prefix))
    });
    dirs.sort();

    rules.sort_by(|a: &SiteFile, b: &SiteFile| a.rel.cmp(&b.rel));
    let site = Site { dirs, files, rules };
    if !site.has("index.html") {
        let path = root.join("index.html");
        return Err(crate::located::Located::new(
            &path,
            None,
            format!(
                "{}: missing; every site needs an index.html at the top of the site directory",
                path.display()
            ),
        )
        .into());
    }
    Ok(site)
}

/// Would a file at `rel` (relative to the site directory) be served, by the dotfile and ignore
/// rules? (`.sitebuildignore` itself is not served but changes what is.)
pub(crate) fn is_served(rel: &str, ignore: &Gitignore) -> bool {
    !is_hidden(rel) && !ignore.matched_path_or_any_parents(rel, false).is_ignore()
}

/// Everything besides the files that changes what the image serves.
#[derive(Debug, Clone)]
pub(crate) struct FingerprintInputs<'a> {
    pub(crate) base_image: &'a str,
    pub(crate) nginx_conf: &'a str,
    pub(crate) dockerfile: &'a str,
    pub(crate) precompress_min_size: u64,
    /// `.br` siblings too (they are not in `nginx_conf` when an override template ignores them).
    pub(crate) brotli: bool,
}

/// Read every file once and record its sha256 (errors name the file).
pub(crate) fn hash_files(site: &mut Site) -> Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    for f in site.files.iter_mut().chain(site.rules.iter_mut()) {
        let mut h = Sha256::new();
        let mut file = std::fs::File::open(&f.abs)
            .with_context(|| format!("{}: cannot read (check its permissions)", f.abs.display()))?;
        let mut n_total = 0u64;
        loop {
            let n = file
                .read(&mut buf)
                .with_context(|| format!("{}: read failed", f.abs.display()))?;
            if n == 0 {
                break;
            }
            n_total += n as u64;
            h.update(&buf[..n]);
        }
        if n_total != f.size {
            bail!(
                "{}: changed while being read ({} bytes, then {}); try again",
                f.abs.display(),
                f.size,
                n_total
            );
        }
        f.sha256 = Some(h.finalize().into());
    }
    Ok(())
}

/// Content fingerprint (hex sha256) over the tool version, the base image reference, the
/// rendered config and Dockerfile, and every file's path, mode and bytes.
/// Call [`hash_files`] first.
pub(crate) fn fingerprint(site: &Site, inputs: &FingerprintInputs<'_>) -> String {
    let mut h = Sha256::new();
    h.update(format!(
        "sitebuild-fingerprint v1\0tool {}\0",
        crate::VERSION
    ));
    h.update(format!("base {}\0", inputs.base_image));
    h.update(format!("precompress {}\0", inputs.precompress_min_size));
    if inputs.brotli {
        h.update("brotli\0");
    }
    for (label, text) in [
        ("nginx.conf", inputs.nginx_conf),
        ("Dockerfile", inputs.dockerfile),
    ] {
        h.update(format!("{label} {}\0", text.len()));
        h.update(text.as_bytes());
    }
    for f in &site.files {
        let digest = f.sha256.expect("hash_files runs before fingerprint");
        h.update(format!("file {}\0{:o}\0{}\0", f.rel, f.mode, f.size));
        h.update(digest);
    }
    // Not served, but their text is the rules (a comment-only edit changes the fingerprint too).
    for f in &site.rules {
        let digest = f.sha256.expect("hash_files runs before fingerprint");
        h.update(format!("rules {}\0{}\0", f.rel, f.size));
        h.update(digest);
    }
    hex::encode(h.finalize())
}

/// The short form used in tags and messages.
pub(crate) fn short(fingerprint: &str) -> &str {
    &fingerprint[..fingerprint.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn site_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (rel, body) in files {
            let p = dir.path().join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, body).unwrap();
        }
        dir
    }

    fn rels(site: &Site) -> Vec<&str> {
        site.files.iter().map(|f| f.rel.as_str()).collect()
    }

    const INPUTS: FingerprintInputs<'static> = FingerprintInputs {
        base_image: "nginx:1",
        nginx_conf: "conf",
        dockerfile: "FROM x",
        precompress_min_size: 1024,
        brotli: false,
    };

    #[test]
    fn scan_sorted_and_hides_dotfiles() {
        let d = site_with(&[
            ("index.html", "hi"),
            ("b/z.css", "z"),
            ("a.txt", "a"),
            (".env", "SECRET=1"),
            (".git/config", "x"),
            ("sub/.hidden", "x"),
            (".well-known/security.txt", "x"),
            ("a-b.txt", "x"),
        ]);
        let site = scan(d.path()).unwrap();
        assert_eq!(
            rels(&site),
            [
                ".well-known/security.txt",
                "a-b.txt",
                "a.txt",
                "b/z.css",
                "index.html"
            ]
        );
        assert_eq!(site.dirs, [".well-known", "b"], "sub/ holds only a dotfile");
    }

    #[test]
    fn sitebuildignore_rules() {
        let d = site_with(&[
            ("index.html", "hi"),
            (".sitebuildignore", "*.psd\ndrafts/\n!keep.psd\n"),
            ("art.psd", "x"),
            ("keep.psd", "x"),
            ("drafts/post.html", "x"),
            ("posts/drafts/x.html", "x"),
        ]);
        let site = scan(d.path()).unwrap();
        assert_eq!(rels(&site), ["index.html", "keep.psd"]);
    }

    #[test]
    fn missing_index_and_dir() {
        let d = site_with(&[("about.html", "x")]);
        let e = format!("{:#}", scan(d.path()).unwrap_err());
        assert!(e.contains("index.html") && e.contains("missing"), "{e}");
        let e = format!("{:#}", scan(&d.path().join("nope")).unwrap_err());
        assert!(e.contains("does not exist"), "{e}");
    }

    #[test]
    fn symlinks_inside_ok_outside_refused() {
        let d = site_with(&[("index.html", "hi"), ("real/a.txt", "a")]);
        std::os::unix::fs::symlink("real/a.txt", d.path().join("link.txt")).unwrap();
        std::os::unix::fs::symlink("real", d.path().join("linkdir")).unwrap();
        let site = scan(d.path()).unwrap();
        assert_eq!(
            rels(&site),
            ["index.html", "link.txt", "linkdir/a.txt", "real/a.txt"]
        );
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("passwd")).unwrap();
        let e = format!("{:#}", scan(d.path()).unwrap_err());
        assert!(
            e.contains("passwd") && e.contains("outside the site"),
            "{e}"
        );
    }

    #[test]
    fn broken_symlink_and_non_utf8_refused() {
        use std::os::unix::ffi::OsStrExt;
        let d = site_with(&[("index.html", "hi")]);
        std::os::unix::fs::symlink("nowhere", d.path().join("dangling")).unwrap();
        let e = format!("{:#}", scan(d.path()).unwrap_err());
        assert!(e.contains("dangling"), "{e}");
        fs::remove_file(d.path().join("dangling")).unwrap();
        let bad = std::ffi::OsStr::from_bytes(b"caf\xe9.html");
        fs::write(d.path().join(bad), "x").unwrap();
        let e = format!("{:#}", scan(d.path()).unwrap_err());
        assert!(e.contains("not valid UTF-8"), "{e}");
    }

    #[test]
    fn rule_files_are_fingerprinted_not_served() {
        let d = site_with(&[
            ("index.html", "hi"),
            ("_redirects", "/a /b\n"),
            ("_headers", "/*\n  X-A: 1\n"),
            ("docs/_redirects", "served: only the top ones are rules"),
            ("docs/404.html", "nf"),
            (".sitebuildignore", "_headers\n"),
        ]);
        let fp = || {
            let mut site = scan(d.path()).unwrap();
            hash_files(&mut site).unwrap();
            (fingerprint(&site, &INPUTS), site)
        };
        let (base, site) = fp();
        assert_eq!(
            rels(&site),
            ["docs/404.html", "docs/_redirects", "index.html"]
        );
        let rules: Vec<&str> = site.rules.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(
            rules,
            ["_headers", "_redirects"],
            "ignore rules do not apply"
        );
        assert_eq!(site.not_found_pages(), ["docs/404.html"]);
        // A comment is not in the rendered config, but it changes the fingerprint.
        fs::write(d.path().join("_redirects"), "# moved\n/a /b\n").unwrap();
        let (after_redirects, _) = fp();
        assert_ne!(base, after_redirects);
        fs::write(d.path().join("_headers"), "/*\n  X-A: 2\n").unwrap();
        let (after_headers, _) = fp();
        assert_ne!(after_redirects, after_headers);
        fs::remove_file(d.path().join("_headers")).unwrap();
        assert_ne!(after_headers, fp().0);
    }

    #[test]
    fn fingerprint_stable_and_sensitive() {
        let d = site_with(&[("index.html", "hi"), ("a.css", "body{}")]);
        let fp = |inputs: &FingerprintInputs<'_>| {
            let mut site = scan(d.path()).unwrap();
            hash_files(&mut site).unwrap();
            fingerprint(&site, inputs)
        };
        let base = fp(&INPUTS);
        assert_eq!(base, fp(&INPUTS), "same input, same fingerprint");
        assert_eq!(base.len(), 64);

        let mut changed = vec![
            fp(&FingerprintInputs {
                base_image: "nginx:2",
                ..INPUTS
            }),
            fp(&FingerprintInputs {
                nginx_conf: "conf2",
                ..INPUTS
            }),
            fp(&FingerprintInputs {
                dockerfile: "FROM y",
                ..INPUTS
            }),
            fp(&FingerprintInputs {
                precompress_min_size: 1,
                ..INPUTS
            }),
            fp(&FingerprintInputs {
                brotli: true,
                ..INPUTS
            }),
        ];
        // bytes
        fs::write(d.path().join("a.css"), "body{ }").unwrap();
        changed.push(fp(&INPUTS));
        // mode
        fs::set_permissions(d.path().join("a.css"), fs::Permissions::from_mode(0o755)).unwrap();
        changed.push(fp(&INPUTS));
        // path
        fs::rename(d.path().join("a.css"), d.path().join("b.css")).unwrap();
        changed.push(fp(&INPUTS));
        for (i, c) in changed.iter().enumerate() {
            assert_ne!(&base, c, "change {i} must change the fingerprint");
        }
        let mut uniq = changed.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), changed.len());
    }
}
