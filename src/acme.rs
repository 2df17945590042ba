//! ACME (RFC 8555) with HTTP-01 challenges, through instant-acme: the account (created once,
//! its credentials kept by the caller), an order for the domains, the challenge answers, the CSR
//! (instant-acme's rcgen helper: a new ECDSA P-256 key per certificate) and the chain. No engine
//! here: `deploy/certs.rs` writes the answers into the edge's volume and drives the polling.

use anyhow::{Context, Result, anyhow, bail};
use instant_acme::{
    Account, AccountBuilder, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier,
    NewAccount, NewOrder, Order, OrderStatus,
};
use serde::{Deserialize, Serialize};

use crate::config::Acme;

/// A challenge token as it may appear in a URL path and a file name: base64url only.
pub(crate) fn valid_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 256
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What is stored for an account: the directory it belongs to and instant-acme's credentials.
#[derive(Serialize, Deserialize)]
struct Stored {
    directory: String,
    credentials: AccountCredentials,
}

fn builder(acme: &Acme) -> Result<AccountBuilder> {
    // rustls picks its process-wide provider from the enabled features (ring only here).
    let _ = rustls::crypto::ring::default_provider().install_default();
    match &acme.root {
        Some(root) => Account::builder_with_root(root).with_context(|| {
            format!(
                "invalid `acme_root`: {} is not a PEM root certificate",
                root.display()
            )
        }),
        None => Account::builder().context("cannot set up the HTTPS client for ACME"),
    }
}

/// The account for `acme.directory`: restored from `stored` (the JSON this returned earlier)
/// when it was made for the same directory, else created. Returns the JSON to store when new.
pub(crate) async fn account(
    acme: &Acme,
    origin: &str,
    stored: Option<&[u8]>,
) -> Result<(Account, Option<Vec<u8>>)> {
    let unreachable = |e: instant_acme::Error| {
        anyhow!(e).context(format!(
            "cannot use the ACME directory {} (`acme_directory`, from {origin}); is it reachable \
             and its certificate trusted (`acme_root`)?",
            acme.directory
        ))
    };
    if let Some(s) = stored.and_then(|b| serde_json::from_slice::<Stored>(b).ok())
        && s.directory == acme.directory
    {
        let account = builder(acme)?
            .from_credentials(s.credentials)
            .await
            .map_err(unreachable)?;
        return Ok((account, None));
    }
    let contact = acme.email.as_ref().map(|e| format!("mailto:{e}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let (account, credentials) = builder(acme)?
        .create(
            &NewAccount {
                contact: &contacts,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            acme.directory.clone(),
            None,
        )
        .await
        .map_err(unreachable)?;
    let json = serde_json::to_vec(&Stored {
        directory: acme.directory.clone(),
        credentials,
    })?;
    Ok((account, Some(json)))
}

/// One HTTP-01 answer: serve `key_authorization` at `/.well-known/acme-challenge/<token>`.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) domain: String,
    pub(crate) token: String,
    pub(crate) key_authorization: String,
}

/// A new order for `domains` and the answers its pending authorizations need.
pub(crate) async fn new_order(
    account: &Account,
    domains: &[String],
) -> Result<(Order, Vec<Answer>)> {
    let ids: Vec<Identifier> = domains.iter().map(|d| Identifier::Dns(d.clone())).collect();
    let mut order = account
        .new_order(&NewOrder::new(&ids))
        .await
        .context("the ACME server refused the order")?;
    let mut answers = Vec::new();
    let mut authzs = order.authorizations();
    while let Some(authz) = authzs.next().await {
        let mut authz = authz.context("cannot read an ACME authorization")?;
        if authz.status == AuthorizationStatus::Valid {
            continue;
        }
        let domain = authz.identifier().to_string();
        let challenge = authz
            .challenge(ChallengeType::Http01)
            .with_context(|| format!("the ACME server offers no http-01 challenge for {domain}"))?;
        if !valid_token(&challenge.token) {
            bail!(
                "the ACME server sent a challenge token for {domain} that is not base64url: {:?}",
                challenge.token
            );
        }
        answers.push(Answer {
            domain,
            token: challenge.token.clone(),
            key_authorization: challenge.key_authorization().as_str().to_string(),
        });
    }
    Ok((order, answers))
}

/// Tell the server every pending http-01 challenge can be checked now.
pub(crate) async fn set_ready(order: &mut Order) -> Result<()> {
    let mut authzs = order.authorizations();
    while let Some(authz) = authzs.next().await {
        let mut authz = authz.context("cannot read an ACME authorization")?;
        if authz.status != AuthorizationStatus::Pending {
            continue;
        }
        if let Some(mut c) = authz.challenge(ChallengeType::Http01) {
            c.set_ready()
                .await
                .context("the ACME server refused the challenge")?;
        }
    }
    Ok(())
}

/// One look at the order: Some(Ok) ready to finalize, Some(Err) failed (with what the server
/// could not validate), None still pending.
pub(crate) async fn check_ready(order: &mut Order) -> Result<Option<()>> {
    let status = order
        .refresh()
        .await
        .context("cannot read the ACME order")?
        .status;
    match status {
        OrderStatus::Ready | OrderStatus::Valid | OrderStatus::Processing => Ok(Some(())),
        OrderStatus::Pending => Ok(None),
        OrderStatus::Invalid => Err(why_invalid(order).await),
    }
}

/// The challenge errors of a failed order, e.g. `a.test: 127.0.0.1: Fetching
/// http://a.test:5002/.well-known/acme-challenge/…: Connection refused`.
async fn why_invalid(order: &mut Order) -> anyhow::Error {
    let mut reasons = Vec::new();
    let mut authzs = order.authorizations();
    while let Some(Ok(mut authz)) = authzs.next().await {
        let domain = authz.identifier().to_string();
        if let Ok(state) = authz.refresh().await {
            for c in &state.challenges {
                if let Some(p) = &c.error {
                    reasons.push(format!(
                        "{domain}: {}",
                        p.detail.as_deref().unwrap_or("no detail given")
                    ));
                }
            }
        }
    }
    if reasons.is_empty() {
        reasons.push("the server gave no reason".to_string());
    }
    anyhow!(
        "the ACME server could not validate the http-01 challenge: {}",
        reasons.join("; ")
    )
}

/// Send the CSR (a new key made here); returns the key as PEM.
pub(crate) async fn finalize(order: &mut Order) -> Result<String> {
    order
        .finalize()
        .await
        .context("the ACME server refused to finalize the order")
}

/// One look for the issued chain (PEM); None while the server is still processing.
pub(crate) async fn certificate(order: &mut Order) -> Result<Option<String>> {
    order
        .certificate()
        .await
        .context("cannot download the certificate from the ACME server")
}

/// A self-signed certificate for `domains` to serve until the first issuance (nginx needs one to
/// start its HTTPS listener). Its issuer names it, so it is never mistaken for an issued one.
pub(crate) fn placeholder(domains: &[String]) -> Result<(String, String)> {
    let mut params = rcgen::CertificateParams::new(domains.to_vec())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, PLACEHOLDER_CN);
    let now = std::time::SystemTime::now();
    params.not_before = now.into();
    params.not_after = (now + std::time::Duration::from_hours(24 * 7)).into();
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The common name of [`placeholder`] certificates.
pub(crate) const PLACEHOLDER_CN: &str = "sitebuild placeholder (ACME pending)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_base64url_only() {
        assert!(valid_token("aB3-_x"));
        for bad in [
            "",
            "a/b",
            "../x",
            "a b",
            "a.b",
            "a;b",
            "ä",
            &"a".repeat(257),
        ] {
            assert!(!valid_token(bad), "{bad:?}");
        }
    }

    #[test]
    fn placeholder_names_itself_and_covers_the_domains() {
        let domains = ["a.test".to_string(), "www.a.test".to_string()];
        let (cert, key) = placeholder(&domains).unwrap();
        let ck = crate::tls::check(&cert, &key, std::time::SystemTime::now()).unwrap();
        assert!(ck.info.covers("a.test") && ck.info.covers("www.a.test"));
        assert!(
            ck.info.issuer.contains(PLACEHOLDER_CN),
            "{}",
            ck.info.issuer
        );
    }
}
