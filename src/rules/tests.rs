//! Compiled-output tests: snapshots, the no-injection property, and `nginx -t` on a minimal
//! config that includes the output (skipped only when nginx is absent and CI is not "true").

use std::path::{Path, PathBuf};
use std::process::Command;

use proptest::prelude::*;

use super::routes::{RouteOptions, TrailingSlash, compile_routes};
use super::*;

const REDIRECTS: &str = "\
# moved pages
/old            /new
/About          /about 302
/price$         /pricing?from=old#top 308
/docs/v1/index  /docs/ 307
/app/           /app/index.html 200
/blog/:year/:slug   /posts/:year-:slug.html 301
/files/*        https://cdn.example.com:8443/files/:splat 302
/spa/*          /spa/index.html 200
/a.b(c)/:x      /x/:x 303
";

const HEADERS: &str = "\
/*
  X-Robots-Tag: noindex
/embed/*
  X-Frame-Options: SAMEORIGIN
  Content-Security-Policy: frame-ancestors https://example.com
/static/:hash/*
  Cache-Control: public, max-age=31536000, immutable
  Access-Control-Allow-Origin: *
/odd
  X-Note: say \"hi\" \\ {ok}; costs $5
";

fn compiled(redirects: &str, headers: &str) -> anyhow::Result<Compiled> {
    let r = redirects::parse(Path::new("site/_redirects"), redirects)?;
    let h = headers::parse(Path::new("site/_headers"), headers)?;
    compile(&r, &h, DEFAULT_HEADERS)
}

#[test]
fn compiled_snapshot() {
    let c = compiled(REDIRECTS, HEADERS).unwrap();
    insta::assert_snapshot!(format!("# http\n{}\n# server\n{}", c.http, c.server));
}

/// The `add_header` lines `nginx/nginx.conf.j2` had before `rules_server` replaced them: the
/// security headers every response carries. Changing one is a decision (README, CHANGELOG).
const TEMPLATE_HEADERS: &str = r#"add_header Cache-Control $sitebuild_cache_control always;
add_header X-Content-Type-Options "nosniff" always;
add_header X-Frame-Options "DENY" always;
add_header Referrer-Policy "strict-origin-when-cross-origin" always;
add_header Content-Security-Policy "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'" always;
add_header Permissions-Policy "camera=(), microphone=(), geolocation=()" always;
"#;

#[test]
fn nothing_to_compile_keeps_the_template_headers() {
    let c = compiled("", "").unwrap();
    assert!(c.http.is_empty(), "{}", c.http);
    assert_eq!(c.server, TEMPLATE_HEADERS, "DEFAULT_HEADERS changed");
    // The template sends them through rules_server only, at server level.
    let template = crate::render::DEFAULT_NGINX_TEMPLATE;
    assert!(
        !template
            .lines()
            .any(|l| l.trim_start().starts_with("add_header")),
        "{template}"
    );
    assert_eq!(template.matches("{{ rules_server").count(), 1);
}

#[test]
fn every_response_keeps_every_security_header() {
    // Whatever _headers says, each default is sent once, at server level.
    let c = compiled("", HEADERS).unwrap();
    for d in DEFAULT_HEADERS {
        let n = c
            .server
            .lines()
            .filter(|l| l.starts_with(&format!("add_header {} ", d.name)))
            .count();
        assert_eq!(n, 1, "{}: {}", d.name, c.server);
    }
}

#[test]
fn routes_snapshot() {
    let pages = ["404.html", "docs/404.html", "docs/api/404.html"].map(String::from);
    let mut out = String::new();
    for (clean_urls, trailing_slash) in [
        (true, TrailingSlash::Ignore),
        (true, TrailingSlash::Always),
        (false, TrailingSlash::Never),
    ] {
        let opts = RouteOptions {
            clean_urls,
            trailing_slash,
            spa: false,
        };
        let r = compile_routes(&opts, &pages).unwrap();
        out.push_str(&format!(
            "## {opts:?}\n# http\n{}# server\n{}# location /\n{}\n\n",
            r.http, r.server, r.try_files
        ));
    }
    insta::assert_snapshot!(out);
}

#[test]
fn is_rule_file_only_at_the_top() {
    assert!(is_rule_file(Path::new("_redirects")));
    assert!(is_rule_file(Path::new("_headers")));
    assert!(!is_rule_file(Path::new("docs/_headers")));
    assert!(!is_rule_file(Path::new("_redirects.txt")));
    assert_eq!(rule_files(), ["_redirects", "_headers"]);
}

#[test]
fn load_reads_both_files() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        load(dir.path(), Path::new("site"), DEFAULT_HEADERS).unwrap(),
        compiled("", "").unwrap()
    );
    std::fs::write(dir.path().join("_redirects"), "/a /b\n/c\n").unwrap();
    let e = load(dir.path(), Path::new("site"), DEFAULT_HEADERS).unwrap_err();
    assert_eq!(
        e.to_string(),
        "site/_redirects, line 2: \"/c\" has no destination; write `from to [status]`, e.g. `/c /new-path 301`"
    );
}

// ---------------------------------------------------------------------------------------------
// The injection check: a small nginx tokenizer.

/// Variables the compiled text may reference (anything else came from user input).
fn allowed_variable(name: &str) -> bool {
    let fixed = [
        "sitebuild_dollar",
        "sitebuild_cache_control",
        "sitebuild_redirect_from",
        "sitebuild_redirect_any_status",
        "sitebuild_redirect_status",
        "sitebuild_redirect_to",
        "sitebuild_html_file",
        "sitebuild_html_base",
        "sitebuild_not_found",
        "is_args",
        "args",
        "uri",
        "request_uri",
    ];
    let numbered = |prefix: &str| {
        name.strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    fixed.contains(&name)
        || (name.len() == 1 && name.as_bytes()[0].is_ascii_digit())
        || numbered("sitebuild_header_")
        || numbered("sitebuild_default_header_")
}

/// Check every `$` reference in a token's (unescaped) text.
fn check_variables(token: &str) -> Result<(), String> {
    let mut rest = token;
    while let Some(i) = rest.find('$') {
        let after = &rest[i + 1..];
        let (name, next) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced
                .find('}')
                .ok_or(format!("unclosed ${{ in {token:?}"))?;
            (&braced[..end], &braced[end + 1..])
        } else if after.starts_with(|c: char| c.is_ascii_digit()) {
            (&after[..1], &after[1..])
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        if name.is_empty() {
            // A regex end anchor (`…$"`, `$)`, `$|`) is not a variable.
            if !(next.is_empty() || next.starts_with([')', '|'])) {
                return Err(format!("bare $ in {token:?}"));
            }
        } else if !allowed_variable(name) {
            return Err(format!("unexpected variable ${name} in {token:?}"));
        }
        rest = next;
    }
    Ok(())
}

/// Tokenize `text` like nginx's parser and check: braces balance, every statement starts
/// with a known directive (or is a map/geo entry), no `$` other than known variables.
fn check_config_text(text: &str) -> Result<(), String> {
    const DIRECTIVES: [&str; 10] = [
        "map",
        "geo",
        "if",
        "return",
        "rewrite",
        "add_header",
        "location",
        "internal",
        "error_page",
        "try_files",
    ];
    let mut stack: Vec<String> = Vec::new();
    let mut statement: Vec<String> = Vec::new();
    let mut chars = text.chars().peekable();
    let end_statement = |statement: &mut Vec<String>, stack: &[String]| -> Result<(), String> {
        let Some(first) = statement.first() else {
            return Ok(());
        };
        let in_map = stack.last().is_some_and(|b| b == "map" || b == "geo");
        if !in_map && !DIRECTIVES.contains(&first.as_str()) {
            return Err(format!("unknown directive {first:?} in {statement:?}"));
        }
        if in_map && statement.len() != 2 {
            return Err(format!(
                "map entry with {} tokens: {statement:?}",
                statement.len()
            ));
        }
        statement.clear();
        Ok(())
    };
    while let Some(c) = chars.next() {
        match c {
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            c if c.is_whitespace() => {}
            ';' => end_statement(&mut statement, &stack)?,
            '{' => {
                let name = statement.first().cloned().unwrap_or_default();
                end_statement(&mut statement, &stack)?;
                stack.push(name);
            }
            '}' => {
                if !statement.is_empty() {
                    return Err(format!("unterminated statement {statement:?}"));
                }
                stack.pop().ok_or("unbalanced }")?;
            }
            '"' | '\'' => {
                let mut token = String::new();
                loop {
                    match chars.next() {
                        None => return Err("unterminated string".into()),
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\'' | '\\')) => token.push(e),
                            Some('t' | 'r' | 'n') => return Err("control escape".into()),
                            Some(e) => {
                                token.push('\\');
                                token.push(e);
                            }
                            None => return Err("unterminated string".into()),
                        },
                        Some(q) if q == c => break,
                        Some(ch) if ch.is_control() => return Err(format!("{ch:?} in a string")),
                        Some(ch) => token.push(ch),
                    }
                }
                check_variables(&token)?;
                statement.push(token);
            }
            c => {
                let mut token = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || ";{}\"'".contains(n) {
                        break;
                    }
                    if n == '\\' {
                        return Err("backslash in a bare word".into());
                    }
                    token.push(n);
                    chars.next();
                }
                check_variables(&token)?;
                statement.push(token);
            }
        }
    }
    if !stack.is_empty() || !statement.is_empty() {
        return Err(format!("unbalanced at the end: {stack:?} {statement:?}"));
    }
    Ok(())
}

#[test]
fn checker_catches_injections() {
    assert!(check_config_text("add_header X \"a\" always;\nreturn 301 \"/x$uri\";").is_ok());
    for bad in [
        "add_header X \"a\"; evil on;",
        "return 301 \"/x$host\";",
        "return 301 \"/x\" }",
        "map $uri $x { \"a\" \"b\" \"c\"; }",
        "return 301 \"/x",
        "add_header X \"a\nb\";",
    ] {
        assert!(check_config_text(bad).is_err(), "{bad}");
    }
}

#[test]
fn compiled_output_passes_the_checker() {
    let c = compiled(REDIRECTS, HEADERS).unwrap();
    check_config_text(&c.http).unwrap();
    check_config_text(&c.server).unwrap();
    let pages = ["404.html", "docs/404.html"].map(String::from);
    for trailing_slash in [TrailingSlash::Always, TrailingSlash::Never] {
        let r = compile_routes(
            &RouteOptions {
                clean_urls: true,
                trailing_slash,
                spa: true,
            },
            &pages,
        )
        .unwrap();
        check_config_text(&r.http).unwrap();
        check_config_text(&r.server).unwrap();
        check_config_text(&r.try_files).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// nginx -t

fn nginx_binary() -> Option<PathBuf> {
    let path = PathBuf::from("/usr/sbin/nginx");
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "nginx is required in CI (apt-get install nginx-light)"
    );
    eprintln!("skipping: /usr/sbin/nginx is absent");
    None
}

/// Run `nginx -t` on a minimal config holding `c` and `routes`; Err(nginx's output) if refused.
fn nginx_test(nginx: &Path, c: &Compiled, routes: &routes::Routes) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let p = dir.path().display();
    let indent = |s: &str, n: usize| -> String {
        s.lines()
            .map(|l| format!("{}{l}\n", " ".repeat(n)))
            .collect()
    };
    let conf = format!(
        "pid {p}/nginx.pid;\nerror_log {p}/error.log warn;\nevents {{ worker_connections 16; }}\nhttp {{\n    access_log off;\n    client_body_temp_path {p}/cb;\n    proxy_temp_path {p}/px;\n    fastcgi_temp_path {p}/fc;\n    uwsgi_temp_path {p}/uw;\n    scgi_temp_path {p}/sc;\n    map $uri $sitebuild_cache_control {{ default \"no-cache\"; }}\n{}{}    server {{\n        listen 127.0.0.1:8080;\n        root {p};\n        absolute_redirect off;\n{}{}        location = /healthz {{ return 200 \"ok\\n\"; }}\n        location / {{\n            {}\n        }}\n    }}\n}}\n",
        indent(&c.http, 4),
        indent(&routes.http, 4),
        indent(&c.server, 8),
        indent(&routes.server, 8),
        routes.try_files,
    );
    let file = dir.path().join("nginx.conf");
    std::fs::write(&file, &conf).map_err(|e| e.to_string())?;
    let out = Command::new(nginx)
        .arg("-q")
        .arg("-t")
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&file)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}\n--- config ---\n{conf}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[test]
fn nginx_accepts_the_compiled_config() {
    let Some(nginx) = nginx_binary() else { return };
    let c = compiled(REDIRECTS, HEADERS).unwrap();
    let pages = ["404.html", "docs/404.html", "docs/api/404.html"].map(String::from);
    for trailing_slash in [
        TrailingSlash::Always,
        TrailingSlash::Never,
        TrailingSlash::Ignore,
    ] {
        for clean_urls in [false, true] {
            let opts = RouteOptions {
                clean_urls,
                trailing_slash,
                spa: clean_urls,
            };
            let r = compile_routes(&opts, &pages).unwrap();
            nginx_test(&nginx, &c, &r).unwrap();
        }
    }
    // Many rules: the maps take 2,000 exact paths.
    let many: String = (0..MAX_STATIC_REDIRECTS)
        .map(|i| format!("/p{i} /q{i}\n"))
        .chain((0..MAX_DYNAMIC_REDIRECTS).map(|i| format!("/d{i}/* /e/:splat 302\n")))
        .collect();
    let c = compiled(&many, "").unwrap();
    nginx_test(&nginx, &c, &routes::Routes::default()).unwrap();
}

#[test]
fn nginx_helper_reports_a_broken_config() {
    let Some(nginx) = nginx_binary() else { return };
    let broken = Compiled {
        http: String::new(),
        server: "return 301 \"/x\" }\n".into(),
    };
    let e = nginx_test(&nginx, &broken, &routes::Routes::default()).unwrap_err();
    assert!(e.contains("emerg"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Properties

/// Characters that matter to the parsers or to nginx.
fn nasty() -> impl Strategy<Value = String> {
    proptest::string::string_regex(r#"[a-zA-Z0-9/:*$\{\};"'\\ \t.?%#é~=!,()<>\[\]\-\x07\r]{0,12}"#)
        .expect("valid regex")
}

fn redirect_line() -> impl Strategy<Value = String> {
    let from = prop_oneof![
        nasty().prop_map(|s| format!("/{s}")),
        nasty(),
        Just("/blog/:slug/*".to_string()),
    ];
    let to = prop_oneof![
        nasty().prop_map(|s| format!("/{s}")),
        nasty().prop_map(|s| format!("https://example.com/{s}")),
        Just("/x/:slug/:splat".to_string()),
        nasty(),
    ];
    let status = prop_oneof![
        Just(String::new()),
        Just(" 301".to_string()),
        Just(" 302".to_string()),
        Just(" 200".to_string()),
        Just(" 308".to_string()),
        nasty().prop_map(|s| format!(" {s}")),
    ];
    (from, to, status).prop_map(|(f, t, s)| format!("{f} {t}{s}"))
}

fn header_lines() -> impl Strategy<Value = String> {
    let path = prop_oneof![
        nasty().prop_map(|s| format!("/{s}")),
        Just("/*".to_string()),
        nasty(),
    ];
    let name = prop_oneof![
        Just("X-Frame-Options".to_string()),
        Just("Cache-Control".to_string()),
        proptest::string::string_regex("[A-Za-z-]{1,10}").expect("valid regex"),
        nasty(),
    ];
    let header = (name, nasty()).prop_map(|(n, v)| format!("  {n}: {v}"));
    (path, proptest::collection::vec(header, 0..3))
        .prop_map(|(p, hs)| std::iter::once(p).chain(hs).collect::<Vec<_>>().join("\n"))
}

/// Either a located error within the file, or text that passes the checker.
fn property(redirects: &str, headers: &str) -> Result<Option<Compiled>, TestCaseError> {
    let r = redirects::parse(Path::new("_redirects"), redirects);
    let h = headers::parse(Path::new("_headers"), headers);
    for (e, src) in [(r.as_ref().err(), redirects), (h.as_ref().err(), headers)] {
        if let Some(e) = e {
            let l = crate::located::find(e);
            prop_assert!(l.is_some(), "not located: {e:#}");
            let line = l.and_then(|l| l.line).unwrap_or(0);
            prop_assert!(
                line >= 1 && line <= src.split('\n').count(),
                "line {line}: {e:#}"
            );
        }
    }
    let (Ok(r), Ok(h)) = (r, h) else {
        return Ok(None);
    };
    let c = compile(&r, &h, DEFAULT_HEADERS).map_err(|e| TestCaseError::fail(format!("{e:#}")))?;
    check_config_text(&c.http).map_err(|e| TestCaseError::fail(format!("{e}\n{}", c.http)))?;
    check_config_text(&c.server).map_err(|e| TestCaseError::fail(format!("{e}\n{}", c.server)))?;
    Ok(Some(c))
}

proptest! {
    #[test]
    fn arbitrary_input_errors_with_a_line_or_compiles_safely(
        redirects in proptest::collection::vec(redirect_line(), 0..6),
        headers in proptest::collection::vec(header_lines(), 0..4),
    ) {
        property(&redirects.join("\n"), &headers.join("\n"))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn nginx_accepts_whatever_compiles(
        redirects in proptest::collection::vec(redirect_line(), 0..6),
        headers in proptest::collection::vec(header_lines(), 0..4),
    ) {
        if let Some(c) = property(&redirects.join("\n"), &headers.join("\n"))?
            && let Some(nginx) = nginx_binary()
        {
            nginx_test(&nginx, &c, &routes::Routes::default()).map_err(TestCaseError::fail)?;
        }
    }
}
