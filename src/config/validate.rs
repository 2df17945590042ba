//! Validators, one per kind of value, shared by the config layers and `render --k8s`. Each
//! returns the problem and the fix as a message; the caller adds the key and where the value
//! came from. Every value that can reach the nginx config is refused here when it could add
//! nginx syntax (`;`, `{`, `}`, quotes, backslashes, newlines).

use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;
use std::path::{Component, Path};

use super::Raw;
use crate::rules::routes::TrailingSlash;

/// Most replicas sitebuild runs (swarm tasks, Kubernetes pods).
pub(crate) const MAX_REPLICAS: i64 = 100;

pub(crate) fn as_str(raw: Raw) -> Result<String, String> {
    match raw {
        Raw::Str(s) => Ok(s),
        Raw::Int(i) => Err(format!(
            "expected a string, got the number {i} (write it in quotes)"
        )),
        Raw::Bool(b) => Err(format!("expected a string, got {b} (write it in quotes)")),
        Raw::List(_) => Err("expected a string, got a list".to_string()),
    }
}

/// `trailing_slash`: "always", "never" or "ignore".
pub(crate) fn trailing_slash(raw: Raw) -> Result<TrailingSlash, String> {
    TrailingSlash::parse(as_str(raw)?.trim())
}

pub(crate) fn as_int(raw: Raw) -> Result<i64, String> {
    match raw {
        Raw::Int(i) => Ok(i),
        Raw::Str(s) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("{s:?} is not a whole number")),
        Raw::Bool(b) => Err(format!("expected a number, got {b}")),
        Raw::List(_) => Err("expected a number, got a list".to_string()),
    }
}

pub(crate) fn as_bool(raw: Raw) -> Result<bool, String> {
    match raw {
        Raw::Bool(b) => Ok(b),
        Raw::Str(s) => match s.trim() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(format!("{s:?} is not true/false")),
        },
        Raw::Int(i) => Err(format!("expected true/false, got {i}")),
        Raw::List(_) => Err("expected true/false, got a list".to_string()),
    }
}

/// A whole number in `range` (`unit` names it in the message).
pub(crate) fn ranged(raw: Raw, range: RangeInclusive<i64>, unit: &str) -> Result<u64, String> {
    let v = as_int(raw)?;
    if !range.contains(&v) {
        return Err(format!(
            "{v} is out of range; use {} to {} {unit}",
            range.start(),
            range.end()
        ));
    }
    Ok(v.unsigned_abs())
}

/// A size in bytes.
pub(crate) fn size(raw: Raw) -> Result<u64, String> {
    let v = as_int(raw)?;
    u64::try_from(v)
        .map_err(|_| format!("{v} is negative; use a size in bytes (0 = compress every text file)"))
}

pub(crate) fn port(raw: Raw) -> Result<u16, String> {
    let p = as_int(raw)?;
    u16::try_from(p)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{p} is out of range; use a port between 1 and 65535"))
}

pub(crate) fn ip(raw: Raw) -> Result<IpAddr, String> {
    let s = as_str(raw)?;
    s.trim()
        .parse::<IpAddr>()
        .map_err(|_| format!("{s:?} is not an IP address (e.g. 127.0.0.1 or 0.0.0.0)"))
}

/// A string that passes `check`.
pub(crate) fn checked(raw: Raw, check: fn(&str) -> Result<(), String>) -> Result<String, String> {
    let s = as_str(raw)?;
    check(&s)?;
    Ok(s)
}

/// One hostname or an IP address (where sitebuild connects to check health).
pub(crate) fn host_or_ip(s: &str) -> Result<(), String> {
    let one_host = check_server_name(s).is_ok() && !s.contains([' ', '*']) && s != "_";
    if s.parse::<IpAddr>().is_err() && !one_host {
        return Err(format!("{s:?} is not a hostname or IP address"));
    }
    Ok(())
}

/// A Kubernetes namespace (a DNS-1123 label).
pub(crate) fn namespace(n: &str) -> Result<(), String> {
    match dns1123_label_problem(n) {
        None => Ok(()),
        Some(why) => Err(format!(
            "{n:?} {why}; use a Kubernetes namespace name such as `web` (lowercase letters, digits \
             and '-', at most 63 characters, starting and ending with a letter or digit)"
        )),
    }
}

/// A repository to push to: an image reference without tag or digest.
pub(crate) fn repository(r: &str) -> Result<(), String> {
    check_image_ref(r)?;
    let last = r.rsplit('/').next().unwrap_or(r);
    if r.contains('@') || last.contains(':') {
        return Err(format!(
            "{r:?} has a tag or digest; give the repository only (e.g. ghcr.io/me/site): \
             sitebuild tags it with the fingerprint"
        ));
    }
    Ok(())
}

/// `domains`: a TOML list, or (env) names separated by commas or spaces. Each is one lowercase
/// DNS name ([`hostname`]); no duplicates; at most 100.
pub(crate) fn domains(raw: Raw) -> Result<Vec<String>, String> {
    let list = match raw {
        Raw::List(l) => l,
        Raw::Str(s) => s
            .split([',', ' '])
            .filter(|d| !d.is_empty())
            .map(str::to_string)
            .collect(),
        other => return Err(format!("{} ", as_str(other).unwrap_err())),
    };
    if list.len() > 100 {
        return Err(format!("has {} names; at most 100 per project", list.len()));
    }
    let mut seen = std::collections::BTreeSet::new();
    for d in &list {
        if let Some(m) = injection_message(d) {
            return Err(m);
        }
        hostname(d)?;
        if !d.contains('.') {
            return Err(format!(
                "{d:?} has no dot; give a full domain name such as {d}.example.com"
            ));
        }
        if !seen.insert(d) {
            return Err(format!("{d:?} is listed twice"));
        }
    }
    Ok(list)
}

/// An e-mail address for an ACME account: `local@domain`, no whitespace, commas or nginx syntax.
pub(crate) fn email(e: &str) -> Result<(), String> {
    if let Some(m) = injection_message(e) {
        return Err(m);
    }
    let ok = e.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && hostname(domain).is_ok() && domain.contains('.')
    }) && !e.contains(|c: char| c.is_whitespace() || c == ',' || c == '<' || c == '>')
        && e.len() <= 254;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{e:?} is not an e-mail address such as admin@example.com"
        ))
    }
}

/// `acme_directory`: `production`, `staging` (Let's Encrypt) or an `https://` URL.
pub(crate) fn acme_directory(raw: Raw) -> Result<String, String> {
    let s = as_str(raw)?;
    match s.trim() {
        "production" => return Ok(super::LETSENCRYPT_PRODUCTION.to_string()),
        "staging" => return Ok(super::LETSENCRYPT_STAGING.to_string()),
        _ => {}
    }
    if let Some(m) = injection_message(&s) {
        return Err(m);
    }
    let ok = s.strip_prefix("https://").is_some_and(|rest| {
        !rest.is_empty() && !rest.starts_with('/') && rest.chars().all(|c| c.is_ascii_graphic())
    });
    if ok {
        Ok(s)
    } else {
        Err(format!(
            "{s:?} is not an ACME directory; use \"production\" or \"staging\" (Let's Encrypt) \
             or an https:// URL such as https://acme.example.com/directory"
        ))
    }
}

/// A file path (relative to the project or absolute), no nginx syntax.
pub(crate) fn file_path(s: &str) -> Result<(), String> {
    if let Some(m) = injection_message(s) {
        return Err(m);
    }
    if s.trim().is_empty() {
        return Err("is empty; give a file path".into());
    }
    Ok(())
}

/// One lowercase DNS name (an Ingress host, a domain): no wildcard, port, scheme or IP.
pub(crate) fn hostname(host: &str) -> Result<(), String> {
    let fix = "use a plain DNS name such as www.example.com: lowercase letters, digits, '-' and '.', \
               no wildcard, no port, no scheme";
    if host.is_empty() {
        return Err(format!("it is empty; {fix}"));
    }
    if let Some(bad) = host
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
    {
        let what = match bad {
            '*' => "a wildcard ('*')".to_string(),
            c if c.is_whitespace() => format!("whitespace ({c:?})"),
            c => format!("{c:?}"),
        };
        return Err(format!("{host:?} contains {what}; {fix}"));
    }
    if host.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!(
            "{host:?} contains uppercase letters, which Kubernetes refuses; use {:?}",
            host.to_ascii_lowercase()
        ));
    }
    if host.len() > 253 {
        return Err(format!(
            "{host:?} is {} characters long, more than 253; {fix}",
            host.len()
        ));
    }
    for label in host.split('.') {
        if let Some(why) = dns1123_label_problem(label) {
            let label_shown = if label.is_empty() {
                "has an empty label (two dots in a row, or a leading or trailing dot)".to_string()
            } else {
                format!("has the label {label:?}, which {why}")
            };
            return Err(format!("{host:?} {label_shown}; {fix}"));
        }
    }
    if host.parse::<Ipv4Addr>().is_ok() {
        return Err(format!(
            "{host:?} is an IP address, which an Ingress rule cannot match; {fix}"
        ));
    }
    Ok(())
}

/// Why `s` is not a DNS-1123 label (lowercase alphanumerics and '-', 1-63 characters,
/// alphanumeric at both ends), or None when it is one.
pub(crate) fn dns1123_label_problem(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some("is empty".to_string());
    }
    if s.len() > 63 {
        return Some(format!("is {} characters long, more than 63", s.len()));
    }
    if let Some(bad) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Some(format!("contains {bad:?}"));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Some("starts or ends with '-'".to_string());
    }
    None
}

pub(crate) fn replicas(replicas: i64) -> Result<(), String> {
    let what = match replicas {
        1..=MAX_REPLICAS => return Ok(()),
        0 => "would run no pod at all, so the site would be down",
        i64::MIN..0 => "is negative",
        _ => "is more than sitebuild allows",
    };
    Err(format!(
        "{replicas} {what}; use a number from 1 to {MAX_REPLICAS} \
         (2 or more keeps the site up while a node is drained)"
    ))
}

/// The directory name made into a valid image name: "My Site" → "my-site".
pub(crate) fn default_name(dir: &Path) -> String {
    let raw = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    name = name
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string();
    if name.is_empty() {
        "site".to_string()
    } else {
        name.chars().take(48).collect()
    }
}

const INJECTION: [char; 7] = [';', '{', '}', '"', '\'', '\n', '\r'];

fn injection_message(s: &str) -> Option<String> {
    s.chars().find(|c| INJECTION.contains(c) || *c == '\\').map(|c| {
        format!(
            "{s:?} contains {c:?}, which could inject nginx syntax; remove it (`;`, `{{`, `}}`, quotes, backslashes and newlines are refused)"
        )
    })
}

/// Image/container name: lowercase letters, digits, `-`, `_`, `.`; starts with a letter or digit.
pub(crate) fn check_name(name: &str) -> std::result::Result<(), String> {
    if let Some(m) = injection_message(name) {
        return Err(m);
    }
    let ok = !name.is_empty()
        && name.len() <= 48
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid name: use 1-48 lowercase letters, digits, '-', '_' or '.', starting with a letter or digit"
        ))
    }
}

/// A preview name: one DNS label (it becomes part of container names and, with
/// `preview_domain`, the first label of the preview's host name).
pub(crate) fn preview_label(s: &str) -> std::result::Result<(), String> {
    let fix =
        "use 1-40 lowercase letters, digits and '-', not starting or ending with '-' (e.g. pr-42)";
    let ok = !s.is_empty()
        && s.len() <= 40
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!("{s:?} is not a preview name: {fix}"))
    }
}

/// `server_name`: space-separated hostnames (letters, digits, `-`, `.`, a leading `*.`) or `_`.
pub(crate) fn check_server_name(s: &str) -> std::result::Result<(), String> {
    if let Some(m) = injection_message(s) {
        return Err(m);
    }
    let names: Vec<&str> = s.split(' ').filter(|n| !n.is_empty()).collect();
    if names.is_empty() {
        return Err("is empty; use a hostname such as example.com, or _ for any host".into());
    }
    for n in names {
        if n == "_" {
            continue;
        }
        let host = n.strip_prefix("*.").unwrap_or(n);
        let ok = !host.is_empty()
            && host.len() <= 253
            && host
                .split('.')
                .all(|label| !label.is_empty() && label.len() <= 63)
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if !ok {
            return Err(format!(
                "{n:?} is not a hostname: use letters, digits, '-' and '.', or _ for any host"
            ));
        }
    }
    Ok(())
}

/// A Docker image reference: `[registry/]repo[:tag][@digest]`, no whitespace or shell/nginx syntax.
pub(crate) fn check_image_ref(s: &str) -> std::result::Result<(), String> {
    if let Some(m) = injection_message(s) {
        return Err(m);
    }
    let ok = !s.is_empty()
        && s.len() <= 255
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c))
        && !s.starts_with(['-', '/', ':', '.']);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not an image reference (e.g. nginx:1.30.6-alpine or sitebuild/nginx:offline)"
        ))
    }
}

/// Directory keys: relative to the project, no `..`, no nginx syntax.
pub(crate) fn check_rel_path(s: &str) -> std::result::Result<(), String> {
    if let Some(m) = injection_message(s) {
        return Err(m);
    }
    let p = Path::new(s);
    if s.is_empty() {
        return Err("is empty; give a directory relative to the project".into());
    }
    if p.is_absolute() {
        return Err(format!(
            "{s:?} is absolute; give a directory relative to the project directory"
        ));
    }
    if p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!(
            "{s:?} contains `..`; the directory must be inside the project directory"
        ));
    }
    Ok(())
}
