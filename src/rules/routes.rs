//! Clean URLs, trailing slashes and the nearest `404.html`, as nginx config text.
//!
//! The redirects test `$request_uri` (the request as the client sent it), never `$uri`: nginx
//! re-runs server-level rules after an internal redirect (`index`, `try_files`, `error_page`),
//! whose `$uri` ends in `.html` or `/`, and must not answer those with a redirect. Every
//! captured path starts with `/` followed by neither `/` nor `\`, so a redirect can never send
//! the browser to another host (`//evil.example/x.html`).

use std::fmt::Write as _;

use anyhow::{Result, bail};

use super::nginx::{quote_literal, quote_regex};
use super::pattern::regex_escape;

/// `trailing_slash`: what to do with `/about` versus `/about/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum TrailingSlash {
    /// `/about` → 301 `/about/` (paths whose last segment has no `.`).
    Always,
    /// `/about/` → 301 `/about`.
    Never,
    /// Both are served, no redirect.
    #[default]
    Ignore,
}

impl TrailingSlash {
    /// The accepted spellings.
    #[cfg(test)]
    pub(crate) const VALUES: [&'static str; 3] = ["always", "never", "ignore"];

    /// Parse a config value; the error names the accepted values.
    pub(crate) fn parse(s: &str) -> Result<TrailingSlash, String> {
        match s {
            "always" => Ok(TrailingSlash::Always),
            "never" => Ok(TrailingSlash::Never),
            "ignore" => Ok(TrailingSlash::Ignore),
            _ => Err(format!(
                "{s:?} is not a trailing_slash setting; use \"always\", \"never\" or \"ignore\""
            )),
        }
    }

    #[cfg(test)]
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TrailingSlash::Always => "always",
            TrailingSlash::Never => "never",
            TrailingSlash::Ignore => "ignore",
        }
    }
}

impl std::str::FromStr for TrailingSlash {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        TrailingSlash::parse(s)
    }
}

/// The settings these helpers need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct RouteOptions {
    pub(crate) clean_urls: bool,
    pub(crate) trailing_slash: TrailingSlash,
    /// Single-page app: unknown paths serve `/index.html`.
    pub(crate) spa: bool,
}

/// Config text for the routes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Routes {
    /// For `http {}` (maps).
    pub(crate) http: String,
    /// For `server {}`, before the `_redirects` rules: the redirects, `error_page` and the
    /// `internal` locations of the 404 pages.
    pub(crate) server: String,
    /// The `try_files` directive for `location /`, replacing the template's.
    pub(crate) try_files: String,
}

/// One path segment of a request as sent: no `/`, `?`, `\`, space or control character.
const SEG: &str = r"[^/\x3f\x00-\x20\x5c\x7f]";
/// The query string as sent, with its `?`.
const QUERY: &str = r"(\x3f[^\x00-\x20\x7f]*)?";

/// Build the routes for `opts` and the site's `404.html` files (`not_found_pages`, paths
/// relative to the site such as `404.html` and `docs/404.html`).
pub(crate) fn compile_routes(opts: &RouteOptions, not_found_pages: &[String]) -> Result<Routes> {
    let mut routes = Routes::default();
    let server = &mut routes.server;
    if opts.clean_urls {
        // /docs/index.html -> /docs/, / for the top one.
        let index = format!(r"^(/|/{SEG}[^\x3f\x00-\x20\x7f]*/)index\x2ehtml{QUERY}$");
        writeln!(
            server,
            "# clean_urls: /x/index.html -> /x/, /x.html -> /x\nif ($request_uri ~ {}) {{\n    return 301 $1$2;\n}}",
            quote_regex(&index)?
        )?;
        let page = format!(r"^(/{SEG}[^\x3f\x00-\x20\x7f]*?)\x2ehtml{QUERY}$");
        let slash = if opts.trailing_slash == TrailingSlash::Always {
            "/"
        } else {
            ""
        };
        writeln!(
            server,
            "if ($request_uri ~ {}) {{\n    return 301 $1{slash}$2;\n}}",
            quote_regex(&page)?
        )?;
        // /about/ (and /about) is served from about.html.
        routes.http.push_str(
            "# clean_urls: the .html file for $uri, also for /about/.\nmap $uri $sitebuild_html_file {\n    default \"$uri.html\";\n    \"~^(?<sitebuild_html_base>/.+)/$\" \"$sitebuild_html_base.html\";\n}\n",
        );
    }
    match opts.trailing_slash {
        TrailingSlash::Always => {
            let re = format!(
                r"^(?!/healthz(?:\x3f|$))((?:/{SEG}+)*/[^/\x3f\x00-\x20\x5c\x7f\x2e]+){QUERY}$"
            );
            writeln!(
                server,
                "# trailing_slash = always\nif ($request_uri ~ {}) {{\n    return 301 $1/$2;\n}}",
                quote_regex(&re)?
            )?;
        }
        TrailingSlash::Never => {
            let re = format!(r"^(/{SEG}[^\x3f\x00-\x20\x7f]*?)/+{QUERY}$");
            writeln!(
                server,
                "# trailing_slash = never\nif ($request_uri ~ {}) {{\n    return 301 $1$2;\n}}",
                quote_regex(&re)?
            )?;
        }
        TrailingSlash::Ignore => {}
    }
    let html = if opts.clean_urls {
        " $sitebuild_html_file"
    } else {
        ""
    };
    let fallback = if opts.spa { "/index.html" } else { "=404" };
    // never: /docs is served from docs/index.html directly. `$uri/` alone would make nginx
    // answer /docs with its own 301 to /docs/, which the rule above sends back: a loop.
    let index = if opts.trailing_slash == TrailingSlash::Never {
        " $uri/index.html"
    } else {
        ""
    };
    routes.try_files = format!("try_files $uri{html}{index} $uri/ {fallback};");

    if !not_found_pages.is_empty() {
        let (http, server) = not_found(not_found_pages)?;
        routes.http.push_str(&http);
        routes.server.push_str(&server);
    }
    Ok(routes)
}

/// The nearest `404.html` up the tree: a map from `$uri` to the page (deepest directory first),
/// `error_page 404 $sitebuild_not_found;`, and `location = /…/404.html { internal; }` per page.
fn not_found(pages: &[String]) -> Result<(String, String)> {
    let mut dirs: Vec<String> = Vec::new();
    for page in pages {
        let rel = page.trim_start_matches('/');
        let Some(dir) = rel.strip_suffix("404.html") else {
            bail!("{page:?} is not a 404.html page");
        };
        if !(dir.is_empty() || dir.ends_with('/'))
            || dir.split('/').any(|s| s == "." || s == "..")
            || !dir
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._~/".contains(c))
            || dir.contains("//")
        {
            bail!(
                "{page:?}: a 404 page's directory may hold only letters, digits and -._~; rename the directory"
            );
        }
        dirs.push(format!("/{dir}"));
    }
    dirs.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    dirs.dedup();
    let mut http = String::from(
        "# The nearest 404.html up the tree.\nmap $uri $sitebuild_not_found {\n    default \"/404.html\";\n",
    );
    let mut server = String::from("error_page 404 $sitebuild_not_found;\n");
    for dir in &dirs {
        let page = format!("{dir}404.html");
        if dir != "/" {
            writeln!(
                http,
                "    {} {};",
                quote_regex(&format!("~^{}", regex_escape(dir)))?,
                quote_literal(&page)?
            )?;
        }
        writeln!(
            server,
            "location = {} {{\n    internal;\n}}",
            quote_literal(&page)?
        )?;
    }
    http.push_str("}\n");
    Ok((http, server))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_slash_parse() {
        for v in TrailingSlash::VALUES {
            assert_eq!(TrailingSlash::parse(v).unwrap().as_str(), v);
        }
        let e = TrailingSlash::parse("Always").unwrap_err();
        assert!(e.contains("\"always\", \"never\" or \"ignore\""), "{e}");
        assert_eq!("never".parse::<TrailingSlash>(), Ok(TrailingSlash::Never));
        assert_eq!(TrailingSlash::default(), TrailingSlash::Ignore);
    }

    #[test]
    fn try_files_per_option() {
        let plain = compile_routes(&RouteOptions::default(), &[]).unwrap();
        assert_eq!(plain.try_files, "try_files $uri $uri/ =404;");
        assert!(plain.http.is_empty() && plain.server.is_empty());
        let clean = compile_routes(
            &RouteOptions {
                clean_urls: true,
                spa: true,
                ..Default::default()
            },
            &[],
        )
        .unwrap();
        assert_eq!(
            clean.try_files,
            "try_files $uri $sitebuild_html_file $uri/ /index.html;"
        );
    }

    #[test]
    fn not_found_pages_refuse_odd_names() {
        for bad in [
            "docs/x.html",
            "a b/404.html",
            "a\"/404.html",
            "../404.html",
            "a$/404.html",
        ] {
            assert!(
                compile_routes(&RouteOptions::default(), &[bad.to_string()]).is_err(),
                "{bad}"
            );
        }
    }
}
