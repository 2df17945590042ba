//! The project's state in its edge's volume that a handle carries: maintenance mode and, with
//! `tls = "acme"`, the certificate it serves (`acme/cert.pem`, `acme/key.pem`: the issued one,
//! or a self-signed placeholder until the first issuance). Issuance itself is `certs.rs`.

use std::time::SystemTime;

use anyhow::{Result, anyhow};

use super::edge::{self, Edge};
use crate::acme;
use crate::config::{Config, Tls};
use crate::engine::Engine;
use crate::tls::{self, CertKey};

/// Where sitebuild before the renewer kept them (read once, then written to the new place).
const OLD_FILES: [&str; 2] = ["acme.crt", "acme.key"];
/// The ACME account where sitebuild before the renewer kept it.
pub(crate) const OLD_ACCOUNT_FILE: &str = "acme-account.json";

/// The certificate in the edge's volume, if there is a usable one (an expired one is not).
pub(crate) async fn stored(engine: &Engine, edge: &Edge) -> Result<Option<CertKey>> {
    let read = async |f: &str| engine.download_file(&edge.id, &edge.path(f)).await;
    let (chain, key) = match (read(edge::CERT_FILE).await?, read(edge::KEY_FILE).await?) {
        (Some(c), Some(k)) => (c, k),
        _ => match (read(OLD_FILES[0]).await?, read(OLD_FILES[1]).await?) {
            (Some(c), Some(k)) => (c, k),
            _ => return Ok(None),
        },
    };
    Ok(tls::check(
        &String::from_utf8_lossy(&chain),
        &String::from_utf8_lossy(&key),
        SystemTime::now(),
    )
    .ok())
}

/// The certificate to serve: the stored one, else a new placeholder (stored, so the edge config
/// stays the same until an issuance replaces it).
pub(crate) async fn current_or_placeholder(
    engine: &Engine,
    cfg: &Config,
    edge: &Edge,
) -> Result<CertKey> {
    edge::prepare_acme_dir(engine, edge).await?;
    if let Some(ck) = stored(engine, edge).await? {
        return Ok(ck);
    }
    let (chain, key) = acme::placeholder(&cfg.domains)?;
    let ck = tls::check(&chain, &key, SystemTime::now())
        .map_err(|p| anyhow!("the placeholder certificate is unusable: {p:?}"))?;
    edge::save_acme_cert(engine, edge, &chain, &key).await?;
    Ok(ck)
}

/// `edge` with the project's state from the edge's volume: maintenance mode, and with
/// `tls = "acme"` the certificate (a placeholder is made when none).
pub(crate) async fn with_state(engine: &Engine, cfg: &Config, edge: Edge) -> Result<Edge> {
    let acme_cert = if matches!(cfg.tls, Tls::Acme) {
        Some(current_or_placeholder(engine, cfg, &edge).await?)
    } else {
        None
    };
    with_cert(engine, edge, acme_cert).await
}

/// `edge` with the project's state as it is in the edge's volume (nothing is made: no stored
/// certificate stays None).
pub(crate) async fn with_stored_state(engine: &Engine, cfg: &Config, edge: Edge) -> Result<Edge> {
    let acme_cert = if matches!(cfg.tls, Tls::Acme) {
        stored(engine, &edge).await?
    } else {
        None
    };
    with_cert(engine, edge, acme_cert).await
}

async fn with_cert(engine: &Engine, edge: Edge, acme_cert: Option<CertKey>) -> Result<Edge> {
    let maintenance = edge::read_maintenance(engine, &edge).await?;
    Ok(Edge {
        acme_cert,
        maintenance,
        ..edge
    })
}
