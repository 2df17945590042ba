//! Skew protection: a page loaded from version N that asks for one of N's content-hashed assets
//! after N+1 went live still gets it (200, N's bytes).
//!
//! - **Hashed**: a file name that ends in `.` or `-`, 8 or more lowercase hex digits, then one
//!   of the asset extensions of [`HASHED_PATTERN`] (`app.3f2a1c9b.js`, `main-0123abcd.css`):
//!   the names the default config already caches for a year as immutable. The `.gz` and `.br`
//!   siblings of such a file go with it.
//! - **What is kept**: when an image is built, the hashed files of the previous `keep_images - 1`
//!   images of the project (newest first; the images `rollback` keeps) that the new site does
//!   not have are packed into the new image, with their bytes, mode and mtime (so the same
//!   `ETag`). Only each image's *own* files: what it carried itself is listed in its
//!   `/usr/share/sitebuild/carried.txt` and not carried again, so an asset lives exactly as long
//!   as a version that had it is among the kept images.
//! - **Bound**: `skew_max_size` bytes (default 50 MiB; 0 turns it off). Versions are taken
//!   newest first and whole: the first one that does not fit, and every older one, is left out
//!   (`build` says how many).
//! - The fingerprint names the site, not what was carried: an image whose fingerprint exists is
//!   not rebuilt to carry more.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use anyhow::{Context, Result};

use crate::config::Config;
use crate::engine::{ContainerSpec, Engine};
use crate::layout::{IMAGE_DIR, SITE_ROOT};
use crate::naming::{self, Labels, labels};
use crate::site::Site;

/// The default config's pattern for content-hashed names (nginx regex on `$uri`); a unit test
/// checks `nginx/nginx.conf.j2` uses exactly this one and [`is_hashed`] agrees with it.
#[cfg(test)]
pub(crate) const HASHED_PATTERN: &str = r"[.-][0-9a-f]{8,}\.(?:css|js|mjs|svg|png|jpe?g|gif|webp|avif|ico|woff2?|ttf|otf|wasm|map|json)$";

/// The extensions of [`HASHED_PATTERN`], spelled out.
const HASHED_EXTENSIONS: &[&str] = &[
    "css", "js", "mjs", "svg", "png", "jpg", "jpeg", "gif", "webp", "avif", "ico", "woff", "woff2",
    "ttf", "otf", "wasm", "map", "json",
];

/// The list of carried files in an image (`<from short fingerprint> <path>` lines), next to
/// `html/`.
pub(crate) const CARRIED_LIST: &str = "carried.txt";

/// Does the path match [`HASHED_PATTERN`]?
pub(crate) fn is_hashed(rel: &str) -> bool {
    let Some((stem, ext)) = rel.rsplit_once('.') else {
        return false;
    };
    if !HASHED_EXTENSIONS.contains(&ext) {
        return false;
    }
    let hex = stem
        .bytes()
        .rev()
        .take_while(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        .count();
    hex >= 8
        && stem
            .len()
            .checked_sub(hex + 1)
            .is_some_and(|i| matches!(stem.as_bytes()[i], b'.' | b'-'))
}

/// A hashed file, or the `.gz`/`.br` sibling of one.
pub(crate) fn is_hashed_or_sibling(rel: &str) -> bool {
    let base = rel
        .strip_suffix(".gz")
        .or_else(|| rel.strip_suffix(".br"))
        .unwrap_or(rel);
    is_hashed(base)
}

/// A file of an earlier version packed into a new image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Carried {
    /// Path under the site root.
    pub(crate) rel: String,
    pub(crate) mode: u32,
    pub(crate) mtime: u64,
    pub(crate) bytes: Vec<u8>,
    /// Short fingerprint of the version it comes from.
    pub(crate) from: String,
}

/// What a new image carries.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Carry {
    /// Sorted by path.
    pub(crate) files: Vec<Carried>,
    /// Earlier versions that contributed (or had nothing to add).
    pub(crate) versions: usize,
    /// Earlier versions left out by `skew_max_size`.
    pub(crate) left_out: usize,
}

impl Carry {
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes.len() as u64).sum()
    }

    /// `carried.txt`: one `<from> <path>` line per file.
    pub(crate) fn list(&self) -> String {
        self.files
            .iter()
            .map(|f| format!("{} {}\n", f.from, f.rel))
            .collect()
    }
}

/// The paths an image lists in its `carried.txt`.
pub(crate) fn parse_list(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.split_once(' ').map(|(_, rel)| rel.to_string()))
        .collect()
}

/// From the tar of an earlier version's site root (entries `html/<path>`, as the engine's
/// archive endpoint gives them): its own hashed files (not in `carried_before`), that `site`
/// does not have and no newer version gave already (`taken`).
pub(crate) fn own_hashed_files<R: Read>(
    tar: R,
    from: &str,
    carried_before: &BTreeSet<String>,
    site: &Site,
    taken: &BTreeSet<String>,
) -> Result<Vec<Carried>> {
    let mut out = Vec::new();
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries()? {
        let mut entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path()?.to_string_lossy().into_owned();
        let Some(rel) = path.strip_prefix("html/") else {
            continue;
        };
        if !is_hashed_or_sibling(rel)
            || carried_before.contains(rel)
            || site.has(rel)
            || taken.contains(rel)
        {
            continue;
        }
        let mode = entry.header().mode()?;
        let mtime = entry.header().mtime()?;
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes)?;
        out.push(Carried {
            rel: rel.to_string(),
            mode,
            mtime,
            bytes,
            from: from.to_string(),
        });
    }
    Ok(out)
}

/// Newest version first: take whole versions while they fit in `max_bytes`.
pub(crate) fn select(versions: Vec<Vec<Carried>>, max_bytes: u64) -> Carry {
    let mut carry = Carry::default();
    let mut total = 0u64;
    let mut files: BTreeMap<String, Carried> = BTreeMap::new();
    let n = versions.len();
    for (i, version) in versions.into_iter().enumerate() {
        let size: u64 = version.iter().map(|f| f.bytes.len() as u64).sum();
        if total + size > max_bytes {
            carry.left_out = n - i;
            break;
        }
        total += size;
        carry.versions += 1;
        for f in version {
            files.entry(f.rel.clone()).or_insert(f);
        }
    }
    carry.files = files.into_values().collect();
    carry
}

/// What the image of `site` (with `fingerprint`) carries: the own hashed files of the
/// project's previous `keep_images - 1` images (never started containers, one archive read
/// each).
///
/// `files_of(image_id)` names an image's files under the site root when they are known without
/// reading the image (sitebuild's record of the images it made): a version with no hashed file
/// the new site lacks is not read at all (a one-file rebuild of a big site reads nothing).
pub(crate) async fn collect<F>(
    engine: &Engine,
    cfg: &Config,
    fingerprint: &str,
    site: &Site,
    files_of: F,
) -> Result<Carry>
where
    F: Fn(&str) -> Option<Vec<String>>,
{
    if cfg.skew_max_size == 0 || cfg.keep_images < 2 {
        return Ok(Carry::default());
    }
    let mut images = engine
        .images_with_labels(&[(labels::PROJECT, cfg.image_repo())])
        .await?;
    images.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
    images.dedup_by(|a, b| a.id == b.id);
    let earlier: Vec<_> = images
        .into_iter()
        .filter(|i| i.labels.get(labels::FINGERPRINT).map(String::as_str) != Some(fingerprint))
        .filter(|i| i.labels.contains_key(labels::FINGERPRINT))
        .take(cfg.keep_images as usize - 1)
        .collect();
    let mut versions = Vec::new();
    let mut taken = BTreeSet::new();
    for img in earlier {
        let from = crate::site::short(&img.labels[labels::FINGERPRINT]).to_string();
        if files_of(&img.id).is_some_and(|files| {
            !files
                .iter()
                .any(|rel| is_hashed_or_sibling(rel) && !site.has(rel) && !taken.contains(rel))
        }) {
            versions.push(Vec::new());
            continue;
        }
        let files = read_version(engine, cfg, site, &img.id, &from, &taken)
            .await
            .with_context(|| format!("skew protection: cannot read the assets of {from}"))?;
        taken.extend(files.iter().map(|f| f.rel.clone()));
        versions.push(files);
    }
    Ok(select(versions, cfg.skew_max_size))
}

async fn read_version(
    engine: &Engine,
    cfg: &Config,
    site: &Site,
    image: &str,
    from: &str,
    taken: &BTreeSet<String>,
) -> Result<Vec<Carried>> {
    // Held like a build's check container, so a run killed while it exists leaves nothing: the
    // next build or deploy removes it once its holder is gone (`image::remove_stale_checks`).
    let spec = ContainerSpec::new(
        naming::probe_container(&cfg.name),
        image,
        Labels::held(cfg.image_repo()).build(),
    )
    .limits(64, 16)
    .nginx_args(vec!["-v".to_string()]);
    let id = engine.create(&spec).await?;
    let tmp = TempFile::new()?;
    let result = async {
        let list = engine
            .download_file(&id, &format!("{IMAGE_DIR}/{CARRIED_LIST}"))
            .await?
            .map(|b| parse_list(&String::from_utf8_lossy(&b)))
            .unwrap_or_default();
        let mut file = std::fs::File::options().write(true).open(&tmp.0)?;
        if !engine.download_tree(&id, SITE_ROOT, &mut file).await? {
            return Ok(Vec::new());
        }
        let file = std::fs::File::open(&tmp.0)?;
        own_hashed_files(std::io::BufReader::new(file), from, &list, site, taken)
    }
    .await;
    engine.remove(&id).await?;
    result
}

/// A temp file removed on drop.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new() -> Result<TempFile> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "sitebuild-skew-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(TempFile(path))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_names_match_the_nginx_pattern() {
        for yes in [
            "assets/app.3f2a1c9b.css",
            "main-0123abcd.js",
            "a/b/chunk.0123456789abcdef.mjs",
            "font-deadbeef.woff2",
            "x.abcdef01.jpeg",
            "data-12345678.json",
        ] {
            assert!(is_hashed(yes), "{yes}");
        }
        for no in [
            "app.css",
            "app.3f2a1c9.css",      // 7 digits
            "app.3F2A1C9B.css",     // uppercase
            "app_3f2a1c9b.css",     // neither . nor -
            "app.3f2a1c9b.html",    // pages are never hashed
            "app.3f2a1c9b.js.map2", // not an asset extension
            "3f2a1c9b.css",         // nothing before the hash
            "app.3f2a1c9b.css.gz",
        ] {
            assert!(!is_hashed(no), "{no}");
        }
        assert!(is_hashed_or_sibling("app.3f2a1c9b.css.gz"));
        assert!(is_hashed_or_sibling("app.3f2a1c9b.css.br"));
        assert!(!is_hashed_or_sibling("app.css.gz"));
        assert!(
            crate::render::DEFAULT_NGINX_TEMPLATE.contains(&format!("\"~{HASHED_PATTERN}\"")),
            "nginx.conf.j2's immutable map uses HASHED_PATTERN"
        );
    }

    fn carried(rel: &str, size: usize, from: &str) -> Carried {
        Carried {
            rel: rel.into(),
            mode: 0o644,
            mtime: 1,
            bytes: vec![b'x'; size],
            from: from.into(),
        }
    }

    #[test]
    fn select_takes_whole_versions_newest_first_within_the_bound() {
        let v1 = vec![carried("a.11111111.js", 40, "v1")];
        let v2 = vec![
            carried("b.22222222.js", 50, "v2"),
            carried("b.22222222.js.gz", 10, "v2"),
        ];
        let v3 = vec![carried("c.33333333.js", 5, "v3")];
        let all = select(vec![v1.clone(), v2.clone(), v3.clone()], 1000);
        assert_eq!((all.versions, all.left_out, all.bytes()), (3, 0, 105));
        assert_eq!(
            all.list(),
            "v1 a.11111111.js\nv2 b.22222222.js\nv2 b.22222222.js.gz\nv3 c.33333333.js\n"
        );
        // v2 does not fit after v1: v2 and the older v3 are left out.
        let bounded = select(vec![v1, v2, v3], 60);
        assert_eq!((bounded.versions, bounded.left_out), (1, 2));
        assert_eq!(bounded.list(), "v1 a.11111111.js\n");
        assert_eq!(select(Vec::new(), 0), Carry::default());
        assert_eq!(
            parse_list("v1 a.11111111.js\nv2 b/c.22222222.css\n"),
            BTreeSet::from(["a.11111111.js".to_string(), "b/c.22222222.css".to_string()])
        );
    }

    #[test]
    fn own_hashed_files_skip_carried_present_and_taken() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "x").unwrap();
        std::fs::write(dir.path().join("new.44444444.js"), "x").unwrap();
        let site = crate::site::scan(dir.path()).unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        for (path, body) in [
            ("html/index.html", "page"),
            ("html/old.css", "not hashed"),
            ("html/assets/app.11111111.css", "own"),
            ("html/assets/app.11111111.css.gz", "own gz"),
            ("html/assets/was.22222222.css", "carried by that version"),
            ("html/new.44444444.js", "the new site has it"),
            ("html/dup.33333333.js", "a newer version gave it"),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(946_684_900);
            h.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut h, path, body.as_bytes()).unwrap();
        }
        let bytes = tar.into_inner().unwrap();
        let files = own_hashed_files(
            bytes.as_slice(),
            "0123456789ab",
            &BTreeSet::from(["assets/was.22222222.css".to_string()]),
            &site,
            &BTreeSet::from(["dup.33333333.js".to_string()]),
        )
        .unwrap();
        let rels: Vec<&str> = files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(
            rels,
            ["assets/app.11111111.css", "assets/app.11111111.css.gz"]
        );
        assert_eq!(files[0].bytes, b"own");
        assert_eq!((files[0].mode, files[0].mtime), (0o644, 946_684_900));
    }
}
