//! Previews: `deploy --preview NAME` beside production, on the real engine.

use std::net::SocketAddr;
use std::time::Duration;

use crate::common::*;

/// An index.html whose body says which version it is.
fn page(marker: &str) -> Vec<u8> {
    format!("<!doctype html><title>{marker}</title><p>{marker}</p>\n").into_bytes()
}

/// `deploy --json [--preview NAME]` with `marker` as index.html; the URL it reports.
fn deploy(p: &Project, preview: Option<&str>, marker: &str) -> String {
    std::fs::write(p.site("index.html"), page(marker)).unwrap();
    let mut args = vec!["--json", "deploy"];
    if let Some(name) = preview {
        args.extend(["--preview", name]);
    }
    let out = p.run(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "deploy {preview:?} failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("--json output ({e}): {stdout}"));
    assert_eq!(v["preview"], preview.unwrap_or(""), "{v}");
    v["url"].as_str().unwrap().to_string()
}

/// `http://127.0.0.1:PORT/` → the socket address.
fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|e| panic!("{url}: {e}"))
}

fn body_at(url: &str) -> Vec<u8> {
    let r = get(addr_of(url), "/", &[], Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("GET {url}: {e:#}"));
    assert_eq!(r.status, 200, "{url}");
    r.body
}

#[test]
fn previews_live_beside_production_and_go_down_alone() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    let p = Project::new("preview");
    p.write_toml("drain = 1\n");

    // No production yet: a preview of nothing is refused, and nothing is created.
    let err = p.fails(&["deploy", "--preview", "pr-1"]);
    assert!(
        err.contains("no production deployment") && err.contains("sitebuild deploy"),
        "{err}"
    );
    let err = p.fails(&["deploy", "--preview", "PR_1"]);
    assert!(err.contains("`preview`") && err.contains("pr-42"), "{err}");

    let prod = deploy(&p, None, "PRODUCTION");
    assert_eq!(addr_of(&prod).port(), p.port);
    let load = Load::start(p.addr(), "/", vec![page("PRODUCTION")], 3);

    // Two previews, each on its own port, each with its own content, production untouched.
    let one = deploy(&p, Some("pr-1"), "PREVIEW-ONE");
    let two = deploy(&p, Some("pr-2"), "PREVIEW-TWO");
    assert_ne!(addr_of(&one).port(), p.port);
    assert_ne!(addr_of(&one), addr_of(&two));
    assert_eq!(body_at(&one), page("PREVIEW-ONE"));
    assert_eq!(body_at(&two), page("PREVIEW-TWO"));
    assert_eq!(p.get("/").body, page("PRODUCTION"));

    // A redeploy of a preview keeps its URL and switches its content.
    let again = deploy(&p, Some("pr-1"), "PREVIEW-ONE-B");
    assert_eq!(again, one, "a preview keeps its port across deploys");
    assert_eq!(body_at(&one), page("PREVIEW-ONE-B"));

    let status = p.ok(&["status"]);
    for want in [
        format!("preview    pr-1 at {one}"),
        format!("preview    pr-2 at {two}"),
    ] {
        assert!(status.contains(&want), "status lists {want}:\n{status}");
    }

    // The previews share production's images (one repository, no images of their own).
    let repos = docker_lines(&[
        "images",
        "--format",
        "{{.Repository}}",
        "--filter",
        &format!("label=dev.sitebuild.project={}", p.name),
    ]);
    assert!(repos.iter().all(|r| r == &p.name), "{repos:?}");
    assert_eq!(
        docker_lines(&[
            "images",
            "-q",
            "--filter",
            &format!("label=dev.sitebuild.project={}-preview-pr-1", p.name),
        ]),
        Vec::<String>::new()
    );

    // Down one preview: it stops answering; production and the other preview serve on.
    let err = p.fails(&["down", "--preview", "pr-9"]);
    assert!(
        err.contains("no such preview") && err.contains("pr-1, pr-2"),
        "{err}"
    );
    p.ok(&["down", "--preview", "pr-1"]);
    assert!(
        get(addr_of(&one), "/", &[], Duration::from_secs(2)).is_err(),
        "pr-1 still answers after down --preview"
    );
    assert_eq!(body_at(&two), page("PREVIEW-TWO"));
    let report = load.finish();
    assert_eq!(
        report.failures(),
        0,
        "production lost requests while previews were deployed and removed: {report:?}"
    );
    assert!(report.ok > 50, "the load ran: {report:?}");
    assert_eq!(p.get("/").body, page("PRODUCTION"));

    // Down production takes its previews with it.
    let out = p.ok(&["down"]);
    assert!(out.contains("taking down preview pr-2"), "{out}");
    let left = docker_lines(&[
        "ps",
        "-aq",
        "--filter",
        &format!("name={}-preview-", p.name),
    ]);
    assert!(left.is_empty(), "preview containers left: {left:?}");
}

/// GET / from loopback `port` with `Host: host`.
fn get_host(port: u16, host: &str) -> Response {
    get(
        SocketAddr::from(([127, 0, 0, 1], port)),
        "/",
        &[("Host", host)],
        Duration::from_secs(5),
    )
    .unwrap_or_else(|e| panic!("GET {host} on port {port}: {e:#}"))
}

#[test]
fn a_preview_domain_is_one_more_host_on_the_shared_edge() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    let p = Project::new("pvdom");
    // The shared edge on the project's port (the test cleanup removes `sitebuild-edge-<port>`).
    p.write_toml(&format!(
        "domains = [\"prod.test\"]\nhttp_port = {}\nhttps_port = {}\ntls = \"off\"\n\
         preview_domain = \"preview.test\"\ndrain = 0\n",
        p.port,
        free_port()
    ));
    let prod = deploy(&p, None, "PRODUCTION");
    assert_eq!(prod, format!("http://prod.test:{}/", p.port));
    let url = deploy(&p, Some("pr-3"), "PREVIEW-THREE");
    assert_eq!(url, format!("http://pr-3.preview.test:{}/", p.port));
    assert_eq!(
        get_host(p.port, "pr-3.preview.test").body,
        page("PREVIEW-THREE")
    );
    assert_eq!(get_host(p.port, "prod.test").body, page("PRODUCTION"));
    let status = p.ok(&["status"]);
    assert!(
        status.contains(&format!("preview    pr-3 at {url}")),
        "status lists the preview on the shared edge:\n{status}"
    );

    p.ok(&["down", "--preview", "pr-3"]);
    assert_eq!(
        get_host(p.port, "pr-3.preview.test").status,
        404,
        "the shared edge no longer knows the preview's host"
    );
    assert_eq!(get_host(p.port, "prod.test").body, page("PRODUCTION"));
    p.ok(&["down"]);
}
