//! `_redirects` and `_headers` (the Netlify / Cloudflare Pages files at the top of the site
//! directory), clean URLs, trailing slashes and nested 404 pages, compiled into nginx config text.
//!
//! Pure: text in, text out. Reading the files is [`load`]; everything else works on strings.
//!
//! # Output and where it goes
//!
//! [`compile`] returns a [`Compiled`] with two pieces of text:
//! - [`Compiled::http`], for the `http {}` block before the `server` block: the `map`s that
//!   hold exact redirects and header values, and (only when a user value contains `$`)
//!   `geo $sitebuild_dollar { default "$"; }`.
//! - [`Compiled::server`], for the `server {}` block, before the first `location`, in place of
//!   the template's own `add_header` lines: one `add_header` per security default (value
//!   from a map when a rule overrides it) and per `_headers` line, then the redirect rules.
//!
//! # Redirects: the server rewrite phase, in document order
//!
//! Every rule is a directive of the rewrite module at server level, so nginx runs them in the
//! file's order before any `location` is chosen, and the first match wins:
//! - exact paths (no placeholder, no splat) are looked up in hashed `map`s on `$uri` (2,000 of
//!   them cost one lookup). nginx's map lookup ignores ASCII case, so a third map keyed on
//!   `"$sitebuild_redirect_from|$uri"` with the regex `^(.*)\|\1$` keeps only a case-exact hit.
//!   One `if ($sitebuild_redirect_status = 301) { return 301 $sitebuild_redirect_to; }` per
//!   status used (and `rewrite ^ $sitebuild_redirect_to last;` for 200). They come first, so a
//!   static rule placed after a pattern that matches it would change the order: that is refused
//!   at build time ("never applies, move it above line N").
//! - patterns become `if ($uri ~ "<regex>") { return <code> "<target>"; }`, or
//!   `rewrite "<regex>" "<target>" last;` for 200, placeholders and the splat as `$1`…`$9`.
//!   They never match `/healthz`.
//! - a 3xx target without `?` or `#` gets the request's query string (`$is_args$args`).
//!
//! # Headers: every `add_header` at server level
//!
//! nginx drops all inherited `add_header` directives in a block that has one of its own. So no
//! location ever gets one: all `add_header` lines stay at server level (where the template had
//! them) and the per-path part is a `map $uri` per header line, in rule order, whose value is
//! `""` where the rule does not apply (nginx sends no header for an empty value). A default
//! security header that a rule names is not sent twice: its map's default is the sitebuild value
//! and the first matching rule replaces it. A request matching several rules gets every
//! rule's header lines, as on Cloudflare (two lines of one name mean the same as one joined
//! with `, `). The maps key on `$uri`, so an error page is matched by its own path
//! (`/404.html`), not by the path that was asked for.
//!
//! # Injection
//!
//! Every user value reaches the config through one of three functions in [`nginx`]:
//! - [`nginx::quote_value`] for strings nginx interpolates (`return`, `add_header`, `rewrite`
//!   replacements and `map` values): double-quoted, `\` and `"` backslash-escaped and every
//!   `$` written as `${sitebuild_dollar}`, a variable whose value is a literal `$` (nginx has no
//!   escape for `$`; a `geo` value is never interpolated, so `geo` can define it);
//! - [`nginx::quote_literal`] for strings nginx does not interpolate (`location =`, map keys);
//! - [`nginx::quote_regex`] for regexes, which [`pattern::Pattern::regex`] builds with every
//!   ASCII character other than letters, digits and `/` as a `\xHH` escape.
//!
//! All three refuse control characters (the parsers already did, with the line). On top of
//! that, the parsers validate paths, header names (RFC 9110 tokens) and URLs to strict
//! character sets, and a capture never matches a control character or space, so a request with
//! `%0d%0a` cannot split a `Location` header.

pub(crate) mod headers;
pub(crate) mod nginx;
pub(crate) mod pattern;
pub(crate) mod redirects;
pub(crate) mod routes;

#[cfg(test)]
mod tests;

use std::path::Path;

use anyhow::{Context, Result};

pub(crate) use nginx::{Compiled, DEFAULT_HEADERS, DefaultHeader, compile};

/// The redirects file's name, at the top of the site directory.
pub(crate) const REDIRECTS_FILE: &str = "_redirects";
/// The headers file's name, at the top of the site directory.
pub(crate) const HEADERS_FILE: &str = "_headers";

/// Files read by sitebuild and never served: the packing step skips these names at the top
/// of the site directory.
pub(crate) fn rule_files() -> &'static [&'static str] {
    &[REDIRECTS_FILE, HEADERS_FILE]
}

/// True for `_redirects` and `_headers` at the top of the site (`rel` relative to the site).
pub(crate) fn is_rule_file(rel: &Path) -> bool {
    let mut components = rel.components();
    matches!(
        (components.next(), components.next()),
        (Some(std::path::Component::Normal(name)), None)
            if rule_files().iter().any(|f| name == std::ffi::OsStr::new(f))
    )
}

/// Cloudflare's limits.
pub(crate) const MAX_STATIC_REDIRECTS: usize = 2000;
/// Cloudflare's limits.
pub(crate) const MAX_DYNAMIC_REDIRECTS: usize = 100;
/// Cloudflare's limits.
pub(crate) const MAX_HEADER_RULES: usize = 100;
/// Longest `_redirects` line (Cloudflare: 1,000 characters per redirect).
pub(crate) const MAX_REDIRECT_LINE: usize = 1000;
/// Longest `_headers` line (Cloudflare: 2,000 characters per line).
pub(crate) const MAX_HEADER_LINE: usize = 2000;

/// Read `_redirects` and `_headers` from `site_dir` (either may be absent) and compile them
/// with `defaults` (normally [`DEFAULT_HEADERS`]). `shown_dir` is how the site directory is
/// named in errors (e.g. `site`).
pub(crate) fn load(
    site_dir: &Path,
    shown_dir: &Path,
    defaults: &[DefaultHeader],
) -> Result<Compiled> {
    let read = |name: &str| -> Result<Option<String>> {
        let path = site_dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    };
    let redirects = match read(REDIRECTS_FILE)? {
        Some(src) => redirects::parse(&shown_dir.join(REDIRECTS_FILE), &src)?,
        None => Vec::new(),
    };
    let headers = match read(HEADERS_FILE)? {
        Some(src) => headers::parse(&shown_dir.join(HEADERS_FILE), &src)?,
        None => Vec::new(),
    };
    compile(&redirects, &headers, defaults)
}

/// An error about `file` at `line`: "site/_redirects, line 3: …", located for CI annotations
/// the same way as template errors.
pub(crate) fn located(file: &Path, line: usize, message: impl std::fmt::Display) -> anyhow::Error {
    anyhow::Error::new(crate::located::Located::new(
        file,
        Some(line),
        format!("{}, line {line}: {message}", file.display()),
    ))
}

/// The lines of a rules file: (1-based number, text without the line ending). Lines that are
/// too long or hold control characters are errors here, once for both parsers.
pub(crate) fn lines<'a>(
    file: &'a Path,
    source: &'a str,
    max_len: usize,
) -> impl Iterator<Item = Result<(usize, &'a str)>> + 'a {
    source.split('\n').enumerate().map(move |(i, line)| {
        let n = i + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        let chars = line.chars().count();
        if chars > max_len {
            return Err(located(
                file,
                n,
                format!(
                    "the line has {chars} characters, more than the limit of {max_len}; shorten it"
                ),
            ));
        }
        if let Some(c) = line.chars().find(|c| c.is_control() && *c != '\t') {
            return Err(located(
                file,
                n,
                format!("the line contains the control character {c:?}; remove it"),
            ));
        }
        Ok((n, line))
    })
}
