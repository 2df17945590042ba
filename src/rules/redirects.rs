//! The `_redirects` parser: one rule per line, `from to [status]`, `#` comments and blank lines
//! ignored, first match wins.
//!
//! - `from`: a path of this site (see [`Pattern`]): `:name` placeholders fill one segment, one
//!   `*` splat matches the rest; no query string.
//! - `to`: a path of this site, or for 3xx an `http(s)://` URL; `:name` and `:splat` are
//!   replaced by what the placeholder or `*` matched.
//! - `status`: 301 (default), 302, 303, 307, 308, or 200 (serve `to` without redirecting; only a
//!   path of this site).

use std::path::Path;

use anyhow::Result;

use super::pattern::{Pattern, is_identifier};
use super::{MAX_DYNAMIC_REDIRECTS, MAX_REDIRECT_LINE, MAX_STATIC_REDIRECTS, located};

/// The statuses a rule may have.
pub(crate) const STATUSES: [u16; 6] = [301, 302, 303, 307, 308, 200];

/// The status of a rule without one.
pub(crate) const DEFAULT_STATUS: u16 = 301;

/// Paths no rule may take over.
pub(crate) const RESERVED: [&str; 1] = ["/healthz"];

/// One `_redirects` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Redirect {
    /// 1-based line number in the file.
    pub(crate) line: usize,
    pub(crate) from: Pattern,
    pub(crate) to: Target,
    pub(crate) status: u16,
}

/// Where a rule sends the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// As written.
    pub(crate) source: String,
    /// An `http(s)://` URL rather than a path of this site.
    pub(crate) external: bool,
    pub(crate) parts: Vec<TargetPart>,
}

/// A piece of a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TargetPart {
    /// Text, already validated to the URL character set.
    Literal(String),
    /// What capture `n` (1-based) of `from` matched.
    Capture(usize),
}

impl Target {
    /// Whether the target brings its own query string or fragment.
    pub(crate) fn has_query_or_fragment(&self) -> bool {
        self.source.contains('?') || self.source.contains('#')
    }
}

/// Parse `source`, the contents of `file` (named in errors).
pub(crate) fn parse(file: &Path, source: &str) -> Result<Vec<Redirect>> {
    let mut rules: Vec<Redirect> = Vec::new();
    for line in super::lines(file, source, MAX_REDIRECT_LINE) {
        let (n, text) = line?;
        let fields: Vec<&str> = text
            .split_ascii_whitespace()
            .take_while(|f| !f.starts_with('#'))
            .collect();
        if fields.is_empty() {
            continue;
        }
        let rule = parse_fields(&fields, n).map_err(|m| located(file, n, m))?;
        check_against_earlier(&rule, &rules).map_err(|m| located(file, n, m))?;
        rules.push(rule);
    }
    let (mut statics, mut dynamics) = (0, 0);
    for rule in &rules {
        let (count, max, kind) = if rule.from.is_static() {
            statics += 1;
            (statics, MAX_STATIC_REDIRECTS, "exact-path")
        } else {
            dynamics += 1;
            (
                dynamics,
                MAX_DYNAMIC_REDIRECTS,
                "pattern (placeholder or splat)",
            )
        };
        if count > max {
            return Err(located(
                file,
                rule.line,
                format!(
                    "this is {kind} redirect number {count}, more than the limit of {max}; merge rules into patterns or remove some"
                ),
            ));
        }
    }
    Ok(rules)
}

fn parse_fields(fields: &[&str], line: usize) -> Result<Redirect, String> {
    let from_text = fields[0];
    if fields.len() == 1 {
        return Err(format!(
            "{from_text:?} has no destination; write `from to [status]`, e.g. `{from_text} /new-path 301`"
        ));
    }
    if fields.len() > 3 {
        return Err(format!(
            "unexpected {:?} after the status; a rule is `from to [status]` (query parameter matching and conditions such as Country= are not supported)",
            fields[3..].join(" ")
        ));
    }
    if fields[1].contains('=') && !fields[1].starts_with('/') && !fields[1].contains("://") {
        return Err(format!(
            "{:?} looks like query parameter matching, which is not supported; a rule is `from to [status]`",
            fields[1]
        ));
    }
    let status = match fields.get(2) {
        None => DEFAULT_STATUS,
        Some(s) => parse_status(s)?,
    };
    let from = Pattern::parse(from_text)?;
    if let Some(path) = from.static_path()
        && RESERVED.contains(&path.as_str())
    {
        return Err(format!(
            "{path} is sitebuild's health check and cannot be redirected; remove this rule"
        ));
    }
    let to = parse_target(fields[1], &from, status)?;
    if let (Some(path), false) = (from.static_path(), to.external)
        && status != 200
        && to.parts == [TargetPart::Literal(path.clone())]
    {
        return Err(format!(
            "{path} redirects to itself, a loop in the browser; change the destination or remove the rule"
        ));
    }
    Ok(Redirect {
        line,
        from,
        to,
        status,
    })
}

fn parse_status(s: &str) -> Result<u16, String> {
    if let Some(code) = s.strip_suffix('!') {
        return Err(format!(
            "`{s}`: the `!` (force) is not needed, rules always apply even when a file exists; write `{code}`"
        ));
    }
    match s.parse::<u16>() {
        Ok(code) if STATUSES.contains(&code) => Ok(code),
        _ => Err(format!(
            "unsupported status {s:?}; use 301 (permanent, the default), 302, 303, 307, 308, or 200 (serve the destination without redirecting)"
        )),
    }
}

/// Characters allowed in a destination besides ASCII letters and digits.
const TARGET_PUNCT: &str = "-._~!$&'()*+,;=:@/?#%[]";

fn parse_target(text: &str, from: &Pattern, status: u16) -> Result<Target, String> {
    let external = text.starts_with("https://") || text.starts_with("http://");
    if external {
        if status == 200 {
            return Err(format!(
                "status 200 serves a file of this site, {text:?} is another site (proxying is not supported); use 301/302/307/308 to redirect there, or a path starting with /"
            ));
        }
        let rest = text.split_once("://").map(|(_, r)| r).unwrap_or_default();
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (host, port) = authority.split_once(':').unwrap_or((authority, ""));
        let host_ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        let port_ok = authority.contains(':') != port.is_empty()
            && port.chars().all(|c| c.is_ascii_digit())
            && port.len() <= 5;
        if !host_ok || !port_ok {
            return Err(format!(
                "{text:?}: the host {authority:?} is not a plain host name (letters, digits, `-`, `.`, optionally `:port`); fix the URL"
            ));
        }
    } else if !text.starts_with('/') {
        return Err(format!(
            "destination {text:?} is neither a path (starting with /) nor an http(s):// URL; e.g. /new-page or https://example.com/"
        ));
    } else if text.starts_with("//") {
        return Err(format!(
            "destination {text:?} starts with //, which browsers read as another host; write one / or a full https:// URL"
        ));
    }
    for (i, c) in text.char_indices() {
        let ok = c.is_ascii_alphanumeric()
            || TARGET_PUNCT.contains(c)
            || (!c.is_ascii() && status == 200);
        if !ok {
            return Err(if c.is_ascii() {
                format!(
                    "destination {text:?} contains {c:?}; percent-encode it (%{:02X})",
                    c as u32
                )
            } else {
                format!(
                    "destination {text:?} contains {c:?}; percent-encode it (UTF-8 bytes as %XX)"
                )
            });
        }
        if c == '%' && status != 200 {
            let hex = text.get(i + 1..i + 3).unwrap_or("");
            if hex.len() != 2 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "destination {text:?} has a `%` that does not start a %XX escape; write a literal % as %25"
                ));
            }
        }
    }
    if status == 200 {
        if let Some(c) = text.chars().find(|c| matches!(c, '?' | '#' | '%')) {
            return Err(format!(
                "destination {text:?} contains {c:?}; a 200 rule serves a file, so write its path as it is on disk, without query, fragment or %-escapes"
            ));
        }
        if text.split('/').any(|s| s == "." || s == "..") {
            return Err(format!(
                "destination {text:?} has a `.` or `..` segment; write the file's path from the top of the site"
            ));
        }
    }
    let parts = substitute(text, from)?;
    Ok(Target {
        source: text.to_string(),
        external,
        parts,
    })
}

/// Split `text` into literals and captures: `:name` (a placeholder of `from`) and `:splat`.
fn substitute(text: &str, from: &Pattern) -> Result<Vec<TargetPart>, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(':') {
        literal.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let name = &after[..len];
        if is_identifier(name) {
            if let Some(n) = from.capture_of(name) {
                if !literal.is_empty() {
                    parts.push(TargetPart::Literal(std::mem::take(&mut literal)));
                }
                parts.push(TargetPart::Capture(n));
                rest = &after[len..];
                continue;
            }
            if name == "splat" {
                return Err(format!(
                    "destination {text:?} uses :splat but {:?} has no `*`; add a `*` to the source or remove :splat",
                    from.source
                ));
            }
            if !from.is_static() {
                return Err(format!(
                    "destination {text:?} uses :{name}, which is not a placeholder of {:?}; fix the name, or write a literal colon as %3A",
                    from.source
                ));
            }
        }
        literal.push(':');
        rest = after;
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(TargetPart::Literal(literal));
    }
    Ok(parts)
}

/// Exact-path rules are checked before patterns (see the module doc of [`super`]), so a rule
/// that an earlier one already catches is refused rather than silently reordered.
fn check_against_earlier(rule: &Redirect, earlier: &[Redirect]) -> Result<(), String> {
    let Some(path) = rule.from.static_path() else {
        return Ok(());
    };
    for e in earlier {
        match e.from.static_path() {
            Some(p) if p == path => {
                return Err(format!(
                    "{path} already has a rule on line {}; the first one wins, remove this one",
                    e.line
                ));
            }
            Some(p) if p.eq_ignore_ascii_case(&path) => {
                return Err(format!(
                    "{path} and {p} (line {}) differ only in letter case; exact paths are looked up without regard to case, keep one of them",
                    e.line
                ));
            }
            None if e.from.matches(&path) => {
                return Err(format!(
                    "this rule never applies: {:?} on line {} comes first and matches {path}; move this line above it",
                    e.from.source, e.line
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::pattern::Part;

    fn parse_ok(src: &str) -> Vec<Redirect> {
        parse(Path::new("site/_redirects"), src).unwrap()
    }

    /// (line, message) of the error.
    fn parse_err(src: &str) -> (usize, String) {
        let e = parse(Path::new("site/_redirects"), src).unwrap_err();
        let l = crate::located::find(&e).expect("located");
        assert_eq!(l.file, Path::new("site/_redirects"));
        let msg = format!("{e:#}");
        let line = l.line.expect("line");
        assert!(
            msg.starts_with(&format!("site/_redirects, line {line}: ")),
            "{msg}"
        );
        (line, msg)
    }

    #[test]
    fn every_status_and_the_default() {
        let rules = parse_ok(
            "/a /b\n/c /d 301\n/e /f 302\n/g /h 303\n/i /j 307\n/k /l 308\n/m /n.html 200\n",
        );
        let statuses: Vec<u16> = rules.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [301, 301, 302, 303, 307, 308, 200]);
        let lines: Vec<usize> = rules.iter().map(|r| r.line).collect();
        assert_eq!(lines, [1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn comments_blank_lines_whitespace_and_crlf() {
        let rules = parse_ok(
            "# old blog\n\n   \n\t/old\t\t/new   302  # moved in 2024\r\n# /x /y\n/z https://example.com:8443/p?q=1#top\n",
        );
        assert_eq!(rules.len(), 2);
        assert_eq!((rules[0].line, rules[0].status), (4, 302));
        assert_eq!(rules[0].to.source, "/new");
        assert_eq!(rules[1].line, 6);
        assert!(rules[1].to.external && rules[1].to.has_query_or_fragment());
    }

    #[test]
    fn placeholders_and_splats_become_captures() {
        let rules = parse_ok(
            "/news/:year/:month/:slug /blog/:year-:month/:slug.html\n/docs/* /manual/:splat 302\n/app/* /app/index.html 200\n",
        );
        assert_eq!(
            rules[0].to.parts,
            vec![
                TargetPart::Literal("/blog/".into()),
                TargetPart::Capture(1),
                TargetPart::Literal("-".into()),
                TargetPart::Capture(2),
                TargetPart::Literal("/".into()),
                TargetPart::Capture(3),
                TargetPart::Literal(".html".into()),
            ]
        );
        assert_eq!(
            rules[1].to.parts,
            vec![
                TargetPart::Literal("/manual/".into()),
                TargetPart::Capture(1)
            ]
        );
        assert_eq!(rules[1].from.parts[1], Part::Splat);
        assert_eq!(rules[2].status, 200);
        // A colon that is not a placeholder stays in a static rule's destination.
        let r = parse_ok("/talk /wiki/Talk:Main\n");
        assert_eq!(
            r[0].to.parts,
            vec![TargetPart::Literal("/wiki/Talk:Main".into())]
        );
    }

    #[test]
    fn order_is_kept_and_shadowed_rules_are_refused() {
        let rules = parse_ok("/a/x /one\n/a/* /two\n/b/* /three\n/b/:p /four\n");
        let froms: Vec<&str> = rules.iter().map(|r| r.from.source.as_str()).collect();
        assert_eq!(froms, ["/a/x", "/a/*", "/b/*", "/b/:p"]);
        let (line, msg) = parse_err("/a/* /two\n\n/a/x /one\n");
        assert_eq!(line, 3);
        assert!(
            msg.contains("never applies") && msg.contains("line 1"),
            "{msg}"
        );
        let (line, msg) = parse_err("/a /b\n/a /c\n");
        assert_eq!(line, 2);
        assert!(msg.contains("already has a rule on line 1"), "{msg}");
        let (line, msg) = parse_err("/About /b\n# x\n/about /c\n");
        assert_eq!(line, 3);
        assert!(msg.contains("letter case"), "{msg}");
    }

    #[test]
    fn every_error_names_its_line_and_fix() {
        let cases: &[(&str, usize, &str)] = &[
            ("/a /b\n/c\n", 2, "no destination"),
            ("/a /b 404\n", 1, "unsupported status"),
            ("/a /b 200!\n", 1, "force"),
            ("/a /b 301 Country=au\n", 1, "Country="),
            ("/store id=:id /blog/:id 301\n", 1, "query parameter"),
            ("\n/a?x=1 /b\n", 2, "query string"),
            ("/a https://x.org/ 200\n", 1, "proxying"),
            ("/a //evil.org/\n", 1, "another host"),
            ("/a b\n", 1, "neither a path"),
            ("/a /b\"c\n", 1, "percent-encode"),
            ("/a /b{c}\n", 1, "percent-encode"),
            ("/a /b\\c\n", 1, "percent-encode"),
            ("/a /é\n", 1, "percent-encode"),
            ("/a /b%zz\n", 1, "%25"),
            ("/a /b?x=1 200\n", 1, "without query"),
            ("/a /../x 200\n", 1, "`..`"),
            ("/a ftp://x.org/\n", 1, "neither a path"),
            ("/a https://x.org:99x/\n", 1, "plain host"),
            ("/a https:///x\n", 1, "plain host"),
            ("/a/* /b/:splot\n", 1, ":splot"),
            ("/a /b/:splat\n", 1, "no `*`"),
            ("/healthz /x\n", 1, "health check"),
            ("/a /a 302\n", 1, "itself"),
            ("/a\u{7} /b\n", 1, "control character"),
        ];
        for (src, want_line, want) in cases {
            let (line, msg) = parse_err(src);
            assert_eq!(line, *want_line, "{src:?}: {msg}");
            assert!(msg.contains(want), "{src:?}: {msg}");
        }
        let long = format!("/a /{}\n", "x".repeat(MAX_REDIRECT_LINE));
        let (line, msg) = parse_err(&format!("# ok\n{long}"));
        assert_eq!(line, 2);
        assert!(msg.contains("limit of 1000"), "{msg}");
    }

    #[test]
    fn limits() {
        let mut src: String = (0..MAX_STATIC_REDIRECTS)
            .map(|i| format!("/s{i} /t\n"))
            .collect();
        src.extend((0..MAX_DYNAMIC_REDIRECTS).map(|i| format!("/d{i}/* /t\n")));
        assert_eq!(parse_ok(&src).len(), 2100);
        let (line, msg) = parse_err(&format!("{src}/one-more /t\n"));
        assert_eq!(line, 2101);
        assert!(msg.contains("limit of 2000"), "{msg}");
        let (line, msg) = parse_err(&format!("{src}/more/* /t\n"));
        assert_eq!(line, 2101);
        assert!(msg.contains("limit of 100"), "{msg}");
    }
}
