//! The fast path of `watch`, pure: what changed between two prepared versions, whether the
//! live dev container can take it as a file sync, and the tar that sync copies in.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Result;

use crate::config::{CONFIG_FILE, Config};
use crate::context::{self, ContextSummary};
use crate::image::Prepared;
use crate::precompress::Codec;
use crate::site;

/// How an update went live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LivePath {
    Sync {
        files: usize,
        /// Only these stylesheets changed (tabs swap them instead of reloading).
        css: Option<Vec<String>>,
    },
    Rebuild,
}

/// What changed between two prepared versions, for the fast path.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Delta {
    pub(crate) changed: BTreeSet<String>,
    pub(crate) removed: BTreeSet<String>,
}

/// Files added or modified (bytes or mode) and files removed, from `old` to `new`.
pub(crate) fn delta(old: &Prepared, new: &Prepared) -> Delta {
    let map = |p: &Prepared| -> BTreeMap<String, (Option<[u8; 32]>, u32)> {
        p.site
            .files
            .iter()
            .map(|f| (f.rel.clone(), (f.sha256, f.image_mode())))
            .collect()
    };
    let (a, b) = (map(old), map(new));
    Delta {
        changed: b
            .iter()
            .filter(|(k, v)| a.get(*k) != Some(v))
            .map(|(k, _)| k.clone())
            .collect(),
        removed: a.keys().filter(|k| !b.contains_key(*k)).cloned().collect(),
    }
}

/// Can `new` go live by syncing files into a container that serves `old`? Only when the image
/// would differ in site files alone, nothing was removed, and no `.gz` sibling would have to
/// disappear. A change to `_redirects` or `_headers` is a config change: always a rebuild
/// (even a comment-only one, which changes the fingerprint).
pub(crate) fn can_sync(old: &Prepared, new: &Prepared, d: &Delta) -> bool {
    let same_rules = old.site.rules.len() == new.site.rules.len()
        && old
            .site
            .rules
            .iter()
            .zip(&new.site.rules)
            .all(|(a, b)| a.rel == b.rel && a.sha256 == b.sha256);
    let same_runtime = same_rules
        && old.nginx_conf == new.nginx_conf
        && old.dockerfile == new.dockerfile
        && old.base == new.base
        && old.config.precompress_min_size == new.config.precompress_min_size
        && old.config.name == new.config.name
        && old.config.port == new.config.port
        && old.config.bind == new.config.bind;
    let gz_ok = d.changed.iter().all(|rel| {
        [Codec::Gzip, Codec::Brotli].into_iter().all(|codec| {
            let wants = |p: &Prepared| {
                (codec == Codec::Gzip || p.base.brotli)
                    && p.site
                        .files
                        .iter()
                        .find(|f| &f.rel == rel)
                        .is_some_and(|f| {
                            context::wants_sibling(&p.site, f, p.config.precompress_min_size, codec)
                        })
            };
            !wants(old) || wants(new)
        })
    });
    same_runtime && d.removed.is_empty() && gz_ok && !d.changed.is_empty()
}

/// The tar the fast path copies into the container: exactly the image's entries for `files`.
pub(crate) fn sync_tar(
    p: &Prepared,
    files: &BTreeSet<String>,
) -> Result<(Vec<u8>, ContextSummary)> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut summary = ContextSummary::default();
    let cache = p.config.precompress_cache();
    context::append_site(
        &mut tar,
        &p.site,
        "",
        &context::Siblings {
            min_size: p.config.precompress_min_size,
            brotli: p.base.brotli,
            cache: cache.as_ref(),
        },
        &[],
        |f| files.contains(&f.rel),
        &mut summary,
    )?;
    Ok((tar.into_inner()?, summary))
}

/// Does this nginx config cache open descriptors or lookups (`open_file_cache` on)? Then a file
/// replaced while nginx runs is served stale until a reload. The built-in template renders
/// none for watch's container (`dev`); an override template may still have one.
pub(crate) fn caches_descriptors(conf: &str) -> bool {
    conf.lines().any(|line| {
        let code = line.split('#').next().unwrap_or("");
        let mut words = code.split_whitespace();
        words.next() == Some("open_file_cache")
            && words
                .next()
                .is_some_and(|v| v.trim_end_matches(';') != "off")
    })
}

/// Does a changed path matter to the site? (Dotfiles, paths `ignore` matches, and files outside
/// the site, templates and config do not.) `ignore` is the site's `.sitebuildignore`, read once
/// per burst.
pub(crate) fn is_relevant(
    cfg: &Config,
    ignore: &ignore::gitignore::Gitignore,
    path: &Path,
) -> bool {
    if path == cfg.project_dir.join(CONFIG_FILE) {
        return true;
    }
    if let Ok(rest) = path.strip_prefix(&cfg.templates_dir) {
        return rest.extension().is_some_and(|e| e == "j2");
    }
    if let Ok(rel) = path.strip_prefix(&cfg.site_dir) {
        let rel = rel.to_string_lossy().replace('\\', "/");
        if rel.is_empty() || rel == site::IGNORE_FILE || crate::rules::is_rule_file(Path::new(&rel))
        {
            return true;
        }
        return site::is_served(&rel, ignore);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overrides;
    use crate::image;

    fn prepared(dir: &Path) -> Prepared {
        let cfg = Config::load_with_env(dir, &Overrides::default(), &Default::default()).unwrap();
        image::prepare(&cfg, image::BaseSupport::default()).unwrap()
    }

    #[test]
    fn only_the_development_config_serves_synced_files_without_a_reload() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("site")).unwrap();
        std::fs::write(d.path().join("site/index.html"), "hi").unwrap();
        let p = prepared(d.path());
        assert!(
            caches_descriptors(&p.nginx_conf),
            "images keep open_file_cache"
        );
        let dev = Config {
            dev: true,
            ..p.config.clone()
        };
        let conf = image::render_nginx(&dev, &p.site.not_found_pages(), p.base).unwrap();
        assert!(!caches_descriptors(&conf), "{conf}");
        assert!(!conf.contains("open_file_cache"), "{conf}");
        // Everything else is the image's config.
        let strip = |c: &str| -> String {
            c.lines()
                .filter(|l| !l.contains("open_file_cache") && !l.trim_start().starts_with('#'))
                .filter(|l| !l.trim().is_empty())
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(strip(&conf), strip(&p.nginx_conf));
        assert!(!caches_descriptors(
            "open_file_cache off;\n# open_file_cache max=1;\n"
        ));
        assert!(caches_descriptors(
            "    open_file_cache   max=10 inactive=1s; # x\n"
        ));
    }

    #[test]
    fn rule_files_take_the_rebuild_path() {
        let d = tempfile::tempdir().unwrap();
        let site = d.path().join("site");
        std::fs::create_dir_all(&site).unwrap();
        std::fs::write(site.join("index.html"), "hi").unwrap();
        std::fs::write(site.join("a.css"), "a").unwrap();
        std::fs::write(site.join("_redirects"), "/old /new\n").unwrap();
        let v1 = prepared(d.path());
        assert!(v1.site.files.iter().all(|f| f.rel != "_redirects"));

        std::fs::write(site.join("a.css"), "b").unwrap();
        let v2 = prepared(d.path());
        assert!(can_sync(&v1, &v2, &delta(&v1, &v2)), "a site file: sync");

        // A comment only: the rendered config is the same, the rules file is not.
        std::fs::write(site.join("_redirects"), "/old /new\n# moved\n").unwrap();
        let v3 = prepared(d.path());
        assert_eq!(v2.nginx_conf, v3.nginx_conf);
        assert_ne!(v2.fingerprint, v3.fingerprint);
        assert!(!can_sync(&v2, &v3, &delta(&v2, &v3)));

        std::fs::write(site.join("a.css"), "c").unwrap();
        std::fs::write(site.join("_headers"), "/*\n  X-A: 1\n").unwrap();
        let v4 = prepared(d.path());
        assert!(!can_sync(&v3, &v4, &delta(&v3, &v4)), "_headers added");

        // A base that gained brotli changes every image: never a sync. On a brotli base, a
        // changed stylesheet syncs with both siblings, as the image has them.
        let br = image::BaseSupport { brotli: true };
        std::fs::write(site.join("a.css"), "d { color: red }\n".repeat(200)).unwrap();
        let v5 = prepared(d.path());
        assert!(can_sync(&v4, &v5, &delta(&v4, &v5)), "same base: sync");
        let v5 = v5.with_base(br).unwrap();
        assert!(!can_sync(&v4, &v5, &delta(&v4, &v5)), "brotli appeared");
        std::fs::write(site.join("a.css"), "e { color: red }\n".repeat(200)).unwrap();
        let v6 = prepared(d.path()).with_base(br).unwrap();
        let d56 = delta(&v5, &v6);
        assert!(can_sync(&v5, &v6, &d56));
        let (tar, summary) = sync_tar(&v6, &d56.changed).unwrap();
        assert_eq!(
            (summary.files, summary.gz_files, summary.br_files),
            (1, 1, 1)
        );
        let names: Vec<String> = tar::Archive::new(tar.as_slice())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(names.contains(&"a.css.br".to_string()), "{names:?}");

        let cfg = v4.config.clone();
        let ignore = ignore::gitignore::Gitignore::empty();
        assert!(is_relevant(&cfg, &ignore, &site.join("_headers")));
        assert!(is_relevant(&cfg, &ignore, &site.join("_redirects")));
    }
}
