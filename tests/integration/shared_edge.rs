//! The shared edge of projects with `domains`: two projects on one edge (one HTTP and one
//! HTTPS port) routed by Host and SNI, each with its own certificate; a domain claimed twice;
//! a project whose live container was removed by hand does not block the others;
//! `down` of one leaves the other serving and the last one takes the edge away; a deploy of
//! one under keep-alive and new-connection load on both drops nothing; two projects deploying
//! at once keep both parts; maintenance mode on the shared edge and on a project's own edge.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::tls::{curl, make_cert};

/// `sitebuild.toml` of a project on the shared edge of `http`/`https` for `domains`.
fn on_edge(p: &Project, http: u16, https: u16, domains: &[&str], extra: &str) {
    let list = domains
        .iter()
        .map(|d| format!("\"{d}\""))
        .collect::<Vec<_>>()
        .join(", ");
    p.write_toml(&format!(
        "domains = [{list}]\nhttp_port = {http}\nhttps_port = {https}\n{extra}"
    ));
}

/// GET `path` from the edge on loopback `port` with `Host: host`.
fn get_host(port: u16, host: &str, path: &str) -> Response {
    get(
        SocketAddr::from(([127, 0, 0, 1], port)),
        path,
        &[("Host", host)],
        Duration::from_secs(5),
    )
    .unwrap_or_else(|e| panic!("GET {host}{path} on port {port}: {e:#}"))
}

fn write_index(p: &Project, text: &str) -> Vec<u8> {
    let body = format!("<!doctype html><title>{text}</title><p>{text}</p>\n");
    std::fs::write(p.site("index.html"), &body).unwrap();
    body.into_bytes()
}

#[test]
fn two_projects_one_edge_sni_claims_and_down() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    if !tools_ready(&["openssl", "curl"]) {
        return;
    }
    let started = Instant::now();
    let a = Project::new("sha");
    let b = Project::new("shb");
    let (http, https) = (a.port, free_port());
    let (da, db) = ("a.shared.sbtest.example", "b.shared.sbtest.example");
    let (acrt, akey) = make_cert(a.path(), "a", &[da]);
    let (bcrt, bkey) = make_cert(b.path(), "b", &[db]);
    let files = |crt: &str, key: &str| {
        format!("tls = \"files\"\ntls_cert = \"{crt}\"\ntls_key = \"{key}\"\n")
    };
    on_edge(&a, http, https, &[da], &files(&acrt, &akey));
    on_edge(&b, http, https, &[db], &files(&bcrt, &bkey));
    let index_a = write_index(&a, "project A");
    let index_b = write_index(&b, "project B");
    a.ok(&["up"]);
    b.ok(&["up"]);

    // One edge for both, none of their own.
    let edge = format!("sitebuild-edge-{http}");
    assert_eq!(inspect(&edge, "{{.State.Running}}"), "true");
    assert!(a.role("edge").is_empty() && b.role("edge").is_empty());

    // SNI picks each project's certificate, Host its site.
    let (ca, cb) = (a.path().join(&acrt), b.path().join(&bcrt));
    let (ca, cb) = (ca.to_str().unwrap(), cb.to_str().unwrap());
    let url = |host: &str| format!("https://{host}:{https}/");
    let (ok, body) = curl(da, https, &["--cacert", ca, &url(da)]);
    assert!(ok && body.as_bytes() == index_a, "A over HTTPS: {body}");
    let (ok, body) = curl(db, https, &["--cacert", cb, &url(db)]);
    assert!(ok && body.as_bytes() == index_b, "B over HTTPS: {body}");
    let (ok, _) = curl(da, https, &["--cacert", cb, &url(da)]);
    assert!(!ok, "A's name was served with B's certificate");
    // Names nobody claims: 404 on HTTP, no handshake on HTTPS; the domains redirect.
    assert_eq!(get_host(http, "other.sbtest.example", "/").status, 404);
    let (ok, _) = curl(
        "other.sbtest.example",
        https,
        &["-k", &url("other.sbtest.example")],
    );
    assert!(!ok, "a TLS handshake for an unknown name succeeded");
    let r = get_host(http, da, "/x?y=1");
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some(format!("https://{da}:{https}/x?y=1").as_str())
    );

    // status: every project on the edge with its domains, certificate and maintenance.
    let status = a.ok(&["status"]);
    for want in [
        format!("on edge    {}: {da}; live ", a.name),
        format!("on edge    {}: {db}; live ", b.name),
        format!("certificate from CN={da} until "),
        "maintenance off".to_string(),
        "shared by 2 project(s)".to_string(),
    ] {
        assert!(status.contains(&want), "{want}:\n{status}");
    }

    // A domain B claims: a clear error naming B and `domains`; nothing changes, B serves.
    let c = Project::new("shc");
    on_edge(
        &c,
        http,
        https,
        &["c.shared.sbtest.example", db],
        "tls = \"off\"\n",
    );
    let e = c.fails(&["up"]);
    assert!(
        e.contains(&format!("project `{}`", b.name)) && e.contains("`domains`") && e.contains(db),
        "{e}"
    );
    assert!(c.role("site").is_empty(), "{:?}", c.containers());
    let (ok, body) = curl(db, https, &["--cacert", cb, &url(db)]);
    assert!(ok && body.as_bytes() == index_b);

    // B's part broken by hand (nginx cannot load it): A's deploy leaves it out with a note
    // instead of failing for everyone; B's next deploy writes it again.
    let break_part = |p: &Project| {
        let conf = format!("/etc/sitebuild-edge/projects/{}/site.conf", p.name);
        let append = format!("echo 'not_a_directive on;' >> {conf}");
        let broke = docker(&["exec", "-u", "0", &edge, "busybox", "sh", "-c", &append])
            .status
            .success()
            || docker(&["exec", "-u", "0", &edge, "sh", "-c", &append])
                .status
                .success();
        assert!(broke, "cannot edit {conf} in {edge}");
    };
    break_part(&b);
    std::fs::write(a.site("extra.html"), "<p>A again</p>\n").unwrap();
    let out = a.ok(&["up"]);
    assert!(
        out.contains(&format!("leaving {}'s part out", b.name)) && out.contains("not_a_directive"),
        "{out}"
    );
    let (ok, _) = curl(da, https, &["--cacert", ca, &url(da)]);
    assert!(ok, "A after leaving B's broken part out");
    // status says which part the running config left out.
    let status = a.ok(&["status"]);
    let line_of = |p: &Project| {
        status
            .lines()
            .find(|l| l.contains(&format!("on edge    {}:", p.name)))
            .unwrap_or_else(|| panic!("no line for {} in: {status}", p.name))
            .to_string()
    };
    assert!(line_of(&b).contains("NOT SERVED"), "{status}");
    assert!(!line_of(&a).contains("NOT SERVED"), "{status}");
    b.ok(&["up"]);
    let (ok, body) = curl(db, https, &["--cacert", cb, &url(db)]);
    assert!(
        ok && body.as_bytes() == index_b,
        "B after its redeploy: {body}"
    );

    // A's live container removed by hand: B's next deploy leaves A's part out (nginx could not
    // resolve it) instead of failing.
    for id in a.role("site") {
        docker(&["rm", "-f", &id]);
    }
    let index_b = write_index(&b, "project B, second version");
    let out = b.ok(&["up"]);
    assert!(out.contains("leaving") && out.contains(&a.name), "{out}");
    let (ok, body) = curl(db, https, &["--cacert", cb, &url(db)]);
    assert!(
        ok && body.as_bytes() == index_b,
        "B after its deploy: {body}"
    );

    // down of A while B's part is broken: A goes, B's part is left out (a note), B's next
    // deploy brings it back; B keeps serving on the same edge; down of B: the edge goes too.
    break_part(&b);
    let out = a.ok(&["down"]);
    assert!(
        out.contains(&format!("leaving {}'s part out", b.name)),
        "{out}"
    );
    b.ok(&["up"]);
    let (ok, body) = curl(db, https, &["--cacert", cb, &url(db)]);
    assert!(ok && body.as_bytes() == index_b, "B after A's down: {body}");
    assert_eq!(get_host(http, da, "/").status, 404);
    b.ok(&["down"]);
    assert!(
        !docker(&["inspect", &edge]).status.success(),
        "the shared edge outlived its last project"
    );
    eprintln!("shared edge SNI test took {:?}", started.elapsed());
}

#[test]
fn deploy_under_load_on_shared_edge_and_maintenance() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    let started = Instant::now();
    let a = Project::new("shl");
    let b = Project::new("shm");
    let (http, https) = (a.port, free_port());
    let (da, db) = ("a.load.sbtest.example", "b.load.sbtest.example");
    on_edge(&a, http, https, &[da], "tls = \"off\"\n");
    on_edge(&b, http, https, &[db], "tls = \"off\"\n");
    let a1 = write_index(&a, "A one");
    let ib = write_index(&b, "B");
    a.ok(&["up"]);
    b.ok(&["up"]);
    assert_eq!(get_host(http, da, "/").body, a1);
    assert_eq!(get_host(http, db, "/").body, ib);

    // A deploy of A under new-connection and keep-alive load on A and B: nothing fails.
    let addr = SocketAddr::from(([127, 0, 0, 1], http));
    let a2 = b"<!doctype html><title>A two</title><p>A two</p>\n".to_vec();
    let load_a = Load::start_host(addr, Some(da), "/", vec![a1.clone(), a2.clone()], 2);
    let keep_a = KeepAliveLoad::start_host(addr, Some(da), "/", vec![a1.clone(), a2.clone()], 2);
    let load_b = Load::start_host(addr, Some(db), "/", vec![ib.clone()], 2);
    let keep_b = KeepAliveLoad::start_host(addr, Some(db), "/", vec![ib.clone()], 2);
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(a.site("index.html"), &a2).unwrap();
    let deploy = Instant::now();
    a.ok(&["up"]);
    let took = deploy.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let (la, ka, lb, kb) = (
        load_a.finish(),
        keep_a.finish(),
        load_b.finish(),
        keep_b.finish(),
    );
    eprintln!(
        "deploy of A took {took:?}; A: {} new-connection ok, {} keep-alive ok ({} closes); \
         B: {} new-connection ok, {} keep-alive ok",
        la.ok, ka.ok, ka.closes, lb.ok, kb.ok
    );
    assert!(la.failures() == 0 && la.ok > 0, "A new connections: {la:?}");
    assert!(ka.failures() == 0 && ka.ok > 0, "A keep-alive: {ka:?}");
    assert!(lb.failures() == 0 && lb.ok > 0, "B new connections: {lb:?}");
    assert!(kb.failures() == 0 && kb.ok > 0, "B keep-alive: {kb:?}");
    assert_eq!(get_host(http, da, "/").body, a2);

    // A and B deploying at the same moment: the edge-wide lock serializes their edge updates,
    // neither loses the other's part.
    let a3 = write_index(&a, "A three");
    let b2 = write_index(&b, "B two");
    let (ta, tb) = (a.cmd(&["up"]), b.cmd(&["up"]));
    let both = [ta, tb].map(|mut c| std::thread::spawn(move || c.output().unwrap()));
    for out in both.map(|t| t.join().unwrap()) {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(get_host(http, da, "/").body, a3);
    assert_eq!(get_host(http, db, "/").body, b2);
    let ib = b2;
    // Unchanged: nothing to do (the fast path asks the edge with B's Host).
    let noop = Instant::now();
    let out = b.ok(&["up"]);
    assert!(out.contains("nothing changed"), "{out}");
    eprintln!(
        "unchanged deploy of B on the shared edge took {:?}",
        noop.elapsed()
    );

    // Maintenance: 503 + Retry-After + the built-in page with the message escaped (never nginx
    // text); /healthz stays 200; B is untouched.
    let message = "Back at 14:00 <b>soon</b> \"; return 200 x;";
    a.ok(&["maintenance", "on", "--message", message]);
    let r = get_host(http, da, "/any/page");
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("120"));
    assert!(
        r.text()
            .contains("Back at 14:00 &lt;b&gt;soon&lt;/b&gt; &quot;; return 200 x;"),
        "{}",
        r.text()
    );
    assert_eq!(get_host(http, da, "/healthz").status, 200);
    assert_eq!(get_host(http, db, "/").body, ib);
    let status = a.ok(&["status"]);
    assert!(status.contains("maintenance on"), "{status}");
    // It survives a deploy, and the live version's own maintenance.html is the page.
    let own = "<!doctype html><title>Maintenance</title><p>our own page</p>\n";
    std::fs::write(a.site("maintenance.html"), own).unwrap();
    a.ok(&["up"]);
    let r = get_host(http, da, "/");
    assert_eq!((r.status, r.text().as_str()), (503, own));
    a.ok(&["maintenance", "off"]);
    let r = get_host(http, da, "/");
    assert_eq!((r.status, r.body.clone()), (200, a3.clone()));

    // A project's own edge (no domains) has the same mode.
    let p = Project::new("shn");
    p.ok(&["up"]);
    p.ok(&["maintenance", "on"]);
    let r = p.get("/");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("120"));
    assert!(r.text().contains("Down for maintenance"), "{}", r.text());
    assert_eq!(p.get("/healthz").status, 200);
    p.ok(&["maintenance", "off"]);
    assert_eq!(p.get("/").status, 200);
    p.ok(&["down"]);

    a.ok(&["down"]);
    b.ok(&["down"]);
    eprintln!("shared edge load test took {:?}", started.elapsed());
}
