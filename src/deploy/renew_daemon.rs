//! `sitebuild renewer` (hidden): the loop the renewer container runs (see `renewer.rs`). It
//! talks to no engine: everything is a file in the edge's volume at `--dir`.
//!
//! Every wake (the interval with jitter; after a failure sooner, backing off from a minute), for
//! each `projects/<p>/renew.json`: when the served certificate (`acme/cert.pem`) has less than a
//! third of its lifetime left (or `--force`), an ACME order with the account in
//! `acme/account.json` and the HTTP-01 answers written to `acme/` (the edge serves them); the
//! new chain and key are checked (`tls::check`, every domain covered) before they replace the
//! served files (written beside them, then renamed), and nginx's master (pid 1 of the edge's
//! PID namespace, same uid) gets SIGHUP: a graceful reload. A failure changes no served file.
//! The result goes into `acme/renewer.json`, which `sitebuild status` shows.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};

use super::certs::{self, ACCOUNT_FILE, CHALLENGE_PREFIX};
use super::edge::{CERT_FILE, KEY_FILE};
use super::renewer::{self, RenewSpec, RenewStatus, SPEC_FILE, STATUS_FILE};
use crate::acme;
use crate::config::Acme;
use crate::tls::{self, CertInfo};

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// What one check did.
enum Checked {
    Renewed(CertInfo),
    NotDue(CertInfo),
    Waiting,
}

/// Run forever: check every project under `dir/projects` every `interval`.
pub(crate) async fn run(dir: &Path, interval: Duration, force: bool) -> Result<()> {
    let projects = dir.join(super::edge::PROJECTS);
    let mut failures: HashMap<String, u32> = HashMap::new();
    eprintln!(
        "sitebuild renewer: checking {} every {} s{}",
        projects.display(),
        interval.as_secs(),
        if force {
            " (renewing at every check)"
        } else {
            ""
        }
    );
    // The first check soon after a start (a deploy issued the first certificates already).
    tokio::time::sleep(interval.min(Duration::from_secs(30))).await;
    loop {
        let mut wait = renewer::next_wait(interval, 0, seed());
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(&projects) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(e) => {
                eprintln!("sitebuild renewer: cannot read {}: {e}", projects.display());
                Vec::new()
            }
        };
        entries.sort();
        for pdir in entries {
            let Ok(raw) = std::fs::read(pdir.join(SPEC_FILE)) else {
                continue;
            };
            let name = pdir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let started = SystemTime::now();
            let outcome =
                match serde_json::from_slice::<RenewSpec>(&raw) {
                    Ok(spec) => check(&pdir, &spec, force).await,
                    Err(e) => Err(anyhow!(e)
                        .context(format!("{} is not valid", pdir.join(SPEC_FILE).display()))),
                };
            let n = failures.entry(name.clone()).or_default();
            let (result, detail) = match &outcome {
                Ok(Checked::Renewed(i)) => {
                    *n = 0;
                    (
                        "renewed",
                        format!("certificate from {} until {}", i.issuer, i.expires()),
                    )
                }
                Ok(Checked::NotDue(i)) => {
                    *n = 0;
                    ("not due", format!("certificate good until {}", i.expires()))
                }
                Ok(Checked::Waiting) => {
                    *n = 0;
                    (
                        "waiting",
                        "no certificate issued yet: the next `sitebuild deploy` issues it"
                            .to_string(),
                    )
                }
                Err(e) => {
                    *n += 1;
                    (
                        "failed",
                        format!("{e:#}; the served certificate is unchanged"),
                    )
                }
            };
            let next = renewer::next_wait(interval, *n, seed());
            wait = wait.min(next);
            eprintln!("sitebuild renewer: {name}: {result}: {detail}");
            let status = RenewStatus {
                last_attempt: unix(started),
                result: result.to_string(),
                detail,
                next_try: unix(SystemTime::now() + next),
                failures: *n,
            };
            if let Err(e) = write_atomic(
                &pdir.join(STATUS_FILE),
                &serde_json::to_vec_pretty(&status)?,
                0o644,
            ) {
                eprintln!("sitebuild renewer: {name}: cannot write its status: {e:#}");
            }
        }
        tokio::time::sleep(wait).await;
    }
}

fn seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()).rotate_left(20)
}

/// Write `path` through a temporary file beside it and a rename (readers see old or new).
fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = path.with_extension("next");
    std::fs::write(&tmp, data).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
}

/// One project's check; renews when due.
async fn check(pdir: &Path, spec: &RenewSpec, force: bool) -> Result<Checked> {
    let read = |f: &str| {
        std::fs::read_to_string(pdir.join(f))
            .with_context(|| format!("cannot read {}", pdir.join(f).display()))
    };
    let current = tls::check(&read(CERT_FILE)?, &read(KEY_FILE)?, SystemTime::now())
        .map_err(|p| anyhow!("the served certificate is unusable: {p:?}"))?;
    if current.info.issuer.contains(acme::PLACEHOLDER_CN) {
        return Ok(Checked::Waiting);
    }
    if super::certs::needs_issuance(&current.info, &spec.domains, SystemTime::now()).is_none()
        && !force
    {
        return Ok(Checked::NotDue(current.info));
    }
    let (chain, key) = issue(pdir, spec).await?;
    let ck = tls::check(&chain, &key, SystemTime::now())
        .map_err(|p| anyhow!("the ACME server issued an unusable certificate: {p:?}"))?;
    if let Some(d) = spec.domains.iter().find(|d| !ck.info.covers(d)) {
        bail!("the ACME server issued a certificate that does not cover {d}");
    }
    // The key first: nginx reads both at the reload that follows.
    write_atomic(&pdir.join(KEY_FILE), key.as_bytes(), 0o640)?;
    write_atomic(&pdir.join(CERT_FILE), chain.as_bytes(), 0o644)?;
    reload_nginx()?;
    Ok(Checked::Renewed(ck.info))
}

/// SIGHUP to nginx's master: pid 1 of the edge's PID namespace, which this container joined.
fn reload_nginx() -> Result<()> {
    let cmdline = std::fs::read("/proc/1/cmdline")
        .context("cannot read /proc/1/cmdline: is the renewer in its edge's PID namespace?")?;
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    if !cmdline.contains("nginx") {
        bail!("pid 1 is not nginx ({cmdline:?}): the renewer is not in its edge's PID namespace");
    }
    rustix::process::kill_process(rustix::process::Pid::INIT, rustix::process::Signal::HUP)
        .map_err(std::io::Error::from)
        .context("cannot send SIGHUP to nginx (pid 1)")
}

async fn issue(pdir: &Path, spec: &RenewSpec) -> Result<(String, String)> {
    let settings = Acme {
        email: spec.email.clone(),
        directory: spec.directory.clone(),
        root: spec.root.as_ref().map(PathBuf::from),
    };
    let stored = std::fs::read(pdir.join(ACCOUNT_FILE)).ok();
    let (account, created) =
        acme::account(&settings, "the renewer's renew.json", stored.as_deref()).await?;
    if let Some(json) = created {
        write_atomic(&pdir.join(ACCOUNT_FILE), &json, 0o640)?;
    }
    let (mut order, answers) = acme::new_order(&account, &spec.domains).await?;
    let paths: Vec<PathBuf> = answers
        .iter()
        .map(|a| pdir.join(format!("{CHALLENGE_PREFIX}{}", a.token)))
        .collect();
    for (path, a) in paths.iter().zip(&answers) {
        write_atomic(path, a.key_authorization.as_bytes(), 0o644)?;
    }
    let result = certs::complete_order(&mut order).await;
    for path in &paths {
        let _ = std::fs::remove_file(path);
    }
    result.with_context(|| format!("no certificate for {}", spec.domains.join(", ")))
}
