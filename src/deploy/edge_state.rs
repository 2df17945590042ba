//! The project's state in its edge's volume that a handle carries: maintenance mode and, with
//! `tls = "acme"`, the certificate it serves (`acme.crt`/`acme.key`: the issued one, or a
//! self-signed placeholder until the first issuance). Issuance itself is `certs.rs`.

use std::time::SystemTime;

use anyhow::{Result, anyhow};

use super::edge::{self, EDGE_DIR, Edge};
use crate::acme;
use crate::config::{Config, Tls};
use crate::engine::Engine;
use crate::tls::{self, CertKey};

pub(crate) const CERT_FILE: &str = "acme.crt";
pub(crate) const KEY_FILE: &str = "acme.key";

/// The certificate in the edge's volume, if there is a usable one (an expired one is not).
pub(crate) async fn stored(engine: &Engine, edge: &Edge) -> Result<Option<CertKey>> {
    let read = async |f: &str| engine.download_file(&edge.id, &edge.path(f)).await;
    let (Some(chain), Some(key)) = (read(CERT_FILE).await?, read(KEY_FILE).await?) else {
        return Ok(None);
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
    if let Some(ck) = stored(engine, edge).await? {
        return Ok(ck);
    }
    let (chain, key) = acme::placeholder(&cfg.domains)?;
    let ck = tls::check(&chain, &key, SystemTime::now())
        .map_err(|p| anyhow!("the placeholder certificate is unusable: {p:?}"))?;
    save(engine, edge, &chain, &key).await?;
    Ok(ck)
}

pub(crate) async fn save(engine: &Engine, edge: &Edge, chain: &str, key: &str) -> Result<()> {
    engine
        .upload_files(
            &edge.id,
            EDGE_DIR,
            &[(&edge.entry(CERT_FILE), chain.as_bytes())],
        )
        .await?;
    // Only sitebuild reads this copy (root, 0640): nginx reads the content-hashed one.
    engine
        .upload_secret_files(
            &edge.id,
            EDGE_DIR,
            &[(&edge.entry(KEY_FILE), key.as_bytes())],
            0,
        )
        .await
}

/// `edge` with the project's state from the edge's volume: maintenance mode, and with
/// `tls = "acme"` the certificate (a placeholder is made when none).
pub(crate) async fn with_state(engine: &Engine, cfg: &Config, edge: Edge) -> Result<Edge> {
    let acme_cert = if matches!(cfg.tls, Tls::Acme) {
        Some(current_or_placeholder(engine, cfg, &edge).await?)
    } else {
        None
    };
    let maintenance = edge::read_maintenance(engine, &edge).await?;
    Ok(Edge {
        acme_cert,
        maintenance,
        ..edge
    })
}
