//! `tls = "acme"` on the local target. Everything lives in the project's `acme/` directory of
//! the edge's volume, so it survives a replaced edge, and that directory belongs to the edge's
//! user (uid 101), so the renewer (`renewer.rs`, same uid, no Docker socket) can renew there:
//! the served certificate (`acme/cert.pem`, `acme/key.pem`: the issued one, or a self-signed
//! placeholder until the first issuance; the edge config names these two paths), the ACME
//! account (`acme/account.json`, created once), and the HTTP-01 answers
//! (`acme/acme-challenge-<token>`, served on the HTTP listener). A new certificate from
//! `deploy`/`renew` is installed with `nginx -t` and a graceful reload. A failed issuance
//! changes nothing: the old certificate serves.

use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow, bail};

use super::edge::{self, EDGE_DIR, Edge, Live};
use super::edge_state;
use super::{front, lock, probe};
use crate::acme;
use crate::config::{Config, Tls};
use crate::engine::Engine;
use crate::tls::{self, CertInfo};
use crate::ui::Ui;

/// The ACME account's credentials (JSON, see `acme::account`).
pub(crate) const ACCOUNT_FILE: &str = "acme/account.json";
/// An HTTP-01 answer: `<prefix><token>`.
pub(crate) const CHALLENGE_PREFIX: &str = "acme/acme-challenge-";

/// With the answers in place: tell the ACME server, wait until it validated them (90 s),
/// finalize and fetch the chain (a minute). Returns (chain, key). The deploy and the renewer
/// (`renew_daemon.rs`) both end an order here.
pub(crate) async fn complete_order(order: &mut instant_acme::Order) -> Result<(String, String)> {
    acme::set_ready(order).await?;
    probe::poll_until(
        Duration::from_secs(90),
        Duration::from_millis(500),
        async || acme::check_ready(order).await,
    )
    .await?
    .context("the ACME server did not validate the challenges within 90 s")?;
    let key = acme::finalize(order).await?;
    let chain = probe::poll_until(
        Duration::from_mins(1),
        Duration::from_millis(500),
        async || acme::certificate(order).await,
    )
    .await?
    .context("the ACME server did not issue the certificate within a minute")?;
    Ok((chain, key))
}

/// Why `cert` must be replaced for `domains` at `now`; None: it is good.
pub(crate) fn needs_issuance(
    info: &CertInfo,
    domains: &[String],
    now: SystemTime,
) -> Option<String> {
    if info.issuer.contains(acme::PLACEHOLDER_CN) {
        return Some("no certificate issued yet".to_string());
    }
    if let Some(d) = domains.iter().find(|d| !info.covers(d)) {
        return Some(format!("the certificate does not cover {d}"));
    }
    info.due_for_renewal(now).then(|| {
        format!(
            "less than a third of its lifetime left (expires {})",
            info.expires()
        )
    })
}

/// What [`ensure_issued`] did.
#[derive(Debug)]
pub(crate) enum Issuance {
    /// The served certificate is fine (no request was made).
    NotDue(CertInfo),
    /// A new certificate was issued and the edge serves it.
    Issued(CertInfo),
}

/// Get a certificate from the ACME server when the served one is a placeholder, does not cover
/// every domain, has less than a third of its lifetime left, or `force`; install it on `edge`
/// (which keeps routing to `live`). On any error nothing changed.
pub(crate) async fn ensure_issued(
    engine: &Engine,
    cfg: &Config,
    edge: &mut Edge,
    live: Option<&Live>,
    force: bool,
    ui: &Ui,
) -> Result<Issuance> {
    if !matches!(cfg.tls, Tls::Acme) {
        bail!("the project does not use tls = \"acme\"");
    }
    let current = match &edge.acme_cert {
        Some(ck) => ck.clone(),
        None => edge_state::current_or_placeholder(engine, cfg, edge).await?,
    };
    let reason = match needs_issuance(&current.info, &cfg.domains, SystemTime::now()) {
        Some(r) => r,
        None if force => "renewal forced".to_string(),
        None => return Ok(Issuance::NotDue(current.info)),
    };
    ui.step(format!(
        "requesting a certificate for {} from {} ({reason})",
        cfg.domains.join(", "),
        cfg.acme.directory
    ));
    let (chain, key) = issue(engine, cfg, edge).await?;
    let ck = tls::check(&chain, &key, SystemTime::now())
        .map_err(|p| anyhow!("the ACME server issued an unusable certificate: {p:?}"))?;
    if let Some(d) = cfg.domains.iter().find(|d| !ck.info.covers(d)) {
        bail!("the ACME server issued a certificate that does not cover {d}");
    }
    // Install first (nginx -t + reload); only a certificate the edge serves is recorded.
    let next = Edge {
        acme_cert: Some(ck.clone()),
        ..edge.clone()
    };
    front::apply(engine, cfg, &next, live, ui)
        .await
        .context("the new certificate was not installed; the old one still serves")?;
    edge::save_acme_cert(engine, edge, &chain, &key).await?;
    *edge = next;
    ui.detail(format!(
        "certificate from {} until {}",
        ck.info.issuer,
        ck.info.expires()
    ));
    Ok(Issuance::Issued(ck.info))
}

/// One ACME issuance for the project's domains: account, order, answers in the edge's volume,
/// validation, CSR, chain. Returns (chain PEM, key PEM).
async fn issue(engine: &Engine, cfg: &Config, edge: &Edge) -> Result<(String, String)> {
    let mut stored = engine
        .download_file(&edge.id, &edge.path(ACCOUNT_FILE))
        .await?;
    if stored.is_none() {
        // Kept by an earlier sitebuild at the old place: moved (readable by the renewer).
        stored = engine
            .download_file(&edge.id, &edge.path(edge_state::OLD_ACCOUNT_FILE))
            .await?;
        if let Some(json) = &stored {
            engine
                .upload_secret_files(
                    &edge.id,
                    EDGE_DIR,
                    &[(&edge.entry(ACCOUNT_FILE), json)],
                    crate::layout::RUN_AS_GID,
                )
                .await?;
        }
    }
    let (account, created) = acme::account(
        &cfg.acme,
        cfg.origin_of("acme_directory"),
        stored.as_deref(),
    )
    .await?;
    if let Some(json) = created {
        engine
            .upload_secret_files(
                &edge.id,
                EDGE_DIR,
                &[(&edge.entry(ACCOUNT_FILE), &json)],
                crate::layout::RUN_AS_GID,
            )
            .await?;
    }
    let (mut order, answers) = acme::new_order(&account, &cfg.domains).await?;
    let names: Vec<String> = answers
        .iter()
        .map(|a| edge.entry(&format!("{CHALLENGE_PREFIX}{}", a.token)))
        .collect();
    let files: Vec<(&str, &[u8])> = names
        .iter()
        .zip(&answers)
        .map(|(n, a)| (n.as_str(), a.key_authorization.as_bytes()))
        .collect();
    engine.upload_files(&edge.id, EDGE_DIR, &files).await?;
    let result = complete_order(&mut order).await;
    // The answers are single-use; a failed removal only leaves a few stale bytes.
    let paths: Vec<String> = names.iter().map(|n| format!("{EDGE_DIR}/{n}")).collect();
    let _ = edge::remove_paths(engine, edge, &paths).await;
    result.with_context(|| {
        let urls: Vec<String> = answers
            .iter()
            .map(|a| {
                format!(
                    "http://{}:{}/.well-known/acme-challenge/{}",
                    a.domain, cfg.http_port, a.token
                )
            })
            .collect();
        format!(
            "no certificate for {} (the challenge answers were at {})",
            cfg.domains.join(", "),
            urls.join(", ")
        )
    })
}

/// `sitebuild renew`: renew the project's certificate when due (or `force`), under the deploy
/// lock, on the running edge. Returns a line for the user.
pub(crate) async fn renew(engine: &Engine, cfg: &Config, force: bool, ui: &Ui) -> Result<String> {
    if !matches!(cfg.tls, Tls::Acme) {
        bail!(
            "`sitebuild renew` renews ACME certificates; this project has tls = {} (from {})",
            match cfg.tls {
                Tls::Off => "\"off\"",
                _ => "\"files\" (replace tls_cert/tls_key and deploy)",
            },
            cfg.origin_of("tls")
        );
    }
    lock::holding(engine, cfg, ui, async {
        let info = front::find_for(engine, cfg)
            .await?
            .filter(crate::engine::ContainerInfo::is_running)
            .with_context(|| {
                format!(
                    "{} has no running edge; run `sitebuild deploy` first",
                    cfg.name
                )
            })?;
        let mut edge = front::attach(engine, cfg, &info).await?;
        let live = edge::read_live(engine, &edge).await?;
        Ok(
            match ensure_issued(engine, cfg, &mut edge, live.as_ref(), force, ui).await? {
                Issuance::NotDue(i) => format!(
                    "certificate for {} is good until {} (renewal is due in the last third); nothing to do",
                    cfg.domains.join(", "),
                    i.expires()
                ),
                Issuance::Issued(i) => format!(
                    "renewed: {} now serves a certificate from {} until {}",
                    cfg.domains.join(", "),
                    i.issuer,
                    i.expires()
                ),
            },
        )
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuance_reasons() {
        let now = SystemTime::now();
        let info = |issuer: &str, names: &[&str], age_days: u64| CertInfo {
            issuer: issuer.to_string(),
            not_before: now - Duration::from_hours(24 * age_days),
            not_after: now - Duration::from_hours(24 * age_days) + Duration::from_hours(24 * 90),
            names: names.iter().map(ToString::to_string).collect(),
        };
        let d = ["a.test".to_string()];
        assert!(needs_issuance(&info("CN=Pebble", &["a.test"], 1), &d, now).is_none());
        assert!(
            needs_issuance(&info("CN=Pebble", &["a.test"], 61), &d, now)
                .unwrap()
                .contains("third")
        );
        assert!(
            needs_issuance(&info("CN=Pebble", &["b.test"], 1), &d, now)
                .unwrap()
                .contains("a.test")
        );
        let p = format!("CN={}", acme::PLACEHOLDER_CN);
        assert!(
            needs_issuance(&info(&p, &["a.test"], 0), &d, now)
                .unwrap()
                .contains("no certificate")
        );
    }
}
