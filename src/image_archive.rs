//! The image archive sitebuild loads into the engine (`POST /images/load`, the `docker save`
//! format) instead of running a build: `manifest.json`, the image config, and one new layer,
//! the site layer of [`crate::context::write_layer`]. The config lists the base image's layers
//! (and, for an incremental layer, the previous image's site layers) below it; the engine has
//! those chains already and does not read them from the archive (moby's
//! `image/tarexport/load.go` looks each chain up before it opens the layer's file), so the
//! archive holds the new layer only.
//!
//! Also the record of each image's site tree (`$XDG_CACHE_HOME/sitebuild/layers/<image id>`),
//! which the next build diffs against to write only what changed.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::context::LayerTree;
use crate::engine::ImageDetails;
use crate::layout;

/// At most this many site layers on top of the base; the build after that writes the whole
/// site as one layer again. Every layer is one more overlay lower directory that each lookup
/// that misses (`try_files` probes `$uri.html`, `$uri/`, …) walks, and each keeps the old bytes
/// of what later layers replaced on disk and in a push. 8 keeps both small (the base adds one
/// or a few) while a run of one-file edits stays incremental for 7 builds in 8.
pub(crate) const MAX_SITE_LAYERS: usize = 8;

/// `sha256:<hex>` of `bytes`.
pub(crate) fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// A `Write` that hashes and counts what goes through it (the layer's diff ID and size).
pub(crate) struct Hashing<W> {
    inner: W,
    hash: Sha256,
    len: u64,
}

impl<W: Write> Hashing<W> {
    pub(crate) fn new(inner: W) -> Self {
        Hashing {
            inner,
            hash: Sha256::new(),
            len: 0,
        }
    }

    /// The inner writer, `sha256:<hex>` and the byte count.
    pub(crate) fn finish(self) -> (W, String, u64) {
        (
            self.inner,
            format!("sha256:{}", hex(&self.hash.finalize())),
            self.len,
        )
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The runtime settings of a site image (what `layout` says about how nginx runs, plus the
/// labels), on top of the base's config: its `Env`, `WorkingDir`, volumes, healthcheck and
/// labels are kept; user, entrypoint, command and stop signal are sitebuild's; the exposed
/// ports are the base's plus [`layout::CONTAINER_PORT`].
pub(crate) fn runtime_config(base: &Value, labels: &HashMap<String, String>) -> Value {
    let mut config = serde_json::Map::new();
    for key in [
        "Env",
        "WorkingDir",
        "Volumes",
        "Healthcheck",
        "OnBuild",
        "Shell",
    ] {
        if let Some(v) = base.get(key).filter(|v| !v.is_null()) {
            config.insert(key.to_string(), v.clone());
        }
    }
    let mut ports: BTreeMap<String, Value> = base
        .get("ExposedPorts")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    ports.insert(format!("{}/tcp", layout::CONTAINER_PORT), json!({}));
    let mut all_labels: BTreeMap<String, Value> = base
        .get("Labels")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    all_labels.extend(labels.iter().map(|(k, v)| (k.clone(), json!(v))));
    config.insert("User".into(), json!(layout::RUN_AS));
    config.insert("Entrypoint".into(), json!([layout::NGINX]));
    config.insert("Cmd".into(), json!(layout::serve_args()));
    config.insert("StopSignal".into(), json!(layout::STOP_SIGNAL));
    config.insert("ExposedPorts".into(), json!(ports));
    config.insert("Labels".into(), json!(all_labels));
    Value::Object(config)
}

/// The image config JSON: `base`'s platform, [`runtime_config`], and the layers
/// `diff_ids` (bottom first). Its sha256 is the image ID.
pub(crate) fn image_config(
    base: &ImageDetails,
    labels: &HashMap<String, String>,
    created: &str,
    diff_ids: &[String],
) -> Result<Vec<u8>> {
    let mut img = json!({
        "architecture": base.architecture,
        "os": base.os,
        "created": created,
        "config": runtime_config(&base.config, labels),
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    });
    if let Some(v) = &base.variant {
        img["variant"] = json!(v);
    }
    serde_json::to_vec(&img).context("cannot write the image config")
}

/// Write the archive: the new layer (`layer`, `layer_len` bytes, diff ID `layer_diff`), the
/// config and `manifest.json` naming a file for each of `diff_ids` (only the last one's is in
/// the archive). Untagged: sitebuild tags the image after `nginx -t` passed in it.
pub(crate) fn write_archive<W: Write>(
    out: W,
    layer: impl Read,
    layer_len: u64,
    config: &[u8],
    diff_ids: &[String],
) -> Result<()> {
    let Some(layer_diff) = diff_ids.last() else {
        bail!("an image archive needs a layer");
    };
    let file_of = |d: &str| format!("{}/layer.tar", d.trim_start_matches("sha256:"));
    let config_name = format!("{}.json", digest(config).trim_start_matches("sha256:"));
    let manifest = serde_json::to_vec(&json!([{
        "Config": config_name,
        "RepoTags": [],
        "Layers": diff_ids.iter().map(|d| file_of(d)).collect::<Vec<_>>(),
    }]))?;
    let mut tar = tar::Builder::new(out);
    let entry = |kind, len| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_size(len);
        h.set_mtime(layout::FIXED_MTIME);
        h
    };
    let dir = format!("{}/", layer_diff.trim_start_matches("sha256:"));
    tar.append_data(
        &mut entry(tar::EntryType::Directory, 0),
        &dir,
        std::io::empty(),
    )?;
    tar.append_data(
        &mut entry(tar::EntryType::Regular, layer_len),
        file_of(layer_diff),
        layer.take(layer_len),
    )
    .context("cannot write the site layer into the image archive")?;
    tar.append_data(
        &mut entry(tar::EntryType::Regular, config.len() as u64),
        &config_name,
        config,
    )?;
    tar.append_data(
        &mut entry(tar::EntryType::Regular, manifest.len() as u64),
        "manifest.json",
        manifest.as_slice(),
    )?;
    tar.into_inner()?.flush()?;
    Ok(())
}

/// What sitebuild knows about an image it made: its layers (bottom first), how many of them at
/// the top are site layers, and the site tree they hold together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) layers: Vec<String>,
    pub(crate) site_layers: usize,
    pub(crate) tree: LayerTree,
}

const RECORD_HEADER: &str = "sitebuild-layers 1";

/// Records kept (most recent first); older ones are removed when one is written.
const RECORDS_KEPT: usize = 64;

fn records_dir() -> Option<PathBuf> {
    crate::precompress::cache_root().map(|r| r.join("layers"))
}

impl Record {
    fn to_text(&self) -> Option<String> {
        let mut s = format!(
            "{RECORD_HEADER}\nlayers {}\nsite {}\n",
            self.layers.join(" "),
            self.site_layers
        );
        for (path, key) in &self.tree {
            if path.contains(['\n', '\t']) || key.contains(['\n', '\t']) {
                return None; // cannot be written down: the next build is a full one
            }
            s.push_str(key);
            s.push('\t');
            s.push_str(path);
            s.push('\n');
        }
        Some(s)
    }

    fn from_text(text: &str) -> Option<Record> {
        let mut lines = text.split('\n');
        (lines.next()? == RECORD_HEADER).then_some(())?;
        let layers = lines
            .next()?
            .strip_prefix("layers ")?
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let site_layers = lines.next()?.strip_prefix("site ")?.parse().ok()?;
        let mut tree = LayerTree::new();
        for line in lines.filter(|l| !l.is_empty()) {
            let (key, path) = line.split_once('\t')?;
            tree.insert(path.to_string(), key.to_string());
        }
        Some(Record {
            layers,
            site_layers,
            tree,
        })
    }

    /// The record of image `image_id`, if sitebuild wrote one on this machine and it is whole.
    pub(crate) fn read(image_id: &str) -> Option<Record> {
        let path = records_dir()?.join(image_id.trim_start_matches("sha256:"));
        Record::from_text(&std::fs::read_to_string(path).ok()?)
    }

    /// Keep the record of image `image_id` (a failure costs a full layer next time, not the
    /// build).
    pub(crate) fn write(&self, image_id: &str) {
        let (Some(dir), Some(text)) = (records_dir(), self.to_text()) else {
            return;
        };
        let _ = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            let tmp = dir.join(format!(".tmp-{}", std::process::id()));
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, dir.join(image_id.trim_start_matches("sha256:")))?;
            let mut all: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&dir)?
                .filter_map(std::result::Result::ok)
                .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
                .collect();
            all.sort_by_key(|e| std::cmp::Reverse(e.0));
            for (_, old) in all.into_iter().skip(RECORDS_KEPT) {
                let _ = std::fs::remove_file(old);
            }
            Ok(())
        })();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> ImageDetails {
        ImageDetails {
            id: "sha256:b".into(),
            layers: vec!["sha256:aaaa".into()],
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
            config: json!({
                "Env": ["PATH=/usr/bin"],
                "Hostname": "builder",
                "ExposedPorts": {"80/tcp": {}},
                "Labels": {"base.label": "1", "dev.sitebuild.fingerprint": "old"},
                "Cmd": ["nginx"],
                "User": "",
            }),
        }
    }

    #[test]
    fn config_keeps_the_base_env_and_sets_the_runtime() {
        let labels = HashMap::from([("dev.sitebuild.fingerprint".to_string(), "new".to_string())]);
        let diff = vec!["sha256:aaaa".to_string(), "sha256:bbbb".to_string()];
        let bytes = image_config(&base(), &labels, "2000-01-01T00:00:00Z", &diff).unwrap();
        assert_eq!(
            bytes,
            image_config(&base(), &labels, "2000-01-01T00:00:00Z", &diff).unwrap(),
            "deterministic"
        );
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        let c = &v["config"];
        assert_eq!(c["Env"], json!(["PATH=/usr/bin"]));
        assert_eq!(c["User"], json!(layout::RUN_AS));
        assert_eq!(c["Entrypoint"], json!([layout::NGINX]));
        assert_eq!(c["Cmd"], json!(layout::serve_args()));
        assert_eq!(c["StopSignal"], json!("SIGQUIT"));
        assert_eq!(c["ExposedPorts"], json!({"80/tcp": {}, "8080/tcp": {}}));
        assert_eq!(c["Labels"]["base.label"], json!("1"));
        assert_eq!(c["Labels"]["dev.sitebuild.fingerprint"], json!("new"));
        assert!(c.get("Hostname").is_none());
        assert_eq!(v["rootfs"]["diff_ids"], json!(diff));
        assert_eq!(v["os"], json!("linux"));
    }

    #[test]
    fn archive_holds_the_new_layer_config_and_manifest_only() {
        let layer = b"pretend layer".to_vec();
        let diff = vec!["sha256:aaaa".to_string(), digest(&layer)];
        let config = b"{}".to_vec();
        let mut out = Vec::new();
        write_archive(
            &mut out,
            layer.as_slice(),
            layer.len() as u64,
            &config,
            &diff,
        )
        .unwrap();
        let mut names = Vec::new();
        let mut manifest = Vec::new();
        for e in tar::Archive::new(out.as_slice()).entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            if name == "manifest.json" {
                e.read_to_end(&mut manifest).unwrap();
            }
            names.push(name);
        }
        let layer_hex = diff[1].trim_start_matches("sha256:");
        let config_name = format!("{}.json", digest(&config).trim_start_matches("sha256:"));
        assert_eq!(
            names,
            [
                format!("{layer_hex}/"),
                format!("{layer_hex}/layer.tar"),
                config_name.clone(),
                "manifest.json".to_string()
            ]
        );
        let m: Value = serde_json::from_slice(&manifest).unwrap();
        assert_eq!(m[0]["Config"], json!(config_name));
        assert_eq!(
            m[0]["Layers"],
            json!(["aaaa/layer.tar", format!("{layer_hex}/layer.tar")])
        );
        assert_eq!(m[0]["RepoTags"], json!([]));
    }

    #[test]
    fn records_round_trip_and_refuse_damage() {
        let r = Record {
            layers: vec!["sha256:a".into(), "sha256:b".into()],
            site_layers: 1,
            tree: LayerTree::from([
                ("usr/".to_string(), "d 755 946684800".to_string()),
                ("usr/x y".to_string(), "f ab 644 3".to_string()),
            ]),
        };
        let text = r.to_text().unwrap();
        assert_eq!(Record::from_text(&text), Some(r.clone()));
        assert_eq!(
            Record::from_text(&text.replace("sitebuild-layers 1", "x")),
            None
        );
        assert_eq!(Record::from_text(&text.replace("site 1", "site x")), None);
        let mut bad = r;
        bad.tree.insert("a\nb".into(), "k".into());
        assert_eq!(bad.to_text(), None);
    }
}
