//! The `.gz` and `.br` siblings and their on-disk cache.
//!
//! libdeflate at level 12 (about 3 MB/s per core) and brotli at quality 11 are the slow part of
//! a build, and most builds change a handful of files. So the compressed bytes of each file are
//! kept in a cache directory (`$XDG_CACHE_HOME/sitebuild/precompressed`, else
//! `~/.cache/sitebuild/precompressed`), keyed by the sha256 of the content (the scan computes it
//! anyway), the algorithm, the level and sitebuild's version: a file whose bytes did not change
//! is never compressed twice.
//!
//! An entry is `MAGIC`, the sha256 of the compressed bytes, then the compressed bytes. Reading
//! verifies that checksum: a truncated or corrupted entry is a miss (deleted, then compressed
//! and written again), so the build output is the same with a cold, a warm or a damaged cache.
//! Entries are written to a temp file in the same directory and renamed: two sitebuild
//! processes writing the same entry each rename a complete file. A hit touches the entry's
//! mtime; [`Cache::prune`] removes the least recently used entries beyond the size bound.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::site::SiteFile;

/// libdeflate's level for `.gz` siblings of files up to [`BEST_LEVEL_MAX_SIZE`]: its best. On
/// two 200 KB JavaScript files level 12 was 9 % and 3 % smaller than `gzip -9` (level 9: 5.5 %
/// smaller and 0.5 % larger), at about 3 MB/s per core against 20 MB/s.
pub(crate) const GZIP_LEVEL: i32 = 12;

/// Bigger files use level 9, so a site with large text files still builds in seconds.
pub(crate) const BEST_LEVEL_MAX_SIZE: u64 = 256 * 1024;

/// Default bound of the cache directory (`cache_max_size` in `config/keys.rs`; a test checks
/// they agree).
#[cfg(test)]
pub(crate) const DEFAULT_MAX_BYTES: u64 = 512 * 1024 * 1024;

/// brotli's quality for `.br` siblings of files up to [`BROTLI_BEST_MAX_SIZE`]: its best. On
/// 1 MiB of generated JavaScript (`tests::measure`): quality 11 was 13 % smaller than
/// libdeflate 12 at 0.16 MB/s per core, 10 was 9 % smaller at 0.39 MB/s, 9 about the same size
/// at 1.9 MB/s (libdeflate 12: 2.2 MB/s).
pub(crate) const BROTLI_QUALITY: i32 = 11;

/// Files up to this size get quality 11 (at most ~0.4 s each), up to
/// [`BROTLI_GOOD_MAX_SIZE`] quality 10, bigger ones 9.
pub(crate) const BROTLI_BEST_MAX_SIZE: u64 = 64 * 1024;

/// See [`BROTLI_BEST_MAX_SIZE`].
pub(crate) const BROTLI_GOOD_MAX_SIZE: u64 = 1024 * 1024;

/// A sibling's format. Its algorithm name is part of every cache key; sitebuild's version
/// stands for the libdeflate and brotli versions it was built with (a dependency bump ships as
/// a new version).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Codec {
    /// `.gz`: libdeflate, served by `gzip_static`.
    Gzip,
    /// `.br`: the `brotli` crate, served by `brotli_static` (when the base has the module).
    Brotli,
}

impl Codec {
    /// The sibling's file name suffix.
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Codec::Gzip => ".gz",
            Codec::Brotli => ".br",
        }
    }

    fn algorithm(self) -> &'static str {
        match self {
            Codec::Gzip => "libdeflate-gzip",
            Codec::Brotli => "brotli",
        }
    }

    /// The level (gzip) or quality (brotli) a file of `size` bytes is compressed with: the
    /// best for small files, then ones that keep large files fast.
    pub(crate) fn level_for(self, size: u64) -> i32 {
        match self {
            Codec::Gzip => level_for(size),
            Codec::Brotli if size <= BROTLI_BEST_MAX_SIZE => BROTLI_QUALITY,
            Codec::Brotli if size <= BROTLI_GOOD_MAX_SIZE => 10,
            Codec::Brotli => 9,
        }
    }

    /// Compress `data` at `level`; the same bytes give the same output.
    pub(crate) fn compress(self, data: &[u8], level: i32) -> Result<Vec<u8>> {
        match self {
            Codec::Gzip => gzip(data, level),
            Codec::Brotli => brotli(data, level),
        }
    }
}

/// First bytes of every entry (format version 1).
const MAGIC: &[u8; 8] = b"SBGZ\x01\0\0\0";

/// The level a file of `size` bytes is compressed with.
pub(crate) fn level_for(size: u64) -> i32 {
    if size <= BEST_LEVEL_MAX_SIZE {
        GZIP_LEVEL
    } else {
        9
    }
}

/// gzip `data` with libdeflate. The header has no name and mtime 0: the same bytes give the
/// same `.gz`.
pub(crate) fn gzip(data: &[u8], level: i32) -> Result<Vec<u8>> {
    let level = libdeflater::CompressionLvl::new(level)
        .map_err(|e| anyhow::anyhow!("invalid compression level {level}: {e:?}"))?;
    let mut compressor = libdeflater::Compressor::new(level);
    let mut out = vec![0u8; compressor.gzip_compress_bound(data.len())];
    let n = compressor
        .gzip_compress(data, &mut out)
        .map_err(|e| anyhow::anyhow!("cannot compress: {e:?}"))?;
    out.truncate(n);
    Ok(out)
}

/// brotli `data` at `quality` (window 2^22, the encoder's default; no metadata: the same
/// bytes give the same `.br`).
pub(crate) fn brotli(data: &[u8], quality: i32) -> Result<Vec<u8>> {
    let params = ::brotli::enc::BrotliEncoderParams {
        quality,
        lgwin: 22,
        size_hint: data.len(),
        ..Default::default()
    };
    let mut out = Vec::with_capacity(data.len() / 3 + 64);
    ::brotli::BrotliCompress(&mut &data[..], &mut out, &params)
        .map_err(|e| anyhow::anyhow!("cannot compress with brotli: {e}"))?;
    Ok(out)
}

/// The `.gz` sibling of a site file (see [`compressed_file`]).
#[cfg(test)]
pub(crate) fn gzip_file(f: &SiteFile, cache: Option<&Cache>) -> Result<Vec<u8>> {
    compressed_file(f, Codec::Gzip, cache)
}

/// The `codec` sibling of a site file: from `cache` when it holds the file's content, else
/// compressed (and stored in `cache`).
pub(crate) fn compressed_file(
    f: &SiteFile,
    codec: Codec,
    cache: Option<&Cache>,
) -> Result<Vec<u8>> {
    let level = codec.level_for(f.size);
    let (Some(cache), Some(sha)) = (cache, f.sha256) else {
        return codec.compress(&read(f)?, level);
    };
    if let Some(gz) = cache.get_codec(&sha, codec, level) {
        return Ok(gz);
    }
    let data = read(f)?;
    let gz = codec
        .compress(&data, level)
        .with_context(|| f.abs.display().to_string())?;
    // Only bytes that match the scanned hash go under that hash: a file edited since the scan
    // must not poison the cache (the build itself fails on the size check or gets a new
    // fingerprint next time).
    if <[u8; 32]>::from(Sha256::digest(&data)) == sha {
        // A cache that cannot be written (read-only home, full disk) costs speed, not the build.
        let _ = cache.put_codec(&sha, codec, level, &gz);
    }
    Ok(gz)
}

fn read(f: &SiteFile) -> Result<Vec<u8>> {
    let mut data = std::fs::read(&f.abs)
        .with_context(|| format!("{}: cannot read (check its permissions)", f.abs.display()))?;
    data.truncate(f.size as usize);
    Ok(data)
}

/// sitebuild's cache directory: `$XDG_CACHE_HOME/sitebuild`, else `$HOME/.cache/sitebuild`;
/// None when neither variable is set.
pub(crate) fn cache_root() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty() && Path::new(v).is_absolute())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(base.join("sitebuild"))
}

/// The precompression cache: one directory, one file per (content, codec, level).
#[derive(Debug, Clone)]
pub(crate) struct Cache {
    dir: PathBuf,
    max_bytes: u64,
}

impl Cache {
    /// The cache at `dir` (created on the first write), bounded to `max_bytes`.
    pub(crate) fn at(dir: impl Into<PathBuf>, max_bytes: u64) -> Self {
        Cache {
            dir: dir.into(),
            max_bytes,
        }
    }

    /// The user's cache: `$XDG_CACHE_HOME/sitebuild/precompressed`, else
    /// `$HOME/.cache/sitebuild/precompressed`; None when neither variable is set.
    pub(crate) fn user(max_bytes: u64) -> Option<Self> {
        Some(Self::at(cache_root()?.join("precompressed"), max_bytes))
    }

    fn path(&self, sha: &[u8; 32], codec: Codec, level: i32) -> PathBuf {
        let mut key = Sha256::new();
        key.update(sha);
        key.update(format!(
            "\0{}\0{level}\0{}",
            codec.algorithm(),
            crate::VERSION
        ));
        let name = hex::encode(key.finalize());
        self.dir
            .join(&name[..2])
            .join(format!("{name}{}", codec.suffix()))
    }

    /// The gzip bytes of the content `sha` at `level` (see [`Cache::get_codec`]).
    #[cfg(test)]
    pub(crate) fn get(&self, sha: &[u8; 32], level: i32) -> Option<Vec<u8>> {
        self.get_codec(sha, Codec::Gzip, level)
    }

    /// Store gzip bytes (see [`Cache::put_codec`]).
    #[cfg(test)]
    pub(crate) fn put(&self, sha: &[u8; 32], level: i32, gz: &[u8]) -> Result<()> {
        self.put_codec(sha, Codec::Gzip, level, gz)
    }

    /// The `codec` bytes of the content `sha` at `level`, if an intact entry holds them.
    /// A damaged entry is removed (and is a miss).
    pub(crate) fn get_codec(&self, sha: &[u8; 32], codec: Codec, level: i32) -> Option<Vec<u8>> {
        let path = self.path(sha, codec, level);
        let bytes = std::fs::read(&path).ok()?;
        if let Some(gz) = verify(&bytes) {
            let gz = gz.to_vec();
            // LRU: the mtime is the last use.
            if let Ok(f) = std::fs::File::options().append(true).open(&path) {
                let _ = f.set_modified(SystemTime::now());
            }
            Some(gz)
        } else {
            let _ = std::fs::remove_file(&path);
            None
        }
    }

    /// Store `gz` as the `codec` bytes of content `sha` at `level` (temp file + rename).
    pub(crate) fn put_codec(
        &self,
        sha: &[u8; 32],
        codec: Codec,
        level: i32,
        gz: &[u8],
    ) -> Result<()> {
        let path = self.path(sha, codec, level);
        let parent = path.parent().expect("entries live in a subdirectory");
        std::fs::create_dir_all(parent)
            .with_context(|| format!("{}: cannot create the cache directory", parent.display()))?;
        let mut tmp = tempfile_in(parent)?;
        let result = (|| -> Result<()> {
            tmp.1.write_all(MAGIC)?;
            tmp.1.write_all(&Sha256::digest(gz))?;
            tmp.1.write_all(gz)?;
            tmp.1.flush()?;
            std::fs::rename(&tmp.0, &path)?;
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp.0);
        }
        result.with_context(|| format!("{}: cannot write the cache entry", path.display()))
    }

    /// Remove the least recently used entries (oldest mtime first) until the cache holds at
    /// most `max_bytes`; also stale temp files. Returns the bytes removed.
    pub(crate) fn prune(&self) -> u64 {
        let mut entries: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
        let mut total = 0u64;
        let Ok(subdirs) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let hour_ago = SystemTime::now() - std::time::Duration::from_hours(1);
        for sub in subdirs.flatten() {
            let Ok(files) = std::fs::read_dir(sub.path()) else {
                continue;
            };
            for e in files.flatten() {
                let Ok(meta) = e.metadata() else { continue };
                let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                let is_tmp = e.file_name().to_string_lossy().starts_with(".tmp-");
                if is_tmp {
                    // A writer that died; a live one renames within milliseconds.
                    if mtime < hour_ago {
                        let _ = std::fs::remove_file(e.path());
                    }
                    continue;
                }
                total += meta.len();
                entries.push((mtime, meta.len(), e.path()));
            }
        }
        if total <= self.max_bytes {
            return 0;
        }
        entries.sort();
        let mut removed = 0u64;
        for (_, len, path) in entries {
            if total - removed <= self.max_bytes {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                removed += len;
            }
        }
        removed
    }
}

/// The compressed bytes of an entry whose header and checksum are intact.
fn verify(entry: &[u8]) -> Option<&[u8]> {
    let rest = entry.strip_prefix(MAGIC.as_slice())?;
    if rest.len() < 32 {
        return None;
    }
    let (sum, gz) = rest.split_at(32);
    (Sha256::digest(gz).as_slice() == sum).then_some(gz)
}

/// A new temp file in `dir` (unique per process, thread and call).
fn tempfile_in(dir: &Path) -> Result<(PathBuf, std::fs::File)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    for _ in 0..16 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = dir.join(format!(".tmp-{}-{n}-{nanos}", std::process::id()));
        match std::fs::File::options()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(e).with_context(|| format!("{}: cannot write", dir.display()));
            }
        }
    }
    bail!("{}: cannot create a temp file", dir.display())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn sha(data: &[u8]) -> [u8; 32] {
        Sha256::digest(data).into()
    }

    fn site_file(dir: &Path, name: &str, data: &[u8]) -> SiteFile {
        let abs = dir.join(name);
        fs::write(&abs, data).unwrap();
        SiteFile {
            rel: name.to_string(),
            abs,
            mode: 0o644,
            size: data.len() as u64,
            sha256: Some(sha(data)),
        }
    }

    #[test]
    fn miss_then_hit_gives_the_same_bytes() {
        let site = tempfile::tempdir().unwrap();
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(cache_dir.path(), DEFAULT_MAX_BYTES);
        let data = "body { color: red }\n".repeat(300);
        let f = site_file(site.path(), "a.css", data.as_bytes());
        let cold = gzip_file(&f, None).unwrap();
        let sha = f.sha256.unwrap();
        assert!(cache.get(&sha, GZIP_LEVEL).is_none());
        assert_eq!(gzip_file(&f, Some(&cache)).unwrap(), cold);
        assert_eq!(cache.get(&sha, GZIP_LEVEL).unwrap(), cold);
        // A hit does not read the file: prove it by removing the file.
        fs::remove_file(&f.abs).unwrap();
        assert_eq!(gzip_file(&f, Some(&cache)).unwrap(), cold);
        // Another level is another entry.
        assert!(cache.get(&sha, 9).is_none());
    }

    #[test]
    fn corrupt_entry_is_a_miss_and_rebuilt() {
        let site = tempfile::tempdir().unwrap();
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(cache_dir.path(), DEFAULT_MAX_BYTES);
        let f = site_file(site.path(), "a.js", "let x = 1;\n".repeat(500).as_bytes());
        let cold = gzip_file(&f, None).unwrap();
        gzip_file(&f, Some(&cache)).unwrap();
        let path = cache.path(&f.sha256.unwrap(), Codec::Gzip, GZIP_LEVEL);
        for damage in [
            |b: &mut Vec<u8>| {
                let n = b.len();
                b[n - 5] ^= 0xff;
            },
            |b: &mut Vec<u8>| b.truncate(20),
            |b: &mut Vec<u8>| b[0] = b'X',
        ] {
            let mut bytes = fs::read(&path).unwrap();
            damage(&mut bytes);
            fs::write(&path, &bytes).unwrap();
            assert!(cache.get(&f.sha256.unwrap(), GZIP_LEVEL).is_none());
            assert!(!path.exists(), "a damaged entry is removed");
            assert_eq!(gzip_file(&f, Some(&cache)).unwrap(), cold);
            assert_eq!(cache.get(&f.sha256.unwrap(), GZIP_LEVEL).unwrap(), cold);
        }
    }

    #[test]
    fn file_changed_since_scan_is_not_cached() {
        let site = tempfile::tempdir().unwrap();
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(cache_dir.path(), DEFAULT_MAX_BYTES);
        let mut f = site_file(site.path(), "a.txt", "aaaa".repeat(500).as_bytes());
        f.sha256 = Some(sha(b"something else"));
        gzip_file(&f, Some(&cache)).unwrap();
        assert!(cache.get(&f.sha256.unwrap(), GZIP_LEVEL).is_none());
    }

    #[test]
    fn prune_removes_least_recently_used_first() {
        let cache_dir = tempfile::tempdir().unwrap();
        let gz = vec![1u8; 1000];
        let entry = (MAGIC.len() + 32 + gz.len()) as u64;
        let cache = Cache::at(cache_dir.path(), 2 * entry);
        let shas: Vec<[u8; 32]> = (0u8..3).map(|i| sha(&[i])).collect();
        let t0 = SystemTime::now() - std::time::Duration::from_secs(100);
        for (i, s) in shas.iter().enumerate() {
            cache.put(s, GZIP_LEVEL, &gz).unwrap();
            let f = fs::File::options()
                .append(true)
                .open(cache.path(s, Codec::Gzip, GZIP_LEVEL))
                .unwrap();
            f.set_modified(t0 + std::time::Duration::from_secs(i as u64 * 10))
                .unwrap();
        }
        // Using the oldest makes it the most recent.
        assert!(cache.get(&shas[0], GZIP_LEVEL).is_some());
        assert_eq!(cache.prune(), entry);
        assert!(cache.get(&shas[0], GZIP_LEVEL).is_some());
        assert!(
            cache.get(&shas[1], GZIP_LEVEL).is_none(),
            "least recently used"
        );
        assert!(cache.get(&shas[2], GZIP_LEVEL).is_some());
        assert_eq!(cache.prune(), 0);
    }

    #[test]
    fn concurrent_writers_leave_an_intact_entry() {
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(cache_dir.path(), DEFAULT_MAX_BYTES);
        let data = "concurrent ".repeat(2000);
        let s = sha(data.as_bytes());
        let gz = gzip(data.as_bytes(), GZIP_LEVEL).unwrap();
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..20 {
                        cache.put(&s, GZIP_LEVEL, &gz).unwrap();
                        if let Some(got) = cache.get(&s, GZIP_LEVEL) {
                            assert_eq!(got, gz);
                        }
                    }
                });
            }
        });
        assert_eq!(cache.get(&s, GZIP_LEVEL).unwrap(), gz);
        let leftovers = fs::read_dir(cache.path(&s, Codec::Gzip, GZIP_LEVEL).parent().unwrap())
            .unwrap()
            .count();
        assert_eq!(leftovers, 1, "no temp files left behind");
    }

    #[test]
    fn default_bound_matches_the_setting() {
        let key = crate::config::keys::KEYS
            .iter()
            .find(|k| k.name == "cache_max_size")
            .unwrap();
        assert_eq!(key.default, Some(DEFAULT_MAX_BYTES.to_string().as_str()));
    }

    #[test]
    fn entries_live_under_the_cache_dir() {
        let c = Cache::at("/x/sitebuild/precompressed", 1);
        let p = c.path(&sha(b"a"), Codec::Gzip, 12);
        assert!(p.starts_with("/x/sitebuild/precompressed"));
        assert!(p.to_string_lossy().ends_with(".gz"));
        let b = c.path(&sha(b"a"), Codec::Brotli, 11);
        assert!(b.to_string_lossy().ends_with(".br"));
        assert_ne!(p.parent(), None);
    }

    /// Throughput of both encoders on 1 MiB of minified-looking JavaScript (`cargo test --lib
    /// precompress::tests::measure -- --ignored --nocapture`).
    #[test]
    #[ignore = "a measurement, not a check"]
    fn measure() {
        let mut js = String::new();
        let mut i = 0u64;
        while js.len() < 1 << 20 {
            i = i
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            js.push_str(&format!(
                "function f{}(a,b){{return a*{}+b.x{};}}",
                i % 997,
                i % 89,
                i % 13
            ));
        }
        for (codec, level) in [
            (Codec::Gzip, 12),
            (Codec::Gzip, 9),
            (Codec::Brotli, 11),
            (Codec::Brotli, 10),
            (Codec::Brotli, 9),
            (Codec::Brotli, 6),
        ] {
            let t = std::time::Instant::now();
            let out = codec.compress(js.as_bytes(), level).unwrap();
            let s = t.elapsed().as_secs_f64();
            eprintln!(
                "{codec:?} {level}: {} -> {} bytes ({:.1} %), {:.2} MB/s",
                js.len(),
                out.len(),
                100.0 * out.len() as f64 / js.len() as f64,
                js.len() as f64 / s / 1e6
            );
        }
    }

    #[test]
    fn brotli_sibling_round_trips_is_stable_and_cached_apart_from_gzip() {
        let site = tempfile::tempdir().unwrap();
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(cache_dir.path(), DEFAULT_MAX_BYTES);
        let data = "function add(a, b) { return a + b; }\n".repeat(400);
        let f = site_file(site.path(), "app.js", data.as_bytes());
        let cold = compressed_file(&f, Codec::Brotli, None).unwrap();
        assert_eq!(
            cold,
            compressed_file(&f, Codec::Brotli, None).unwrap(),
            "deterministic"
        );
        let mut plain = Vec::new();
        ::brotli::BrotliDecompress(&mut cold.as_slice(), &mut plain).unwrap();
        assert_eq!(plain, data.as_bytes());
        let gz = gzip_file(&f, None).unwrap();
        assert!(
            cold.len() < gz.len(),
            "brotli 11 beats gzip here: {} vs {}",
            cold.len(),
            gz.len()
        );

        let sha = f.sha256.unwrap();
        assert_eq!(
            compressed_file(&f, Codec::Brotli, Some(&cache)).unwrap(),
            cold
        );
        assert_eq!(
            cache
                .get_codec(&sha, Codec::Brotli, BROTLI_QUALITY)
                .unwrap(),
            cold
        );
        assert!(cache.get(&sha, GZIP_LEVEL).is_none(), "one entry per codec");
        fs::remove_file(&f.abs).unwrap();
        assert_eq!(
            compressed_file(&f, Codec::Brotli, Some(&cache)).unwrap(),
            cold,
            "a hit"
        );
    }
}
