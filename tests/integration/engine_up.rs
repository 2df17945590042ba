//! `up`, `status`, `build`, `down` against the real Docker engine.

use std::io::Read;

use crate::common::*;

#[test]
fn up_serves_bytes_replaces_on_change_noop_when_unchanged_and_down_cleans() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    let p = Project::new("up");
    let out = p.ok(&["up"]);
    assert!(
        out.contains(&format!("http://127.0.0.1:{}/", p.port)),
        "{out}"
    );

    // Byte-for-byte.
    let original = std::fs::read(p.site("index.html")).unwrap();
    let r = p.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, original);
    let ids = p.containers();
    assert_eq!(p.role("site").len(), 1, "one site container");
    assert_eq!(p.role("edge").len(), 1, "one edge");

    // Unchanged: no build, no restart.
    let out = p.ok(&["up"]);
    assert!(out.contains("nothing changed"), "{out}");
    assert!(!out.contains("building"), "{out}");
    assert_eq!(p.containers(), ids, "same container");

    // Edit → new bytes, new container, the old one removed.
    let edited = String::from_utf8(original.clone())
        .unwrap()
        .replace("MARKER-ORIGINAL", "MARKER-EDITED");
    std::fs::write(p.site("index.html"), &edited).unwrap();
    let out = p.ok(&["up"]);
    assert!(out.contains("built"), "{out}");
    assert_eq!(p.get("/").text(), edited);
    let new_ids = p.containers();
    assert_eq!(new_ids.len(), 2, "old site container removed: {new_ids:?}");
    assert_ne!(new_ids, ids);
    assert!(new_ids.contains(&p.role("edge")[0]), "the edge stays");

    // status shows the live container, its fingerprint, URL and health.
    let status = p.ok(&["status"]);
    assert!(status.contains("running"), "{status}");
    assert!(status.contains("live "), "{status}");
    assert!(status.contains("healthy"), "{status}");
    assert!(status.contains("up to date"), "{status}");
    assert!(
        status.contains(&format!("127.0.0.1:{}", p.port)),
        "{status}"
    );

    // down removes every labelled container; --images the images.
    let out = p.ok(&["down", "--images"]);
    assert!(out.contains("removed 2 container"), "{out}");
    assert!(out.contains("removed network"), "{out}");
    assert!(out.contains("removed volume"), "{out}");
    assert!(p.containers().is_empty());
    assert!(
        !docker(&["network", "inspect", &format!("{}-net", p.name)])
            .status
            .success()
    );
    assert!(p.images().is_empty(), "{:?}", p.images());
    assert!(get(p.addr(), "/", &[], std::time::Duration::from_secs(1)).is_err());
}

#[test]
fn headers_404_gzip_static_and_healthz() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    let p = Project::new("hdr");
    p.ok(&["up"]);

    let security = [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "strict-origin-when-cross-origin"),
    ];
    let check = |path: &str, r: &Response| {
        for (k, v) in security {
            assert_eq!(r.header(k), Some(v), "{k} on {path}: {:?}", r.headers);
        }
        let csp = r.header("content-security-policy").unwrap_or_default();
        assert!(
            csp.contains("frame-ancestors 'none'"),
            "CSP on {path}: {csp}"
        );
        assert_eq!(
            r.header("server"),
            Some("nginx"),
            "no version in Server on {path}"
        );
    };

    // The health-gate route reaches only this project's site containers, named in a header.
    let site = inspect(&p.role("site")[0], "{{.Name}}");
    let gate = "/.sitebuild/candidate/healthz";
    let h = "X-Sitebuild-Candidate";
    assert_eq!(
        p.get_with(gate, &[(h, site.trim_start_matches('/'))])
            .status,
        200
    );
    for other in ["", "example.com", "127.0.0.1", &format!("{}-edge", p.name)] {
        assert_eq!(
            p.get_with(gate, &[(h, other)]).status,
            404,
            "candidate {other:?}"
        );
    }

    let index = p.get("/");
    check("/", &index);
    assert_eq!(index.header("cache-control"), Some("no-cache"));

    let missing = p.get("/no/such/page");
    assert_eq!(missing.status, 404);
    check("/no/such/page", &missing);
    assert!(
        missing.text().contains("fixture 404 page"),
        "site/404.html is the 404 page"
    );

    // Hashed asset: immutable; .gz sibling served on Accept-Encoding: gzip.
    let css_path = "/assets/app.3f2a1c9b.css";
    let css = p.get(css_path);
    check(css_path, &css);
    assert_eq!(
        css.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(
        css.body,
        std::fs::read(p.site("assets/app.3f2a1c9b.css")).unwrap()
    );
    let gz = p.get_with(css_path, &[("Accept-Encoding", "gzip")]);
    check(css_path, &gz);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    // gzip_static sends a Content-Length (on-the-fly gzip would be chunked).
    assert_eq!(
        gz.header("content-length"),
        Some(gz.body.len().to_string().as_str())
    );
    assert!(gz.body.len() < css.body.len() / 2);
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(gz.body.as_slice())
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(plain, css.body);

    let health = p.get("/healthz");
    assert_eq!((health.status, health.text().as_str()), (200, "ok\n"));
    check("/healthz", &health);

    // Directory index and the relative redirect (no container port leaks).
    assert_eq!(p.get("/about/").status, 200);
    let redirect = p.get("/about");
    assert_eq!(redirect.status, 301);
    assert_eq!(redirect.header("location"), Some("/about/"));

    // Not packed at all: dotfiles, ignored paths. .well-known is served.
    for hidden in [
        "/.env",
        "/.sitebuildignore",
        "/drafts/wip.html",
        "/mockup.psd",
    ] {
        assert_eq!(p.get(hidden).status, 404, "{hidden}");
    }
    assert_eq!(p.get("/.well-known/security.txt").status, 200);
}

#[test]
fn container_is_hardened_and_image_has_no_secrets() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    let p = Project::new("sec");
    std::fs::create_dir_all(p.site(".git")).unwrap();
    std::fs::write(p.site(".git/config"), "[core]\n").unwrap();
    std::os::unix::fs::symlink("about/index.html", p.site("about.html")).unwrap();
    p.ok(&["up"]);
    let id = p.role("site").pop().unwrap();
    let edge = p.role("edge").pop().unwrap();

    for c in [&id, &edge] {
        assert_eq!(inspect(c, "{{.Config.User}}"), "101:101");
        assert_eq!(inspect(c, "{{.HostConfig.ReadonlyRootfs}}"), "true");
        assert_eq!(inspect(c, "{{json .HostConfig.CapDrop}}"), "[\"ALL\"]");
        assert!(inspect(c, "{{json .HostConfig.SecurityOpt}}").contains("no-new-privileges"));
        assert_eq!(
            inspect(c, "{{.HostConfig.RestartPolicy.Name}}"),
            "unless-stopped"
        );
        assert!(inspect(c, "{{.HostConfig.Memory}}").parse::<i64>().unwrap() > 0);
        assert!(
            inspect(c, "{{.HostConfig.PidsLimit}}")
                .parse::<i64>()
                .unwrap()
                > 0
        );

        // Every nginx process runs as uid 101, not root.
        let top = docker_lines(&["top", c, "-o", "uid,pid,comm"]);
        let procs: Vec<&String> = top.iter().skip(1).collect();
        assert!(procs.len() >= 2, "master + worker: {top:?}");
        for line in procs {
            assert!(line.trim_start().starts_with("101 "), "non-root: {line}");
        }
    }
    // Only the edge publishes a port, on loopback; the site is on the private network only.
    let bindings = inspect(&edge, "{{json .HostConfig.PortBindings}}");
    assert!(bindings.contains("\"HostIp\":\"127.0.0.1\""), "{bindings}");
    let site_ports = inspect(&id, "{{json .HostConfig.PortBindings}}");
    assert!(
        site_ports == "null" || site_ports == "{}",
        "site publishes nothing: {site_ports}"
    );
    assert_eq!(
        inspect(&id, "{{.HostConfig.NetworkMode}}"),
        format!("{}-net", p.name)
    );

    // The image filesystem: site files present, secrets and dotfiles absent.
    let export = std::process::Command::new("docker")
        .args(["export", &id])
        .output()
        .unwrap();
    assert!(export.status.success());
    let mut names = Vec::new();
    for entry in tar::Archive::new(export.stdout.as_slice())
        .entries()
        .unwrap()
    {
        names.push(entry.unwrap().path().unwrap().display().to_string());
    }
    let html: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("usr/share/sitebuild/html/"))
        .collect();
    assert!(
        html.iter().any(|n| n.ends_with("html/index.html")),
        "{html:?}"
    );
    assert!(
        html.iter().any(|n| n.ends_with("html/about.html")),
        "in-site symlink packed: {html:?}"
    );
    for secret in [".env", ".git", ".sitebuildignore", "drafts", "mockup.psd"] {
        assert!(
            !html.iter().any(|n| n.contains(secret)),
            "{secret} must not be in the image: {html:?}"
        );
    }
    // The in-site symlink was packed as a regular file with the target's bytes.
    assert_eq!(
        p.get("/about.html").body,
        std::fs::read(p.site("about/index.html")).unwrap()
    );
}

#[test]
fn build_twice_reuses_the_image_and_labels_it() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    let p = Project::new("bld");
    let first = p.ok(&["build"]);
    assert!(first.contains("built"), "{first}");
    let tag_latest = format!("{}:latest", p.name);
    let id = inspect(&tag_latest, "{{.Id}}");

    let second = p.ok(&["build"]);
    assert!(second.contains("nothing to build"), "{second}");
    assert_eq!(inspect(&tag_latest, "{{.Id}}"), id);

    let labels = inspect(&tag_latest, "{{json .Config.Labels}}");
    for key in [
        "dev.sitebuild.fingerprint",
        "org.opencontainers.image.created",
        "org.opencontainers.image.title",
        "org.opencontainers.image.version",
    ] {
        assert!(labels.contains(key), "{key} in {labels}");
    }
    let fp = inspect(
        &tag_latest,
        "{{index .Config.Labels \"dev.sitebuild.fingerprint\"}}",
    );
    assert_eq!(fp.len(), 64);
    // Tagged <name>:<fingerprint> too.
    assert_eq!(inspect(&format!("{}:{}", p.name, &fp[..12]), "{{.Id}}"), id);
    assert!(
        p.containers().is_empty(),
        "build starts no container (the check one is removed)"
    );
}

/// Every file is served with sitebuild's own MIME types (nginx/mime.types, shipped in the image),
/// whatever the base image's /etc/nginx/mime.types says.
#[test]
fn modern_types_get_their_content_type() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    let p = Project::new("mime");
    let cases = [
        ("app.mjs", "text/javascript"),
        ("app.js", "text/javascript"),
        ("app.js.map", "application/json"),
        ("site.webmanifest", "application/manifest+json"),
        ("data.jsonld", "application/ld+json"),
        ("data.json", "application/json"),
        ("mod.wasm", "application/wasm"),
        ("img.avif", "image/avif"),
        ("img.webp", "image/webp"),
        ("img.svg", "image/svg+xml"),
        ("font.woff2", "font/woff2"),
        ("font.ttf", "font/ttf"),
        ("cal.ics", "text/calendar"),
        ("notes.md", "text/markdown"),
        ("table.csv", "text/csv"),
        ("subs.vtt", "text/vtt"),
        ("style.css", "text/css"),
        ("feed.rss", "application/rss+xml"),
        ("unknown.zzz", "application/octet-stream"),
    ];
    for (file, _) in cases {
        std::fs::write(p.site(file), format!("content of {file}\n")).unwrap();
    }
    p.ok(&["up"]);
    let mut wrong = Vec::new();
    for (file, want) in cases {
        let r = p.get(&format!("/{file}"));
        assert_eq!(r.status, 200, "/{file}");
        let got = r.header("content-type").unwrap_or("").to_string();
        if got.split(';').next().unwrap_or("").trim() != want {
            wrong.push(format!("/{file}: {got:?}, want {want}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "wrong Content-Type:\n{}",
        wrong.join("\n")
    );
    // Text types carry the charset.
    let js = p.get("/app.mjs");
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
}

/// A base image without CMD or ENTRYPOINT (what `docker import` makes) deploys: sitebuild names
/// the command of every container it creates (edge, site, lock, check). Regression: the lock
/// container failed with "No command specified".
#[test]
fn a_base_without_cmd_or_entrypoint_deploys() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    // The imported base, by ID: declared before `p`, so dropped after it (reverse order),
    // once `p`'s images that build on it are gone (a removal by tag only untagged it and left
    // it dangling).
    struct RemoveImage(std::cell::RefCell<Option<String>>);
    impl Drop for RemoveImage {
        fn drop(&mut self) {
            if let Some(id) = self.0.borrow().as_deref() {
                let _ = docker(&["rmi", "-f", id]);
            }
        }
    }
    let image = RemoveImage(std::cell::RefCell::new(None));
    let p = Project::new("nocmd");
    let tag = format!("sbtest-nocmd:{}", p.name);
    let src = format!("{}-src", p.name);
    let created = docker(&[
        "create",
        "--name",
        &src,
        "--label",
        "dev.sitebuild.managed=true",
        "--label",
        &format!("dev.sitebuild.project={}", p.name),
        "--entrypoint",
        "/usr/sbin/nginx",
        &base_image(),
        "-v",
    ]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let import = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "docker export {src} | docker import --change 'USER 101:101' --change 'LABEL dev.sitebuild.test=nocmd' - {tag}"
        ))
        .output()
        .unwrap();
    let _ = docker(&["rm", "-f", "-v", &src]);
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    *image.0.borrow_mut() = Some(inspect(&tag, "{{.Id}}"));
    assert_eq!(
        inspect(&tag, "{{json .Config.Cmd}} {{json .Config.Entrypoint}}"),
        "null null",
        "the imported base has no command"
    );
    let original = std::fs::read(p.site("index.html")).unwrap();
    let deploy = |what: &str| {
        let out = p
            .cmd(&["deploy"])
            .env("SITEBUILD_BASE_IMAGE", &tag)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{what}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    deploy("first deploy");
    assert_eq!(p.get("/").body, original);
    // A second version goes through the lock, the check and the switch again.
    let edited = String::from_utf8(original)
        .unwrap()
        .replace("MARKER-ORIGINAL", "MARKER-NOCMD");
    std::fs::write(p.site("index.html"), &edited).unwrap();
    deploy("second deploy");
    assert_eq!(p.get("/").text(), edited);
}
