//! Compile parsed rules into nginx config text (design: the module doc of [`super`]).

use std::fmt::Write as _;

use anyhow::{Result, anyhow};

use super::headers::HeaderRule;
use super::redirects::{RESERVED, Redirect, TargetPart};

/// The variable holding a literal `$`.
pub(crate) const DOLLAR_VAR: &str = "sitebuild_dollar";

/// A header sitebuild sends on every response unless a `_headers` rule replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DefaultHeader {
    pub(crate) name: &'static str,
    /// The value in nginx syntax, as in the template: a quoted string or a variable.
    pub(crate) value: &'static str,
}

/// The server-level headers of `nginx/nginx.conf.j2`, in its order.
pub(crate) const DEFAULT_HEADERS: &[DefaultHeader] = &[
    DefaultHeader {
        name: "Cache-Control",
        value: "$sitebuild_cache_control",
    },
    DefaultHeader {
        name: "X-Content-Type-Options",
        value: "\"nosniff\"",
    },
    DefaultHeader {
        name: "X-Frame-Options",
        value: "\"DENY\"",
    },
    DefaultHeader {
        name: "Referrer-Policy",
        value: "\"strict-origin-when-cross-origin\"",
    },
    DefaultHeader {
        name: "Content-Security-Policy",
        value: "\"default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'\"",
    },
    DefaultHeader {
        name: "Permissions-Policy",
        value: "\"camera=(), microphone=(), geolocation=()\"",
    },
];

/// The compiled rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Compiled {
    /// For the `http {}` block, before `server`: maps and the `$sitebuild_dollar` geo.
    pub(crate) http: String,
    /// For the `server {}` block, before the first `location`, replacing the template's
    /// `add_header` lines: every `add_header`, then the redirect rules.
    pub(crate) server: String,
}

/// Double-quote `s` for a place where nginx interpolates variables: `\` and `"` escaped, `$` as
/// `${sitebuild_dollar}`. Control characters are refused (the parsers refuse them first).
pub(crate) fn quote_value(s: &str) -> Result<String> {
    quote(s, true)
}

/// Double-quote `s` for a place where nginx does not interpolate (`location =`, map keys).
pub(crate) fn quote_literal(s: &str) -> Result<String> {
    quote(s, false)
}

fn quote(s: &str, interpolated: bool) -> Result<String> {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '$' if interpolated => {
                out.push_str("${");
                out.push_str(DOLLAR_VAR);
                out.push('}');
            }
            c if c.is_control() => {
                return Err(anyhow!(
                    "refusing to write {s:?} into the nginx config: it contains {c:?}"
                ));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

/// Double-quote a regex built by [`super::pattern::Pattern::regex`] (or this crate's fixed
/// regexes) after checking what makes that safe without escaping: no `"`, no control or
/// whitespace character, and every backslash starts `\x`, `\.` or `\|` (sequences nginx's
/// parser leaves alone).
pub(crate) fn quote_regex(re: &str) -> Result<String> {
    let bad = re
        .chars()
        .any(|c| c == '"' || c.is_control() || c.is_whitespace())
        || re
            .split('\\')
            .skip(1)
            .any(|after| !after.starts_with(['x', '.', '|', '?']));
    if bad {
        return Err(anyhow!(
            "refusing to write the regex {re:?} into the nginx config (internal error)"
        ));
    }
    Ok(format!("\"{re}\""))
}

/// The regex of a pattern that never matches the reserved paths.
fn guarded_regex(regex: &str) -> String {
    let guard: String = RESERVED
        .iter()
        .map(|p| format!("(?!{}$)", super::pattern::regex_escape(p)))
        .collect();
    format!("^{guard}{}", &regex[1..])
}

/// A target as an interpolated nginx value: captures as `$N`, `$is_args$args` appended to a
/// 3xx target without its own query or fragment.
fn target_value(rule: &Redirect) -> Result<String> {
    let mut out = String::from("\"");
    for part in &rule.to.parts {
        match part {
            TargetPart::Literal(s) => {
                let q = quote_value(s)?;
                out.push_str(&q[1..q.len() - 1]);
            }
            TargetPart::Capture(n) => write!(out, "${n}")?,
        }
    }
    if rule.status != 200 && !rule.to.has_query_or_fragment() {
        out.push_str("$is_args$args");
    }
    out.push('"');
    Ok(out)
}

/// Compile `redirects` and `headers` with the server-level `defaults`.
pub(crate) fn compile(
    redirects: &[Redirect],
    headers: &[HeaderRule],
    defaults: &[DefaultHeader],
) -> Result<Compiled> {
    let mut http = String::new();
    let mut server = String::new();
    let mut uses_dollar = false;

    // Headers: one map per default a rule overrides, one per other header line.
    if !headers.is_empty() {
        http.push_str("# _headers: the value of each header per path (\"\" sends nothing).\n");
    }
    for (i, d) in defaults.iter().enumerate() {
        let overrides: Vec<_> = headers
            .iter()
            .flat_map(|r| {
                r.headers
                    .iter()
                    .filter(|h| h.name.eq_ignore_ascii_case(d.name))
                    .map(move |h| (r, h))
            })
            .collect();
        if overrides.is_empty() {
            writeln!(server, "add_header {} {} always;", d.name, d.value)?;
            continue;
        }
        let var = format!("$sitebuild_default_header_{}", i + 1);
        writeln!(http, "map $uri {var} {{")?;
        writeln!(http, "    default {};", d.value)?;
        for (rule, h) in overrides {
            uses_dollar |= h.value.contains('$');
            writeln!(
                http,
                "    {} {}; # line {}",
                quote_regex(&format!("~{}", rule.pattern.regex(false)))?,
                quote_value(&h.value)?,
                h.line
            )?;
        }
        http.push_str("}\n");
        writeln!(server, "add_header {} {var} always;", d.name)?;
    }
    let mut n = 0;
    for rule in headers {
        for h in &rule.headers {
            if defaults
                .iter()
                .any(|d| d.name.eq_ignore_ascii_case(&h.name))
            {
                continue;
            }
            n += 1;
            uses_dollar |= h.value.contains('$');
            let var = format!("$sitebuild_header_{n}");
            writeln!(http, "map $uri {var} {{ # line {}", h.line)?;
            http.push_str("    default \"\";\n");
            writeln!(
                http,
                "    {} {};",
                quote_regex(&format!("~{}", rule.pattern.regex(false)))?,
                quote_value(&h.value)?
            )?;
            http.push_str("}\n");
            writeln!(
                server,
                "add_header {} {var} always;",
                quote_literal(&h.name)?
            )?;
        }
    }

    // Redirects: exact paths from maps, then patterns, in file order.
    let statics: Vec<&Redirect> = redirects.iter().filter(|r| r.from.is_static()).collect();
    if !statics.is_empty() {
        http.push_str("# _redirects, exact paths (nginx's map lookup ignores case; the last map keeps case-exact hits).\n");
        let mut from = String::from("map $uri $sitebuild_redirect_from {\n    default \"\";\n");
        let mut status =
            String::from("map $uri $sitebuild_redirect_any_status {\n    default \"\";\n");
        let mut to = String::from("map $uri $sitebuild_redirect_to {\n    default \"\";\n");
        for r in &statics {
            let path = r.from.static_path().unwrap_or_default();
            let key = quote_literal(&path)?;
            uses_dollar |= path.contains('$') || r.to.source.contains('$');
            writeln!(from, "    {key} {};", quote_value(&path)?)?;
            writeln!(status, "    {key} {};", r.status)?;
            writeln!(to, "    {key} {}; # line {}", target_value(r)?, r.line)?;
        }
        for m in [from, status, to] {
            http.push_str(&m);
            http.push_str("}\n");
        }
        http.push_str(
            "map \"$sitebuild_redirect_from|$uri\" $sitebuild_redirect_status {\n    default \"\";\n    \"~^(.+)\\|\\1$\" $sitebuild_redirect_any_status;\n}\n",
        );
        let mut used: Vec<u16> = statics.iter().map(|r| r.status).collect();
        used.sort_unstable();
        used.dedup();
        for code in used {
            if code == 200 {
                server.push_str(
                    "if ($sitebuild_redirect_status = 200) {\n    rewrite ^ $sitebuild_redirect_to last;\n}\n",
                );
            } else {
                writeln!(
                    server,
                    "if ($sitebuild_redirect_status = {code}) {{\n    return {code} $sitebuild_redirect_to;\n}}"
                )?;
            }
        }
    }
    for r in redirects.iter().filter(|r| !r.from.is_static()) {
        uses_dollar |= r.to.source.contains('$');
        let re = quote_regex(&guarded_regex(&r.from.regex(true)))?;
        let target = target_value(r)?;
        writeln!(server, "# _redirects line {}", r.line)?;
        if r.status == 200 {
            writeln!(server, "rewrite {re} {target} last;")?;
        } else {
            writeln!(
                server,
                "if ($uri ~ {re}) {{\n    return {} {target};\n}}",
                r.status
            )?;
        }
    }
    if uses_dollar {
        http.insert_str(
            0,
            &format!("# A literal $ (nginx has no escape for it in strings).\ngeo ${DOLLAR_VAR} {{\n    default \"$\";\n}}\n"),
        );
    }
    Ok(Compiled { http, server })
}
