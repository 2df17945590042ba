//! Certificates as files: parse a PEM chain and its key, say who issued it and until when, and
//! refuse what nginx would refuse later (or, worse, serve): no certificate, a key that does not
//! belong to the certificate, an expired certificate. Pure: bytes in, values out.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// What sitebuild shows and decides on about a certificate (the leaf of a chain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertInfo {
    /// The issuer's distinguished name, e.g. `CN=Pebble Intermediate CA 1a2b3c`.
    pub(crate) issuer: String,
    pub(crate) not_before: SystemTime,
    pub(crate) not_after: SystemTime,
    /// DNS names of the subjectAltName extension.
    pub(crate) names: Vec<String>,
}

impl CertInfo {
    /// Less than a third of its lifetime left at `now` (the time to renew).
    pub(crate) fn due_for_renewal(&self, now: SystemTime) -> bool {
        let lifetime = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or_default();
        let left = self.not_after.duration_since(now).unwrap_or_default();
        left < lifetime / 3
    }

    /// Does the certificate cover `host` (exactly or by a one-label wildcard)?
    pub(crate) fn covers(&self, host: &str) -> bool {
        self.names.iter().any(|n| {
            n.eq_ignore_ascii_case(host)
                || n.strip_prefix("*.").is_some_and(|base| {
                    host.split_once('.')
                        .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(base))
                })
        })
    }

    /// `2026-05-01 12:00:00 UTC`-style expiry for humans.
    pub(crate) fn expires(&self) -> String {
        humantime::format_rfc3339_seconds(self.not_after).to_string()
    }
}

/// A checked certificate chain and its key, as PEM text ready to give to nginx.
#[derive(Clone)]
pub(crate) struct CertKey {
    pub(crate) chain_pem: String,
    pub(crate) key_pem: String,
    pub(crate) info: CertInfo,
}

impl fmt::Debug for CertKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the private key.
        f.debug_struct("CertKey")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// The leaf certificate's facts.
pub(crate) fn inspect(der: &[u8]) -> Result<CertInfo, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("is not a valid X.509 certificate ({e})"))?;
    let time = |t: x509_parser::time::ASN1Time| {
        let secs = t.timestamp();
        if secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
        } else {
            UNIX_EPOCH
        }
    };
    let names = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some((*d).to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(CertInfo {
        issuer: cert.issuer().to_string(),
        not_before: time(cert.validity().not_before),
        not_after: time(cert.validity().not_after),
        names,
    })
}

/// The first certificate of a PEM chain.
pub(crate) fn leaf_der(chain_pem: &str) -> Result<CertificateDer<'static>, String> {
    CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .next()
        .ok_or_else(|| "contains no PEM certificate (-----BEGIN CERTIFICATE-----)".to_string())?
        .map_err(|e| format!("has a PEM certificate that cannot be read ({e})"))
}

/// The subjectPublicKeyInfo DER of the leaf certificate.
fn leaf_spki(der: &[u8]) -> Result<Vec<u8>, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("is not a valid X.509 certificate ({e})"))?;
    Ok(cert.public_key().raw.to_vec())
}

/// Which of the two files a problem is in.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Problem {
    Cert(String),
    Key(String),
}

/// Check a certificate chain and key as nginx would use them at `now`.
pub(crate) fn check(chain_pem: &str, key_pem: &str, now: SystemTime) -> Result<CertKey, Problem> {
    let leaf = leaf_der(chain_pem).map_err(Problem::Cert)?;
    let info = inspect(&leaf).map_err(Problem::Cert)?;
    if info.not_after <= now {
        return Err(Problem::Cert(format!(
            "expired on {} (issuer {}); renew it or use tls = \"acme\"",
            info.expires(),
            info.issuer
        )));
    }
    if info.not_before > now {
        return Err(Problem::Cert(format!(
            "is not valid before {}",
            humantime::format_rfc3339_seconds(info.not_before)
        )));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| {
        Problem::Key(format!(
            "contains no readable PEM private key ({e}); give an unencrypted PKCS#8, PKCS#1 or SEC1 key"
        ))
    })?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| Problem::Key(format!("is not a usable private key ({e})")))?;
    // ring derives the public half for RSA and ECDSA keys; compare it with the certificate's.
    if let Some(spki) = signer.public_key() {
        let want = leaf_spki(&leaf).map_err(Problem::Cert)?;
        if spki.as_ref() != want.as_slice() {
            return Err(Problem::Key(
                "does not belong to the certificate in tls_cert (their public keys differ); \
                 give the key the certificate was issued for"
                    .to_string(),
            ));
        }
    }
    Ok(CertKey {
        chain_pem: chain_pem.to_string(),
        key_pem: key_pem.to_string(),
        info,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate and key made by openssl (skipped when openssl is missing).
    fn openssl_pair(days: &str, keytype: &[&str]) -> Option<(String, String)> {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        let ok = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey"])
            .args(keytype)
            .args(["-nodes", "-subj", "/CN=a.test"])
            .args([
                "-addext",
                "subjectAltName=DNS:a.test,DNS:*.b.test",
                "-days",
                days,
            ])
            .arg("-keyout")
            .arg(&k)
            .arg("-out")
            .arg(&c)
            .output()
            .ok()?
            .status
            .success();
        assert!(ok, "openssl req failed");
        Some((
            std::fs::read_to_string(c).unwrap(),
            std::fs::read_to_string(k).unwrap(),
        ))
    }

    #[test]
    fn good_pair_mismatch_and_expiry() {
        let rsa: &[&str] = &["rsa:2048"];
        let ec: &[&str] = &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
        if openssl_pair("1", ec).is_none() {
            return; // no openssl here
        }
        for keytype in [rsa, ec] {
            let (cert, key) = openssl_pair("30", keytype).unwrap();
            let now = SystemTime::now();
            let ok = check(&cert, &key, now).unwrap();
            assert!(ok.info.covers("a.test") && ok.info.covers("x.b.test"));
            assert!(!ok.info.covers("b.test") && !ok.info.covers("y.x.b.test"));
            assert!(!ok.info.due_for_renewal(now));
            assert!(ok.info.due_for_renewal(now + Duration::from_hours(21 * 24)));
            assert!(format!("{ok:?}").contains("a.test"));
            assert!(!format!("{ok:?}").contains("PRIVATE"));
            let (_, other_key) = openssl_pair("30", keytype).unwrap();
            assert!(
                matches!(check(&cert, &other_key, now), Err(Problem::Key(m)) if m.contains("does not belong")),
                "{keytype:?}"
            );
            let later = now + Duration::from_hours(31 * 24);
            assert!(
                matches!(check(&cert, &key, later), Err(Problem::Cert(m)) if m.contains("expired on"))
            );
            assert!(matches!(check("", &key, now), Err(Problem::Cert(_))));
            assert!(matches!(check(&cert, "junk", now), Err(Problem::Key(_))));
        }
    }
}
