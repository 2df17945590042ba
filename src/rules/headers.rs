//! The `_headers` parser: a path pattern on its own line (starting with `/`, with `:placeholder`
//! segments and one `*` allowed), then indented `Name: value` lines; `#` comments and blank
//! lines ignored. Every rule whose pattern matches a request adds its headers.

use std::path::Path;

use anyhow::Result;

use super::pattern::Pattern;
use super::{MAX_HEADER_LINE, MAX_HEADER_RULES, located};

/// A path pattern and the headers it adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderRule {
    /// 1-based line number of the pattern.
    pub(crate) line: usize,
    pub(crate) pattern: Pattern,
    pub(crate) headers: Vec<Header>,
}

/// One `Name: value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    /// 1-based line number.
    pub(crate) line: usize,
    /// An RFC 9110 token, as written.
    pub(crate) name: String,
    /// Trimmed, not empty, without control characters.
    pub(crate) value: String,
}

/// Headers nginx itself owns (framing, connection management): setting them from `_headers`
/// would break responses, so they are refused.
pub(crate) const FORBIDDEN: [&str; 10] = [
    "connection",
    "content-length",
    "content-encoding",
    "content-type",
    "date",
    "keep-alive",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
];

/// Parse `source`, the contents of `file` (named in errors).
pub(crate) fn parse(file: &Path, source: &str) -> Result<Vec<HeaderRule>> {
    let mut rules: Vec<HeaderRule> = Vec::new();
    for line in super::lines(file, source, MAX_HEADER_LINE) {
        let (n, text) = line?;
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indented = text.starts_with([' ', '\t']);
        if !indented {
            if let Some(prev) = rules.last()
                && prev.headers.is_empty()
            {
                return Err(located(
                    file,
                    prev.line,
                    format!(
                        "{:?} has no headers; add indented `Name: value` lines below it, or remove it",
                        prev.pattern.source
                    ),
                ));
            }
            if rules.len() == MAX_HEADER_RULES {
                return Err(located(
                    file,
                    n,
                    format!(
                        "this is header rule number {}, more than the limit of {MAX_HEADER_RULES}; merge rules with `*` patterns",
                        MAX_HEADER_RULES + 1
                    ),
                ));
            }
            let pattern = if trimmed.contains(": ") && !trimmed.starts_with('/') {
                Err(format!(
                    "{trimmed:?} looks like a header but is not indented; indent it under its path line"
                ))
            } else if trimmed.contains(char::is_whitespace) {
                Err(format!(
                    "{trimmed:?}: a path line holds one path and nothing else; headers go on the indented lines below it"
                ))
            } else {
                Pattern::parse(trimmed)
            }
            .map_err(|m| located(file, n, m))?;
            rules.push(HeaderRule {
                line: n,
                pattern,
                headers: Vec::new(),
            });
            continue;
        }
        let Some(rule) = rules.last_mut() else {
            return Err(located(
                file,
                n,
                "an indented header line comes before any path; start the rule with its path (e.g. /*) on an unindented line",
            ));
        };
        let header = parse_header(trimmed, n).map_err(|m| located(file, n, m))?;
        if let Some(first) = rule
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(&header.name))
        {
            return Err(located(
                file,
                n,
                format!(
                    "{} is already set by this rule on line {}; put both values on one line separated by `, `",
                    header.name, first.line
                ),
            ));
        }
        rule.headers.push(header);
    }
    if let Some(last) = rules.last()
        && last.headers.is_empty()
    {
        return Err(located(
            file,
            last.line,
            format!(
                "{:?} has no headers; add indented `Name: value` lines below it, or remove it",
                last.pattern.source
            ),
        ));
    }
    Ok(rules)
}

fn parse_header(text: &str, line: usize) -> Result<Header, String> {
    if let Some(name) = text.strip_prefix('!') {
        return Err(format!(
            "`!{}` removes a header, which is not supported; remove the line (a default security header can be replaced by setting it to another value)",
            name.trim()
        ));
    }
    let Some((name, value)) = text.split_once(':') else {
        return Err(format!(
            "{text:?} is not a header; write `Name: value` (e.g. `X-Robots-Tag: noindex`)"
        ));
    };
    let name = name.trim_end();
    if name.is_empty() {
        return Err(format!(
            "{text:?} has no header name before the `:`; write `Name: value`"
        ));
    }
    if let Some(c) = name.chars().find(|c| !is_tchar(*c)) {
        return Err(format!(
            "header name {name:?} contains {c:?}; names are letters, digits and !#$%&'*+-.^_`|~ (RFC 9110)"
        ));
    }
    if FORBIDDEN.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "{name} is set by nginx itself and cannot be set from _headers; remove the line"
        ));
    }
    let value = value.trim();
    if value.is_empty() {
        return Err(format!(
            "{name} has an empty value; write a value after the `:` or remove the line"
        ));
    }
    if value.contains('\t') {
        return Err(format!("the value of {name} contains a tab; use spaces"));
    }
    Ok(Header {
        line,
        name: name.to_string(),
        value: value.to_string(),
    })
}

/// RFC 9110 `tchar`.
pub(crate) fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(src: &str) -> Vec<HeaderRule> {
        parse(Path::new("site/_headers"), src).unwrap()
    }

    fn parse_err(src: &str) -> (usize, String) {
        let e = parse(Path::new("site/_headers"), src).unwrap_err();
        let l = crate::located::find(&e).expect("located");
        let line = l.line.expect("line");
        let msg = format!("{e:#}");
        assert!(
            msg.starts_with(&format!("site/_headers, line {line}: ")),
            "{msg}"
        );
        (line, msg)
    }

    #[test]
    fn rules_comments_and_order() {
        let rules = parse_ok(
            "# comment\n/secure/page\n  X-Frame-Options: SAMEORIGIN\n\tReferrer-Policy: no-referrer\n\n/static/*\n  # inside\n  Access-Control-Allow-Origin: *\n  X-Robots-Tag: nosnippet, noarchive\n/u/:user\r\n  Link: </style.css>; rel=preload; as=style\n",
        );
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[0].line, 2);
        assert_eq!(rules[0].headers[1].name, "Referrer-Policy");
        assert_eq!(rules[0].headers[1].line, 4);
        assert_eq!(rules[1].headers[0].value, "*");
        assert!(!rules[1].pattern.is_static());
        assert_eq!(
            rules[2].headers[0].value,
            "</style.css>; rel=preload; as=style"
        );
    }

    #[test]
    fn every_error_names_its_line_and_fix() {
        let cases: &[(&str, usize, &str)] = &[
            ("  X-A: b\n", 1, "before any path"),
            ("/a\n/b\n  X-A: b\n", 1, "no headers"),
            ("/a\n  X-A: b\n/b\n", 3, "no headers"),
            ("/a\n  X-A b\n", 2, "not a header"),
            ("/a\n  : b\n", 2, "no header name"),
            ("/a\n  X A: b\n", 2, "contains ' '"),
            ("/a\n  X(A): b\n", 2, "RFC 9110"),
            ("/a\n  X-A:\n", 2, "empty value"),
            ("/a\n  X-A: b\tc\n", 2, "tab"),
            ("/a\n  ! X-Frame-Options\n", 2, "not supported"),
            ("/a\n  Content-Length: 3\n", 2, "nginx itself"),
            ("/a\n  X-A: 1\n  x-a: 2\n", 3, "line 2"),
            ("/a?x\n  X-A: 1\n", 1, "query string"),
            ("https://x.org/*\n  X-A: 1\n", 1, "absolute URLs"),
            ("X-A: 1\n", 1, "not indented"),
            ("/a /b\n  X-A: 1\n", 1, "one path"),
            ("/a\n  X-A: a\u{1b}b\n", 2, "control character"),
        ];
        for (src, want_line, want) in cases {
            let (line, msg) = parse_err(src);
            assert_eq!(line, *want_line, "{src:?}: {msg}");
            assert!(msg.contains(want), "{src:?}: {msg}");
        }
        let long = format!("/a\n  X-A: {}\n", "v".repeat(MAX_HEADER_LINE));
        let (line, msg) = parse_err(&long);
        assert_eq!(line, 2);
        assert!(msg.contains("limit of 2000"), "{msg}");
    }

    #[test]
    fn limit_of_rules() {
        let src: String = (0..MAX_HEADER_RULES)
            .map(|i| format!("/p{i}\n  X-N: {i}\n"))
            .collect();
        assert_eq!(parse_ok(&src).len(), 100);
        let (line, msg) = parse_err(&format!("{src}/more\n  X-N: x\n"));
        assert_eq!(line, 201);
        assert!(msg.contains("limit of 100"), "{msg}");
    }
}
