//! Images assembled without a builder: an incremental site layer on top of the previous image
//! serves exactly what a fresh build of the same content serves.

use std::collections::BTreeMap;
use std::io::Read;

use crate::common::*;

/// `usr/share/sitebuild/html/…` of `image` as the engine's merged view has it (a created
/// container's `docker export`): path → (is dir, mode, mtime, uid:gid, bytes).
fn site_tree(image: &str) -> BTreeMap<String, (bool, u32, u64, String, Vec<u8>)> {
    let name = unique_name("layers-export");
    let created = docker(&["create", "--name", &name, image]);
    assert!(
        created.status.success(),
        "docker create {image}: {}",
        String::from_utf8_lossy(&created.stderr)
    );
    let out = docker(&["export", &name]);
    let _ = docker(&["rm", "-f", "-v", &name]);
    assert!(out.status.success(), "docker export {image}");
    let mut tree = BTreeMap::new();
    let mut archive = tar::Archive::new(out.stdout.as_slice());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let Some(rel) = path.strip_prefix("usr/share/sitebuild/html/") else {
            continue;
        };
        let h = entry.header().clone();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        tree.insert(
            rel.trim_end_matches('/').to_string(),
            (
                h.entry_type().is_dir(),
                h.mode().unwrap(),
                h.mtime().unwrap(),
                format!("{}:{}", h.uid().unwrap(), h.gid().unwrap()),
                bytes,
            ),
        );
    }
    tree
}

fn write(p: &Project, rel: &str, text: &str) {
    let path = p.site(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn incremental_layer_serves_what_a_fresh_build_serves() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    let a = Project::new("layers-a");
    write(&a, "docs/guide.html", &"<p>first version</p>\n".repeat(200));
    write(&a, "old.txt", "to be deleted\n");
    write(&a, "gone/x.html", "a directory to be deleted\n");
    write(&a, "kept.css", &"body { color: red }\n".repeat(100));
    let out = a.ok(&["build"]);
    assert!(out.contains("built"), "{out}");
    assert!(
        !out.contains("incremental"),
        "the first build is whole: {out}"
    );
    let first_layers = inspect(&format!("{}:latest", a.name), "{{len .RootFS.Layers}}");

    // Replace one file, delete a file and a directory, add one.
    write(
        &a,
        "docs/guide.html",
        &"<p>second version</p>\n".repeat(300),
    );
    std::fs::remove_file(a.site("old.txt")).unwrap();
    std::fs::remove_dir_all(a.site("gone")).unwrap();
    write(&a, "new/page.html", "<p>new</p>\n");
    let out = a.ok(&["build"]);
    assert!(
        out.contains("incremental site layer 2 of 8: 2 changed files, 2 deletions"),
        "guide.html and new/page.html; old.txt and gone/ (guide.html.gz is replaced): {out}"
    );
    let layers: usize = inspect(&format!("{}:latest", a.name), "{{len .RootFS.Layers}}")
        .parse()
        .unwrap();
    assert_eq!(
        layers,
        first_layers.parse::<usize>().unwrap() + 1,
        "one layer more"
    );

    // The same content built fresh under another name.
    let b = Project::new("layers-b");
    std::fs::remove_dir_all(b.site("")).unwrap();
    copy_tree(&a.site(""), &b.site(""));
    let out = b.ok(&["build"]);
    assert!(!out.contains("incremental"), "{out}");

    let (ta, tb) = (
        site_tree(&format!("{}:latest", a.name)),
        site_tree(&format!("{}:latest", b.name)),
    );
    assert!(ta.contains_key("docs/guide.html.gz"), "{:?}", ta.keys());
    for gone in ["old.txt", "gone", "gone/x.html"] {
        assert!(!ta.contains_key(gone), "{gone} deleted: {:?}", ta.keys());
    }
    assert_eq!(
        ta.keys().collect::<Vec<_>>(),
        tb.keys().collect::<Vec<_>>(),
        "same names"
    );
    for (name, entry) in &ta {
        assert_eq!(
            Some(entry),
            tb.get(name),
            "{name}: type, mode, mtime, owner and bytes"
        );
    }

    // Served the same: status, validators, encoding and bytes.
    a.ok(&["up"]);
    b.ok(&["up"]);
    for path in [
        "/",
        "/docs/guide.html",
        "/kept.css",
        "/new/page.html",
        "/old.txt",
        "/gone/x.html",
        "/gone/",
        "/about/",
    ] {
        for headers in [&[][..], &[("Accept-Encoding", "gzip")][..]] {
            let (ra, rb) = (a.get_with(path, headers), b.get_with(path, headers));
            let view = |r: &Response| {
                (
                    r.status,
                    r.header("ETag").map(String::from),
                    r.header("Last-Modified").map(String::from),
                    r.header("Content-Encoding").map(String::from),
                    r.body.clone(),
                )
            };
            assert_eq!(view(&ra), view(&rb), "{path} {headers:?}");
        }
    }
    assert_eq!(a.get("/old.txt").status, 404);
    assert_eq!(
        a.get("/docs/guide.html").text(),
        "<p>second version</p>\n".repeat(300)
    );
    let gz = a.get_with("/docs/guide.html", &[("Accept-Encoding", "gzip")]);
    assert_eq!(gz.header("Content-Encoding"), Some("gzip"));
    a.ok(&["down", "--images"]);
    b.ok(&["down", "--images"]);
}

#[test]
fn site_layers_squash_back_to_one_past_the_bound() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    let p = Project::new("layers-squash");
    p.ok(&["build"]);
    let base_layers: usize = inspect(&base_image(), "{{len .RootFS.Layers}}")
        .parse()
        .unwrap();
    let mut seen = Vec::new();
    for i in 2..=9 {
        write(&p, "counter.txt", &format!("build {i}\n"));
        let out = p.ok(&["build"]);
        let layers: usize = inspect(&format!("{}:latest", p.name), "{{len .RootFS.Layers}}")
            .parse()
            .unwrap();
        seen.push(layers - base_layers);
        if i <= 8 {
            assert!(
                out.contains(&format!("incremental site layer {i} of 8")),
                "{i}: {out}"
            );
        } else {
            assert!(!out.contains("incremental"), "squashed: {out}");
        }
    }
    assert_eq!(seen, [2, 3, 4, 5, 6, 7, 8, 1], "site layers per build");
    let r = p.run(&["up"]);
    assert!(r.status.success());
    assert_eq!(p.get("/counter.txt").text(), "build 9\n");
    p.ok(&["down", "--images"]);
}

/// `nginx -t` runs once per nginx.conf and base image: a rebuild with other site files and the
/// same config skips the check container; a missing or damaged record, `--no-cache` or an
/// override template runs it again; a failing config is never remembered.
#[test]
fn nginx_t_is_remembered_per_config_and_base_only() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    let p = Project::new("layers-checked");
    let cache = tempfile::tempdir().unwrap();
    let build = |extra: &[&str]| {
        let mut args = vec!["-v", "build"];
        args.extend_from_slice(extra);
        let out = p
            .cmd(&args)
            .env("XDG_CACHE_HOME", cache.path())
            .output()
            .unwrap();
        let text = text(&out);
        (out.status.success(), text)
    };
    const RAN: &str = "nginx -t: passed (run in the image)";
    const SKIPPED: &str = "nginx -t: passed before for this nginx.conf and base image";
    let (ok, out) = build(&[]);
    assert!(ok && out.contains(RAN), "first build runs it: {out}");
    let records = cache.path().join("sitebuild/nginx-checked");
    let record = || {
        let entries: Vec<_> = std::fs::read_dir(&records)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .collect();
        assert_eq!(entries.len(), 1, "{entries:?}");
        entries[0].clone()
    };
    let file = record();

    write(&p, "page.html", "<p>one</p>\n");
    let (ok, out) = build(&[]);
    assert!(ok && out.contains(SKIPPED), "same config: {out}");
    assert!(
        docker(&[
            "ps",
            "-a",
            "--filter",
            &format!("name={}-check", p.name),
            "-q"
        ])
        .stdout
        .is_empty(),
        "no check container"
    );

    // Damaged, then missing: the check runs again (and writes an intact record).
    std::fs::write(&file, "passed 00\n").unwrap();
    write(&p, "page.html", "<p>two</p>\n");
    let (ok, out) = build(&[]);
    assert!(ok && out.contains(RAN), "damaged record: {out}");
    std::fs::remove_file(&file).unwrap();
    write(&p, "page.html", "<p>three</p>\n");
    let (ok, out) = build(&[]);
    assert!(ok && out.contains(RAN), "missing record: {out}");
    assert_eq!(record(), file);

    // --no-cache ignores it.
    write(&p, "page.html", "<p>four</p>\n");
    let (ok, out) = build(&["--no-cache"]);
    assert!(ok && out.contains(RAN), "--no-cache: {out}");

    // A failing override template: refused, and nothing is recorded for it.
    apply_fixture(&p, "nginx-t-fails");
    let (ok, out) = build(&[]);
    assert!(!ok && out.contains("nginx -t failed"), "{out}");
    // The same override again: it is checked again (override templates are never skipped).
    let (ok, out) = build(&[]);
    assert!(!ok && out.contains("nginx -t failed"), "{out}");
    assert_eq!(
        record(),
        file,
        "only the passing built-in config is recorded"
    );
    p.ok(&["down", "--images"]);
}
