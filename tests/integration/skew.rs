//! Skew protection: a page of version N asks for N's content-hashed assets after N+1 went live.

use crate::common::*;

#[test]
fn old_hashed_assets_survive_one_deploy_and_removed_plain_files_do_not() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    let p = Project::new("skew");
    p.write_toml("drain = 0\nbrotli = true\n");
    // Version N: the fixture's assets/app.3f2a1c9b.css plus a hashed script and a plain file.
    let js_n = "console.log('version N');\n".repeat(100);
    std::fs::write(p.site("assets/main-aaaa1111.js"), &js_n).unwrap();
    std::fs::write(p.site("notes.txt"), "plain, not hashed\n").unwrap();
    p.ok(&["up"]);
    let css_n = std::fs::read(p.site("assets/app.3f2a1c9b.css")).unwrap();
    // The page of version N is loaded in a browser now.
    assert_eq!(p.get("/assets/main-aaaa1111.js").body, js_n.as_bytes());

    // Version N+1: new asset names, the plain file removed.
    std::fs::remove_file(p.site("assets/app.3f2a1c9b.css")).unwrap();
    std::fs::remove_file(p.site("assets/main-aaaa1111.js")).unwrap();
    std::fs::remove_file(p.site("notes.txt")).unwrap();
    std::fs::write(p.site("assets/app.4e5f6071.css"), "body { color: blue }\n").unwrap();
    std::fs::write(p.site("assets/main-bbbb2222.js"), "console.log('N+1');\n").unwrap();
    let out = p.ok(&["up"]);
    let built = out
        .lines()
        .find(|l| l.starts_with("built "))
        .unwrap_or_default();
    eprintln!("{built}");
    assert!(
        built.contains("skew protection: kept 6 hashed files"),
        "build says what it kept (2 assets, each with .gz and .br): {out}"
    );

    // N's page asks for N's assets: still there, same bytes, still immutable; gzip too.
    let js = p.get("/assets/main-aaaa1111.js");
    assert_eq!(js.status, 200);
    assert_eq!(js.body, js_n.as_bytes());
    assert_eq!(
        js.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    let css = p.get("/assets/app.3f2a1c9b.css");
    assert_eq!((css.status, &css.body), (200, &css_n));
    let gz = p.get_with("/assets/main-aaaa1111.js", &[("Accept-Encoding", "gzip")]);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    // N+1's own assets, and the removed plain file is gone.
    assert_eq!(p.get("/assets/app.4e5f6071.css").status, 200);
    assert_eq!(p.get("/notes.txt").status, 404);

    // keep_images = 2: N+2 carries only N+1's assets; N's are gone with N's image.
    p.write_toml("drain = 0\nkeep_images = 2\n");
    std::fs::remove_file(p.site("assets/main-bbbb2222.js")).unwrap();
    std::fs::write(p.site("assets/main-cccc3333.js"), "console.log('N+2');\n").unwrap();
    p.ok(&["up"]);
    let js = p.get("/assets/main-bbbb2222.js");
    assert_eq!(
        (js.status, js.text().as_str()),
        (200, "console.log('N+1');\n"),
        "N+1's asset"
    );
    assert_eq!(p.get("/assets/main-aaaa1111.js").status, 404, "N's asset");
}
