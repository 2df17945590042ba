//! Precompressed siblings over HTTP: `.br` on a base with the brotli module (the offline base),
//! `.gz` everywhere, and gzip only (said once by `build`) on a base without it.

use std::io::Read;

use crate::common::*;

const CSS: &str = "/assets/app.3f2a1c9b.css";

fn brotli_decode(body: &[u8]) -> Vec<u8> {
    let mut plain = Vec::new();
    brotli::BrotliDecompress(&mut &body[..], &mut plain).expect("a valid brotli stream");
    plain
}

fn gunzip(body: &[u8]) -> Vec<u8> {
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut plain)
        .expect("a valid gzip stream");
    plain
}

#[test]
fn br_is_negotiated_on_the_offline_base_and_gzip_still_works() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    let p = Project::new("br");
    p.write_toml("brotli = true\n");
    let page = "<!doctype html><title>big</title>\n".to_string()
        + &"<p>words words words</p>\n".repeat(200);
    std::fs::write(p.site("big.html"), &page).unwrap();
    let out = p.ok(&["build"]);
    assert!(out.contains(".br siblings"), "{out}");
    assert!(!out.contains("gzip only"), "{out}");
    p.ok(&["up"]);
    let original = std::fs::read(p.site("assets/app.3f2a1c9b.css")).unwrap();

    // `render` shows the config build used (it asks the engine too), and gixy finds nothing in it.
    let render = p.cmd(&["render"]).output().unwrap();
    let conf = String::from_utf8(render.stdout).unwrap();
    assert!(conf.contains("load_module /usr/lib/nginx/modules/ngx_http_brotli_static_module.so;"));
    assert!(conf.contains("brotli_static on;"), "{conf}");
    if have("gixy") {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, &conf).unwrap();
        let out = std::process::Command::new("gixy")
            .args(["-f", "json"])
            .arg(&path)
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(report, "[]", "gixy findings in the brotli config");
    }

    let plain = p.get(CSS);
    assert_eq!(
        (plain.status, plain.header("content-encoding")),
        (200, None)
    );
    assert_eq!(plain.body, original);

    let br = p.get_with(CSS, &[("Accept-Encoding", "br")]);
    assert_eq!(br.status, 200);
    assert_eq!(
        br.header("content-encoding"),
        Some("br"),
        "{:?}",
        br.headers
    );
    assert_eq!(br.header("vary"), Some("Accept-Encoding"));
    // brotli_static sends the file with its length (on-the-fly compression would be chunked).
    assert_eq!(
        br.header("content-length"),
        Some(br.body.len().to_string().as_str())
    );
    assert_eq!(brotli_decode(&br.body), original);

    let gz = p.get_with(CSS, &[("Accept-Encoding", "gzip")]);
    assert_eq!(
        gz.header("content-encoding"),
        Some("gzip"),
        "{:?}",
        gz.headers
    );
    assert_eq!(gunzip(&gz.body), original);
    assert!(
        br.body.len() < gz.body.len(),
        "{} vs {}",
        br.body.len(),
        gz.body.len()
    );

    // What browsers send: brotli wins.
    let both = p.get_with(CSS, &[("Accept-Encoding", "gzip, deflate, br, zstd")]);
    assert_eq!(both.header("content-encoding"), Some("br"));
    assert_eq!(both.body, br.body);
    // The edge caches by URL: each encoding still gets its own answer (Vary).
    let again = p.get_with(CSS, &[("Accept-Encoding", "gzip")]);
    assert_eq!(again.header("content-encoding"), Some("gzip"));
    assert_eq!(p.get(CSS).body, original);
    // Pages too, not only assets.
    let big = p.get_with("/big.html", &[("Accept-Encoding", "br")]);
    assert_eq!(big.header("content-encoding"), Some("br"));
    assert_eq!(brotli_decode(&big.body), page.as_bytes());
}

/// The offline base without the brotli module (a test image derived from it).
fn base_without_brotli() -> String {
    let tag = "sbtest-nobrotli-nginx:1".to_string();
    if docker(&["image", "inspect", &tag]).status.success() {
        return tag;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!(
            "FROM {}\nUSER 0\nRUN [\"/bin/busybox\", \"rm\", \"/usr/lib/nginx/modules/ngx_http_brotli_static_module.so\", \"/usr/lib/nginx/modules/ngx_http_brotli_filter_module.so\"]\nUSER 101:101\n",
            base_image()
        ),
    )
    .unwrap();
    let out = docker(&[
        "build",
        "-q",
        "--label",
        "dev.sitebuild.test=nobrotli-nginx",
        "-t",
        &tag,
        dir.path().to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    tag
}

#[test]
fn a_base_without_brotli_gets_gzip_only_and_build_says_so_once() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    let base = base_without_brotli();
    let p = Project::new("nobr");
    p.write_toml("brotli = true\n");
    let out = p
        .cmd(&["up"])
        .env("SITEBUILD_BASE_IMAGE", &base)
        .output()
        .unwrap();
    let text = text(&out);
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches("gzip only").count(), 1, "{text}");
    assert!(text.contains(&base), "names the base: {text}");

    let original = std::fs::read(p.site("assets/app.3f2a1c9b.css")).unwrap();
    let br = p.get_with(CSS, &[("Accept-Encoding", "br")]);
    assert_eq!((br.status, br.header("content-encoding")), (200, None));
    assert_eq!(br.body, original);
    let both = p.get_with(CSS, &[("Accept-Encoding", "gzip, br")]);
    assert_eq!(both.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&both.body), original);
    // No .br siblings in the image at all.
    let site = p.role("site");
    let listing = docker(&[
        "exec",
        &site[0],
        "/bin/busybox",
        "ls",
        "/usr/share/sitebuild/html/assets",
    ]);
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains("app.3f2a1c9b.css.gz"), "{listing}");
    assert!(!listing.contains(".br"), "{listing}");
}
