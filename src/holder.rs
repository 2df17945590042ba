//! Who holds a resource (a deploy lock, a build's check container): `host:pid` and a start time
//! in its labels. A holder whose process is gone (same host), or one older than 30 minutes, is
//! stale: the next run removes what it left.

use std::time::Duration;

const STALE_AFTER: Duration = Duration::from_mins(30);

/// This machine's hostname (`unknown-host` when it cannot be read).
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "unknown-host".into(), |s| s.trim().to_string())
}

/// This process as a holder: `host:pid`.
pub(crate) fn this_process() -> String {
    format!("{}:{}", hostname(), std::process::id())
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Is the holder `host:pid` gone, or the hold too old?
pub(crate) fn is_stale(holder: &str, since: u64) -> bool {
    if now_secs().saturating_sub(since) > STALE_AFTER.as_secs() {
        return true;
    }
    match holder.rsplit_once(':') {
        Some((host, pid)) if host == hostname() => {
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_holder_is_kept_and_a_gone_or_old_one_is_stale() {
        assert!(!is_stale(&this_process(), now_secs()));
        assert!(is_stale(&format!("{}:999999999", hostname()), now_secs()));
        assert!(is_stale(&this_process(), now_secs() - 31 * 60));
        // Another machine's holder is only stale by age.
        assert!(!is_stale("elsewhere.example:1", now_secs()));
    }
}
