//! `_redirects`, `_headers`, clean URLs, trailing slashes and the nearest 404 page, served by
//! the real image through the edge (fixture: `tests/sites/rules`, a Netlify-style project).

use crate::common::*;

/// The security headers every response carries (README, "The default nginx config").
const SECURITY: [(&str, &str); 4] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=()",
    ),
];

const CSP: &str =
    "default-src 'self'; img-src 'self' https://images.example.com; frame-ancestors 'none'";

/// A project whose site is the rules fixture.
fn rules_project(prefix: &str) -> Project {
    let p = Project::new(prefix);
    std::fs::remove_dir_all(p.path().join("site")).unwrap();
    copy_tree(&fixtures().join("rules"), &p.path().join("site"));
    p
}

#[track_caller]
fn secure(r: &Response, what: &str) {
    for (name, value) in SECURITY {
        assert_eq!(
            r.header(name),
            Some(value),
            "{what}: {name} in {:?}",
            r.headers
        );
    }
    assert!(r.header("content-security-policy").is_some(), "{what}: CSP");
}

/// `GET path` answers `status` with this `Location`, and the security headers.
#[track_caller]
fn redirects(p: &Project, path: &str, status: u16, location: &str) {
    let r = p.get(path);
    assert_eq!(r.status, status, "GET {path}: {:?}", r.headers);
    assert_eq!(r.header("location"), Some(location), "GET {path}");
    secure(&r, path);
}

/// `GET path` answers 200 with a body containing `marker`.
#[track_caller]
fn serves(p: &Project, path: &str, marker: &str) {
    let r = p.get(path);
    assert_eq!(r.status, 200, "GET {path}: {:?}", r.headers);
    assert!(r.text().contains(marker), "GET {path}: {}", r.text());
    secure(&r, path);
}

#[test]
fn redirects_headers_and_the_nearest_404_over_http() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    let p = rules_project("rules");
    p.ok(&["up"]);

    // _redirects: placeholders, splat, 301 with the query string kept, 302, external, 200.
    redirects(
        &p,
        "/blog/2019/05/hello-world",
        301,
        "/posts/2019/hello-world",
    );
    redirects(&p, "/blog/tags/rust", 301, "/posts/tags/rust");
    redirects(&p, "/about-us", 301, "/about");
    redirects(&p, "/about-us?ref=mail", 301, "/about?ref=mail");
    redirects(&p, "/pricing-old", 302, "/pricing");
    redirects(&p, "/shop/cart/42", 301, "https://shop.example.com/cart/42");
    // Exact paths are case-sensitive, as on Netlify.
    assert_eq!(p.get("/ABOUT-US").status, 404);
    serves(&p, "/app/settings/profile", "RULES-APP-SHELL");
    // /healthz can never be taken over.
    assert_eq!(p.get("/healthz").text(), "ok\n");

    // _headers: the /* CSP replaces the default one (sent once), /assets/* adds cache and CORS.
    let home = p.get("/");
    assert_eq!(home.status, 200);
    secure(&home, "/");
    let csps: Vec<_> = home
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("content-security-policy"))
        .collect();
    assert_eq!(csps.len(), 1, "{:?}", home.headers);
    assert_eq!(home.header("content-security-policy"), Some(CSP));
    assert_eq!(home.header("x-robots-tag"), Some("noarchive"));
    assert_eq!(home.header("cache-control"), Some("no-cache"));
    let css = p.get("/assets/site.css");
    assert_eq!(css.status, 200);
    assert_eq!(
        css.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(css.header("access-control-allow-origin"), Some("*"));
    secure(&css, "/assets/site.css");
    assert_eq!(home.header("access-control-allow-origin"), None);

    // The rule files are read by sitebuild, never served.
    for f in ["/_redirects", "/_headers"] {
        let r = p.get(f);
        assert_eq!(r.status, 404, "{f}");
        secure(&r, f);
    }

    // The nearest 404.html, with status 404 and every header.
    let r = p.get("/docs/nope");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("DOCS-404"), "{}", r.text());
    secure(&r, "/docs/nope");
    let r = p.get("/nope/deeper");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("TOP-404"), "{}", r.text());
    secure(&r, "/nope/deeper");
    // The 404 pages themselves are internal.
    assert_eq!(p.get("/docs/404.html").status, 404);
    serves(&p, "/docs/guide/", "RULES-GUIDE");

    // Defaults: no clean URLs, both slash forms served.
    serves(&p, "/about.html", "RULES-ABOUT");
    assert_eq!(p.get("/about").status, 404);

    // A bad _redirects: the file and line, and the live site untouched.
    let live = p.containers();
    let good = std::fs::read_to_string(p.site("_redirects")).unwrap();
    std::fs::write(p.site("_redirects"), format!("{good}/x\n")).unwrap();
    let err = p.fails(&["up"]);
    assert!(
        err.contains("site/_redirects, line 17: \"/x\" has no destination"),
        "{err}"
    );
    assert_eq!(p.containers(), live);
    redirects(&p, "/about-us", 301, "/about");
}

#[test]
fn clean_urls_and_the_trailing_slash_matrix() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    let p = rules_project("slash");

    // clean_urls, trailing_slash = ignore: /about serves about.html, .html and index.html
    // redirect to the clean form, both slash forms are served.
    p.write_toml("clean_urls = true\n");
    p.ok(&["up"]);
    serves(&p, "/about", "RULES-ABOUT");
    serves(&p, "/about/", "RULES-ABOUT");
    redirects(&p, "/about.html", 301, "/about");
    redirects(&p, "/about.html?x=1", 301, "/about?x=1");
    redirects(&p, "/docs/index.html", 301, "/docs/");
    redirects(&p, "/index.html", 301, "/");
    serves(&p, "/docs/", "RULES-DOCS");
    serves(&p, "/posts/2019/hello-world", "RULES-POST");
    serves(&p, "/assets/site.css", "color");
    // _redirects still come first.
    redirects(&p, "/about-us", 301, "/about");

    // always: /about -> /about/ (not files with a dot, not /healthz).
    p.write_toml("clean_urls = true\ntrailing_slash = \"always\"\n");
    p.ok(&["up"]);
    redirects(&p, "/about", 301, "/about/");
    redirects(&p, "/docs/guide?x=1", 301, "/docs/guide/?x=1");
    redirects(&p, "/about.html", 301, "/about/");
    serves(&p, "/about/", "RULES-ABOUT");
    serves(&p, "/docs/guide/", "RULES-GUIDE");
    serves(&p, "/assets/site.css", "color");
    assert_eq!(p.get("/healthz").status, 200);
    // A rule for /about-us matches before the slash is added.
    redirects(&p, "/about-us", 301, "/about");

    // never: /about/ -> /about, directories still served without the slash.
    p.write_toml("clean_urls = true\ntrailing_slash = \"never\"\n");
    p.ok(&["up"]);
    redirects(&p, "/about/", 301, "/about");
    redirects(&p, "/docs/guide/", 301, "/docs/guide");
    serves(&p, "/about", "RULES-ABOUT");
    serves(&p, "/docs/guide", "RULES-GUIDE");
    serves(&p, "/", "RULES-HOME");

    // never without clean_urls: the .html names stay.
    p.write_toml("trailing_slash = \"never\"\n");
    p.ok(&["up"]);
    serves(&p, "/about.html", "RULES-ABOUT");
    redirects(&p, "/docs/", 301, "/docs");
    let r = p.get("/docs/nope/");
    assert_eq!(r.status, 301);
    let r = p.get("/docs/nope");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("DOCS-404"));
}

/// Nasty but valid rules: the build runs `nginx -t` in the image, so a successful build proves
/// nginx accepts the config; over HTTP, `$`, quotes and braces arrive literally.
#[test]
fn nasty_rules_pass_nginx_t_and_arrive_literally() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    let p = rules_project("nasty");
    std::fs::write(
        p.site("_redirects"),
        "\
/a%20b          /spaced         301
/café/*         /cafe/:splat    302
/x/:a/:b/*      /y/:b/:a/:splat?from=$host#top 307
/cost$          /pricing        301
/q              https://example.com/?a=1&b=$2   302
/deep/*         /index.html     200
",
    )
    .unwrap();
    std::fs::write(
        p.site("_headers"),
        "\
/*
  X-Note: say \"hi\" \\ {ok}; costs $5 and ${host}
  Link: </assets/site.css>; rel=preload; as=style
/odd/:name/*
  X-Odd: 'single' `back` ;;
",
    )
    .unwrap();
    p.ok(&["up"]);
    let r = p.get("/");
    assert_eq!(
        r.header("x-note"),
        Some("say \"hi\" \\ {ok}; costs $5 and ${host}")
    );
    assert_eq!(
        r.header("link"),
        Some("</assets/site.css>; rel=preload; as=style")
    );
    redirects(&p, "/a%20b", 301, "/spaced");
    redirects(&p, "/caf%C3%A9/menu", 302, "/cafe/menu");
    redirects(&p, "/x/1/2/3/4", 307, "/y/2/1/3/4?from=$host#top");
    redirects(&p, "/cost$", 301, "/pricing");
    redirects(&p, "/q", 302, "https://example.com/?a=1&b=$2");
    serves(&p, "/deep/er", "RULES-HOME");
    // A request cannot split the Location header.
    let r = p.get("/x/a%0d%0aSet-Cookie:%20x=1/b/c");
    assert!(r.header("set-cookie").is_none(), "{:?}", r.headers);
}
