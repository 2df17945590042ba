//! The renewer: a small container next to a shared edge with `tls = "acme"` projects that renews
//! their certificates when sitebuild is not run for months, without the Docker socket.
//!
//! ```text
//! sitebuild-edge-<port>-renewer   image sitebuild/renewer:<sha256 of this binary, 16 hex>
//!   runs `sitebuild renewer --dir /etc/sitebuild-edge` (hidden subcommand, renew_daemon.rs)
//!   the edge's volume at /etc/sitebuild-edge (account, certificates, answers, renew.json)
//!   pid namespace of the edge (same uid 101 as nginx: SIGHUP to nginx's master, no capability)
//!   network `bridge` (reaches the ACME server), no socket, hardened like every container
//! ```
//!
//! Its image is made from the running binary, FROM scratch: `/proc/self/exe`, the shared
//! objects it has mapped (`/proc/self/maps`) and its ELF interpreter, the host's CA bundle
//! (instant-acme's HTTPS client reads the native roots), a passwd/group with uid 101; imported
//! through the engine once per binary. An engine that is not Linux on this machine's
//! architecture cannot run this binary: no renewer, and deploy says to schedule
//! `sitebuild renew` (README "Renewal").
//!
//! Lifecycle: made (or replaced when its edge, image or arguments changed: the `edge` and `spec`
//! labels) by every deploy of an acme project, found by label (a killed sitebuild converges at
//! the next deploy), removed with the edge.

use std::collections::BTreeSet;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::edge::{EDGE_DIR, Edge};
use crate::config::{Config, Tls};
use crate::engine::{ContainerInfo, ContainerSpec, Engine};
use crate::naming::{self, Labels, labels, roles};
use crate::ui::Ui;

/// The repository of renewer images (tag: the binary's hash).
pub(crate) const IMAGE_REPO: &str = "sitebuild/renewer";
/// Where the binary is in the renewer's image.
const BIN: &str = "/sitebuild";
/// Seconds between the renewer's checks (default 12 h); for tests and impatient operators.
pub(crate) const INTERVAL_ENV: &str = "SITEBUILD_RENEWER_INTERVAL";
/// `1`: the renewer renews at every check, due or not (tests).
pub(crate) const FORCE_ENV: &str = "SITEBUILD_RENEWER_FORCE";
/// What the renewer needs to renew a project, written by deploy (`projects/<p>/renew.json`).
pub(crate) const SPEC_FILE: &str = "renew.json";
/// `acme_root`, copied into the volume for the renewer.
const ROOT_FILE: &str = "acme-root.pem";

/// `renew.json`: the project's ACME settings as the renewer reads them.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct RenewSpec {
    pub(crate) domains: Vec<String>,
    pub(crate) directory: String,
    pub(crate) email: Option<String>,
    /// Absolute path (in the renewer) of the extra root for the ACME server's HTTPS.
    pub(crate) root: Option<String>,
}

/// The renewer's arguments from the environment of the deploying sitebuild
/// (`SITEBUILD_RENEWER_INTERVAL`, `SITEBUILD_RENEWER_FORCE`).
fn daemon_args(interval: Option<&str>, force: Option<&str>) -> Result<Vec<String>> {
    let mut args = vec![
        "renewer".to_string(),
        "--dir".to_string(),
        EDGE_DIR.to_string(),
    ];
    if let Some(raw) = interval {
        match raw.trim().parse::<u64>() {
            Ok(s @ 1..=2_592_000) => args.extend(["--interval".to_string(), s.to_string()]),
            _ => bail!(
                "invalid {INTERVAL_ENV}={raw:?} (from the environment): expected seconds from 1 to \
                 2592000 between the renewer's checks (default 43200, 12 h)"
            ),
        }
    }
    if force == Some("1") {
        args.push("--force".to_string());
    }
    Ok(args)
}

/// Write the project's `renew.json` (and `acme_root`) into the edge's volume.
pub(crate) async fn write_spec(engine: &Engine, cfg: &Config, edge: &Edge) -> Result<()> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let root = match &cfg.acme.root {
        Some(path) => {
            let pem = std::fs::read(path).with_context(|| {
                format!(
                    "cannot read `acme_root` {} (from {})",
                    path.display(),
                    cfg.origin_of("acme_root")
                )
            })?;
            files.push((edge.entry(ROOT_FILE), pem));
            Some(edge.path(ROOT_FILE))
        }
        None => None,
    };
    let spec = RenewSpec {
        domains: cfg.domains.clone(),
        directory: cfg.acme.directory.clone(),
        email: cfg.acme.email.clone(),
        root,
    };
    files.push((edge.entry(SPEC_FILE), serde_json::to_vec_pretty(&spec)?));
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    engine.upload_files(&edge.id, EDGE_DIR, &refs).await
}

/// After a deploy of `cfg` on the shared edge: its renewal settings written and the edge's
/// renewer running (made or replaced). A renewer that cannot be made is a warning, never a
/// failed deploy: the site serves, and `sitebuild renew` from cron still renews.
pub(crate) async fn ensure_for(engine: &Engine, cfg: &Config, edge: &Edge, ui: &Ui) -> Result<()> {
    if !matches!(cfg.tls, Tls::Acme) || !edge.shared {
        return Ok(());
    }
    write_spec(engine, cfg, edge).await?;
    let args = daemon_args(
        std::env::var(INTERVAL_ENV).ok().as_deref(),
        std::env::var(FORCE_ENV).ok().as_deref(),
    )?;
    if let Err(e) = ensure(engine, &edge.id, &edge.name, args, ui).await {
        ui.step(format!(
            "warning: no renewal container next to {}: {e:#}; certificates renew only when \
             sitebuild runs: schedule `sitebuild renew` daily (cron or a systemd timer, see the \
             README's \"Renewal\")",
            edge.name
        ));
    }
    Ok(())
}

/// The renewer of the edge `edge_name`, if any.
pub(crate) async fn find(engine: &Engine, edge_name: &str) -> Result<Vec<ContainerInfo>> {
    engine
        .containers_with_labels(&[(labels::PROJECT, edge_name), (labels::ROLE, roles::RENEWER)])
        .await
}

async fn ensure(
    engine: &Engine,
    edge_id: &str,
    edge_name: &str,
    args: Vec<String>,
    ui: &Ui,
) -> Result<()> {
    let image = ensure_image(engine, ui).await?;
    let spec_label = format!("{image} {}", args.join(" "));
    for c in find(engine, edge_name).await? {
        if c.label(labels::EDGE) == Some(edge_id)
            && c.label(labels::SPEC) == Some(spec_label.as_str())
            && c.is_running()
        {
            return Ok(());
        }
        ui.step(format!(
            "replacing the renewer {} (its edge, version or settings changed)",
            c.name
        ));
        engine.remove(&c.id).await?;
    }
    let name = naming::renewer(edge_name);
    let spec = ContainerSpec::new(
        &name,
        &image,
        Labels::project(edge_name)
            .role(roles::RENEWER)
            .with(labels::EDGE, edge_id)
            .with(labels::SPEC, spec_label)
            .build(),
    )
    .command(BIN, args)
    .network("bridge")
    .volume(edge_name, EDGE_DIR)
    .pid_of(edge_id)
    .limits(128, 64)
    .restart();
    let id = engine.create(&spec).await?;
    if let Err(e) = engine.start(&id).await {
        let _ = engine.remove(&id).await;
        return Err(e).with_context(|| format!("cannot start the renewer {name}"));
    }
    ui.detail(format!(
        "renewer {name} renews the certificates of {edge_name}"
    ));
    Ok(())
}

/// Remove the renewer of the edge `edge_name` (with the edge).
pub(crate) async fn remove(engine: &Engine, edge_name: &str) -> Result<()> {
    for c in find(engine, edge_name).await? {
        engine.remove(&c.id).await?;
    }
    // A renewer image that lost its tag (see [`prune_images`]) and ran here goes with it; the
    // tagged one stays for the next deploy.
    for image in engine.images_with_labels(&[IMAGE_LABEL]).await? {
        if image.tags.iter().all(|t| t == "<none>:<none>") {
            let _ = engine.remove_image(&image.id, false).await;
        }
    }
    Ok(())
}

/// `status` line of the edge's renewer.
pub(crate) async fn status_line(engine: &Engine, edge_name: &str) -> Result<Option<String>> {
    Ok(find(engine, edge_name)
        .await?
        .into_iter()
        .next()
        .map(|c| format!("renewer    {} ({}), no Docker socket", c.name, c.state)))
}

/// The label of every renewer image.
const IMAGE_LABEL: (&str, &str) = (labels::ROLE, roles::RENEWER);

/// Remove the renewer images other than `reference`: other sitebuild versions', and any that
/// lost its tag (two deploys importing the same tag at once: the engine moves the tag to the
/// second). The engine refuses to remove one a renewer still runs (of another edge, not yet
/// redeployed): it goes at a later deploy.
async fn prune_images(engine: &Engine, reference: &str) -> Result<()> {
    // By label, which finds untagged ones, and by repository: earlier sitebuilds' renewer
    // images carry no label.
    let mut olds = engine.images_with_labels(&[IMAGE_LABEL]).await?;
    olds.extend(engine.images_of_repo(IMAGE_REPO).await?);
    olds.sort_by(|a, b| a.id.cmp(&b.id));
    olds.dedup_by(|a, b| a.id == b.id);
    for old in olds {
        if !old.tags.iter().any(|t| t == reference) {
            let _ = engine.remove_image(&old.id, false).await;
        }
    }
    Ok(())
}

/// The renewer image for this binary: imported once, tagged by the binary's hash.
async fn ensure_image(engine: &Engine, ui: &Ui) -> Result<String> {
    let (os, arch) = engine.platform().await?;
    if os != "linux" || std::env::consts::OS != "linux" || arch != std::env::consts::ARCH {
        bail!(
            "the engine runs {os}/{arch}, this sitebuild is {}/{}: it cannot run in a container \
             there",
            std::env::consts::OS,
            std::env::consts::ARCH
        );
    }
    let exe =
        std::fs::read("/proc/self/exe").context("cannot read this binary (/proc/self/exe)")?;
    let tag = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&exe))[..16].to_string()
    };
    let reference = format!("{IMAGE_REPO}:{tag}");
    if engine.image(&reference).await?.is_some() {
        prune_images(engine, &reference).await?;
        return Ok(reference);
    }
    ui.step(format!(
        "making the renewer image {reference} from this binary"
    ));
    let rootfs = rootfs(exe)?;
    engine
        .import_rootfs(rootfs, IMAGE_REPO, &tag, &[IMAGE_LABEL])
        .await?;
    prune_images(engine, &reference).await?;
    Ok(reference)
}

/// The shared objects this process has mapped (`/proc/self/maps`).
fn mapped_libraries(maps: &str) -> BTreeSet<String> {
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.starts_with('/') && p.contains(".so"))
        .map(String::from)
        .collect()
}

/// The ELF interpreter (`PT_INTERP`) of a 64-bit little-endian executable, if it has one.
fn interpreter(elf: &[u8]) -> Option<String> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(elf.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(elf.get(o..o + 8)?.try_into().ok()?));
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let phoff = usize::try_from(u64_at(0x20)?).ok()?;
    let (entsize, count) = (usize::from(u16_at(0x36)?), usize::from(u16_at(0x38)?));
    (0..count).find_map(|i| {
        let ph = phoff + i * entsize;
        if u32_at(ph)? != 3 {
            return None;
        }
        let off = usize::try_from(u64_at(ph + 8)?).ok()?;
        let size = usize::try_from(u64_at(ph + 32)?).ok()?;
        let raw = elf.get(off..off + size)?;
        Some(
            String::from_utf8_lossy(raw)
                .trim_end_matches('\0')
                .to_string(),
        )
    })
}

/// The renewer's root filesystem as a tar.
fn rootfs(exe: Vec<u8>) -> Result<Vec<u8>> {
    let maps = std::fs::read_to_string("/proc/self/maps").context("cannot read /proc/self/maps")?;
    let mut libs = mapped_libraries(&maps);
    libs.extend(interpreter(&exe));
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |path: &str, mode: u32, data: &[u8]| -> Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(data.len() as u64);
        h.set_mtime(crate::layout::FIXED_MTIME);
        tar.append_data(&mut h, path.trim_start_matches('/'), data)?;
        Ok(())
    };
    add(BIN, 0o755, &exe)?;
    for lib in &libs {
        let data = std::fs::read(lib).with_context(|| format!("cannot read the library {lib}"))?;
        add(lib, 0o755, &data)?;
    }
    let ca = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"]
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .context("no CA bundle on this machine (/etc/ssl/certs/ca-certificates.crt): install ca-certificates")?;
    add("/etc/ssl/certs/ca-certificates.crt", 0o644, &ca)?;
    add(
        "/etc/passwd",
        0o644,
        b"root:x:0:0:root:/:/nonexistent\nsitebuild:x:101:101:sitebuild:/tmp:/nonexistent\n",
    )?;
    add("/etc/group", 0o644, b"root:x:0:\nsitebuild:x:101:\n")?;
    add("/etc/nsswitch.conf", 0o644, b"hosts: files dns\n")?;
    for (dir, mode) in [("tmp/", 0o1777), (&EDGE_DIR[1..], 0o755), ("proc/", 0o555)] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_size(0);
        h.set_mtime(crate::layout::FIXED_MTIME);
        let dir = format!("{}/", dir.trim_end_matches('/'));
        tar.append_data(&mut h, dir, std::io::empty())?;
    }
    Ok(tar.into_inner()?)
}

/// The wait before the next check after `failures` failures in a row (0: the interval, with
/// up to a tenth of jitter so many hosts do not ask the ACME server at once).
pub(crate) fn next_wait(interval: Duration, failures: u32, seed: u64) -> Duration {
    if failures > 0 {
        let backoff = Duration::from_mins(1) * 2u32.saturating_pow(failures.min(10) - 1);
        return backoff.min(interval);
    }
    let fifth = u64::try_from(interval.as_millis() / 5).unwrap_or(u64::MAX);
    let jitter = if fifth == 0 { 0 } else { seed % fifth };
    interval * 9 / 10 + Duration::from_millis(jitter)
}

/// The renewer's last result for a project (`acme/renewer.json`).
pub(crate) const STATUS_FILE: &str = "acme/renewer.json";

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub(crate) struct RenewStatus {
    /// Unix seconds of the last check.
    pub(crate) last_attempt: u64,
    /// `renewed`, `not due`, `waiting` (no certificate issued by a deploy yet) or `failed`.
    pub(crate) result: String,
    /// What happened (the error chain when failed).
    pub(crate) detail: String,
    /// Unix seconds of the next check.
    pub(crate) next_try: u64,
    /// Failures in a row.
    pub(crate) failures: u32,
}

impl RenewStatus {
    /// One line for `status`.
    pub(crate) fn line(&self) -> String {
        let at = |s: u64| humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(s));
        let failures = if self.failures > 0 {
            format!(", {} failure(s) in a row", self.failures)
        } else {
            String::new()
        };
        format!(
            "renewer {} at {} ({}){failures}; next check {}",
            self.result,
            at(self.last_attempt),
            self.detail,
            at(self.next_try)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libraries_from_maps_and_the_interpreter() {
        let maps = "7f00-7f01 r-xp 00000000 08:01 123 /usr/lib/x86_64-linux-gnu/libc.so.6\n\
                    7f01-7f02 r--p 00000000 08:01 124 /usr/lib/x86_64-linux-gnu/libm.so.6\n\
                    7f02-7f03 rw-p 00000000 00:00 0 [heap]\n\
                    7f03-7f04 r-xp 00000000 08:01 125 /usr/local/bin/sitebuild\n";
        let libs = mapped_libraries(maps);
        assert_eq!(libs.len(), 2, "{libs:?}");
        let exe = std::fs::read("/proc/self/exe").unwrap();
        let interp = interpreter(&exe).expect("the test binary is dynamically linked");
        assert!(interp.starts_with('/') && interp.contains("ld"), "{interp}");
        assert!(interpreter(b"not an elf").is_none());
    }

    #[test]
    fn arguments_from_the_environment() {
        assert_eq!(
            daemon_args(None, None).unwrap(),
            ["renewer", "--dir", EDGE_DIR]
        );
        assert_eq!(
            daemon_args(Some("10"), Some("1")).unwrap()[3..],
            ["--interval", "10", "--force"]
        );
        for bad in ["0", "x", "-5", "2592001"] {
            let e = daemon_args(Some(bad), None).unwrap_err().to_string();
            assert!(e.contains(INTERVAL_ENV) && e.contains("1 to"), "{e}");
        }
    }

    #[test]
    fn waits_back_off_and_stay_within_the_interval() {
        let day = Duration::from_hours(12);
        for seed in [0, 7, 1_000_000_007] {
            let w = next_wait(day, 0, seed);
            assert!(w >= day * 9 / 10 && w <= day * 11 / 10, "{w:?}");
        }
        assert_eq!(next_wait(day, 1, 0), Duration::from_mins(1));
        assert_eq!(next_wait(day, 3, 0), Duration::from_mins(4));
        assert_eq!(next_wait(day, 30, 0), Duration::from_mins(512));
        assert_eq!(
            next_wait(Duration::from_secs(5), 4, 0),
            Duration::from_secs(5)
        );
    }
}
