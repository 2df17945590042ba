//! Path patterns shared by `_redirects` (the `from` field) and `_headers` (the rule's first line):
//! literal text, `:placeholder` path segments and at most one `*` splat.
//!
//! A pattern is validated to a strict character set when parsed, kept in decoded form (nginx
//! matches locations, `$uri` and map keys against the decoded, normalised URI), and only turned
//! into nginx text by [`Pattern::regex`] (every ASCII character other than letters, digits and
//! `/` becomes a `\xHH` escape, so no regex metacharacter and no nginx syntax character of the
//! user's reaches the config) or by [`super::nginx::quote`].

/// Most capture groups one rule may use: nginx numbers captures `$1`…`$9`.
pub(crate) const MAX_CAPTURES: usize = 9;

/// What a placeholder matches: one path segment, never a control character or a space (a
/// captured value is written into a `Location` header; refusing them rules out header
/// splitting with `%0d%0a` in the request).
pub(crate) const PLACEHOLDER_RE: &str = r"[^/\x00-\x20\x7f]+";

/// What a splat matches: the rest (or a middle part) of the path, with the same exclusions.
pub(crate) const SPLAT_RE: &str = r"[^\x00-\x20\x7f]*";

/// One piece of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    /// Decoded literal text (may contain `/`).
    Literal(String),
    /// `:name`, a whole path segment.
    Placeholder(String),
    /// `*`.
    Splat,
}

/// A parsed path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    /// The text as written in the file (for messages).
    pub(crate) source: String,
    pub(crate) parts: Vec<Part>,
}

/// Characters allowed verbatim in a pattern besides ASCII letters and digits, `/`, `:` and
/// `*` (which have a meaning) and `%XX` escapes: RFC 3986 unreserved and sub-delimiters.
const PATTERN_PUNCT: &str = "-._~!$&'()+,;=@";

impl Pattern {
    /// Parse `text` (the `from` of a redirect or the path line of a header rule). Errors are
    /// the problem and the fix, without a location (the caller adds file and line).
    pub(crate) fn parse(text: &str) -> Result<Pattern, String> {
        if text.starts_with("http://") || text.starts_with("https://") {
            return Err(format!(
                "{text:?}: only paths of this site can be matched, not absolute URLs; write the path alone (e.g. /old-page)"
            ));
        }
        if !text.starts_with('/') {
            return Err(format!(
                "{text:?} is not a path; paths start with / (e.g. /blog/*)"
            ));
        }
        if let Some(i) = text.find('?') {
            return Err(format!(
                "{text:?} contains a query string ({:?}); rules match the path only, remove everything from the `?`",
                &text[i..]
            ));
        }
        if text.contains('#') {
            return Err(format!(
                "{text:?} contains a `#` fragment, which browsers never send; remove it"
            ));
        }
        if text.matches('*').count() > 1 {
            return Err(format!(
                "{text:?} has more than one `*`; one splat per pattern is supported"
            ));
        }
        let mut parts: Vec<Part> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        let segments: Vec<&str> = text[1..].split('/').collect();
        let last = segments.len() - 1;
        let mut literal = String::from("/");
        for (i, seg) in segments.iter().enumerate() {
            if seg.is_empty() && i != last {
                return Err(format!(
                    "{text:?} has an empty path segment (`//`), which never matches (nginx merges slashes); remove the extra `/`"
                ));
            }
            if *seg == "." || *seg == ".." {
                return Err(format!(
                    "{text:?} has a `{seg}` segment, which never matches (nginx resolves it); write the path without it"
                ));
            }
            if let Some(name) = seg.strip_prefix(':') {
                if !is_identifier(name) {
                    return Err(format!(
                        "{text:?}: placeholder `:{name}` must be a letter followed by letters, digits or `_`, and fill a whole path segment"
                    ));
                }
                if names.iter().any(|n| n == name) {
                    return Err(format!(
                        "{text:?} uses placeholder `:{name}` twice; give each placeholder its own name"
                    ));
                }
                if name == "splat" {
                    return Err(format!(
                        "{text:?}: `:splat` is the name of the `*` match; use `*` here or another name"
                    ));
                }
                names.push(name.to_string());
                flush(&mut parts, &mut literal);
                parts.push(Part::Placeholder(name.to_string()));
            } else {
                let mut pieces = seg.split('*');
                let first = pieces.next().unwrap_or_default();
                literal.push_str(&decode(text, first)?);
                for piece in pieces {
                    flush(&mut parts, &mut literal);
                    parts.push(Part::Splat);
                    literal.push_str(&decode(text, piece)?);
                }
            }
            if i != last {
                literal.push('/');
            }
        }
        flush(&mut parts, &mut literal);
        let pattern = Pattern {
            source: text.to_string(),
            parts,
        };
        if pattern.captures() > MAX_CAPTURES {
            return Err(format!(
                "{text:?} has {} placeholders and splats; at most {MAX_CAPTURES} are supported",
                pattern.captures()
            ));
        }
        Ok(pattern)
    }

    /// True when the pattern is one exact path (no placeholder, no splat).
    pub(crate) fn is_static(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    /// The exact path of a static pattern.
    pub(crate) fn static_path(&self) -> Option<String> {
        if !self.is_static() {
            return None;
        }
        Some(
            self.parts
                .iter()
                .map(|p| match p {
                    Part::Literal(s) => s.as_str(),
                    _ => "",
                })
                .collect(),
        )
    }

    /// Number of capture groups (placeholders and the splat).
    pub(crate) fn captures(&self) -> usize {
        self.parts
            .iter()
            .filter(|p| !matches!(p, Part::Literal(_)))
            .count()
    }

    /// The capture number (1-based, in pattern order) of placeholder `name`, or of the splat
    /// for `"splat"`.
    pub(crate) fn capture_of(&self, name: &str) -> Option<usize> {
        let mut n = 0;
        for p in &self.parts {
            match p {
                Part::Literal(_) => {}
                Part::Placeholder(p) => {
                    n += 1;
                    if p == name {
                        return Some(n);
                    }
                }
                Part::Splat => {
                    n += 1;
                    if name == "splat" {
                        return Some(n);
                    }
                }
            }
        }
        None
    }

    /// The anchored PCRE for this pattern, capturing placeholders and the splat when `capture`,
    /// with non-capturing groups otherwise. It contains only ASCII letters, digits, `/`,
    /// backslash escapes and the fixed fragments of this module: safe inside a double-quoted
    /// nginx string (no `"`, and no backslash that nginx's parser would reinterpret).
    pub(crate) fn regex(&self, capture: bool) -> String {
        let open = if capture { "(" } else { "(?:" };
        let mut re = String::from("^");
        for p in &self.parts {
            match p {
                Part::Literal(s) => re.push_str(&regex_escape(s)),
                Part::Placeholder(_) => {
                    re.push_str(open);
                    re.push_str(PLACEHOLDER_RE);
                    re.push(')');
                }
                Part::Splat => {
                    re.push_str(open);
                    re.push_str(SPLAT_RE);
                    re.push(')');
                }
            }
        }
        re.push('$');
        re
    }

    /// Whether the decoded path `path` matches, with the same semantics as [`Pattern::regex`]
    /// (used at build time to find rules that can never apply).
    pub(crate) fn matches(&self, path: &str) -> bool {
        fn go(parts: &[Part], s: &str) -> bool {
            let Some((first, rest)) = parts.split_first() else {
                return s.is_empty();
            };
            match first {
                Part::Literal(l) => s.strip_prefix(l.as_str()).is_some_and(|s| go(rest, s)),
                Part::Placeholder(_) | Part::Splat => {
                    let placeholder = matches!(first, Part::Placeholder(_));
                    let mut ends: Vec<usize> = if placeholder { vec![] } else { vec![0] };
                    for (i, c) in s.char_indices() {
                        if (c as u32) <= 0x20 || c == '\x7f' || (placeholder && c == '/') {
                            break;
                        }
                        ends.push(i + c.len_utf8());
                    }
                    ends.into_iter().any(|e| go(rest, &s[e..]))
                }
            }
        }
        go(&self.parts, path)
    }
}

fn flush(parts: &mut Vec<Part>, literal: &mut String) {
    if !literal.is_empty() {
        parts.push(Part::Literal(std::mem::take(literal)));
    }
}

/// `[A-Za-z][A-Za-z0-9_]*`.
pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Check the raw characters of one literal piece and percent-decode it.
fn decode(text: &str, piece: &str) -> Result<String, String> {
    let mut bytes = Vec::with_capacity(piece.len());
    let raw = piece.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'%' {
            let hex = piece.get(i + 1..i + 3).unwrap_or("");
            match u8::from_str_radix(hex, 16) {
                Ok(v) if hex.len() == 2 && hex.bytes().all(|h| h.is_ascii_hexdigit()) => {
                    bytes.push(v);
                    i += 3;
                    continue;
                }
                _ => {
                    return Err(format!(
                        "{text:?} has a `%` that does not start a %XX escape; write a literal % as %25"
                    ));
                }
            }
        }
        if b.is_ascii_alphanumeric() || b == b':' || b >= 0x80 || PATTERN_PUNCT.contains(b as char)
        {
            bytes.push(b);
            i += 1;
        } else {
            let c = piece[i..].chars().next().unwrap_or('?');
            return Err(format!(
                "{text:?} contains {c:?}, which is not allowed in a path pattern; percent-encode it (e.g. %{b:02X})"
            ));
        }
    }
    let s = String::from_utf8(bytes).map_err(|_| {
        format!("{text:?}: its %XX escapes do not decode to UTF-8; fix the escapes")
    })?;
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(format!(
            "{text:?} decodes to a control character ({c:?}); remove that escape"
        ));
    }
    Ok(s)
}

/// Escape literal text for a PCRE: ASCII letters, digits, `/` and non-ASCII characters stay,
/// every other character becomes `\xHH` (never special in PCRE, never special to nginx's
/// string parser, which only rewrites `\"`, `\'`, `\\`, `\t`, `\r` and `\n`).
pub(crate) fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '/' || !c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\x{:02x}", c as u32));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_parts() {
        let p = Pattern::parse("/blog/:year/:slug/*").unwrap();
        assert_eq!(
            p.parts,
            vec![
                Part::Literal("/blog/".into()),
                Part::Placeholder("year".into()),
                Part::Literal("/".into()),
                Part::Placeholder("slug".into()),
                Part::Literal("/".into()),
                Part::Splat,
            ]
        );
        assert_eq!(p.capture_of("slug"), Some(2));
        assert_eq!(p.capture_of("splat"), Some(3));
        assert_eq!(p.capture_of("nope"), None);
        assert!(!p.is_static());
        let s = Pattern::parse("/a%20b/c.html").unwrap();
        assert_eq!(s.static_path().as_deref(), Some("/a b/c.html"));
        assert_eq!(
            Pattern::parse("/").unwrap().static_path().as_deref(),
            Some("/")
        );
        assert_eq!(
            Pattern::parse("/docs/").unwrap().static_path().as_deref(),
            Some("/docs/")
        );
        assert_eq!(
            Pattern::parse("/wiki/Talk:Main")
                .unwrap()
                .static_path()
                .as_deref(),
            Some("/wiki/Talk:Main")
        );
    }

    #[test]
    fn regex_escapes_everything_but_alphanumerics() {
        let p = Pattern::parse("/a.b(c)$/:x/*").unwrap();
        assert_eq!(
            p.regex(true),
            r"^/a\x2eb\x28c\x29\x24/([^/\x00-\x20\x7f]+)/([^\x00-\x20\x7f]*)$"
        );
        assert!(p.regex(false).contains("(?:"));
    }

    #[test]
    fn matcher_agrees_with_regex_semantics() {
        let p = Pattern::parse("/blog/:slug/*").unwrap();
        assert!(p.matches("/blog/a/"));
        assert!(p.matches("/blog/a/b/c"));
        assert!(!p.matches("/blog//x"));
        assert!(!p.matches("/blog/a b/x"));
        let q = Pattern::parse("/img*.png").unwrap();
        assert!(q.matches("/img.png") && q.matches("/img/x/y.png"));
        assert!(!q.matches("/img.jpg"));
    }

    #[test]
    fn refusals_name_the_fix() {
        for (text, want) in [
            ("/a?b=1", "query string"),
            ("a/b", "start with /"),
            ("https://x.org/a", "absolute URLs"),
            ("/a#b", "fragment"),
            ("/a/*/*", "more than one"),
            ("/a//b", "empty path segment"),
            ("/a/../b", "`..`"),
            ("/:1x", "placeholder"),
            ("/:a/:a", "twice"),
            ("/:splat", "`:splat`"),
            ("/a b", "percent-encode"),
            ("/a\"b", "percent-encode"),
            ("/a{b}", "percent-encode"),
            ("/a%2", "%XX"),
            ("/a%zz", "%XX"),
            ("/a%0a", "control"),
            ("/a%ff", "UTF-8"),
            ("/:a/:b/:c/:d/:e/:f/:g/:h/:i/*", "at most 9"),
        ] {
            let e = Pattern::parse(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
