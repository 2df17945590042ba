//! Bad input against a live site: every case exits non-zero, the message names the file, key or
//! line and what to do, and the previously deployed version keeps serving its bytes.
//! The README's "Bad input" table lists the same cases.

use crate::common::*;

/// Makes the project bad; returns extra args for `up`.
type Setup = Box<dyn Fn(&Project) -> Vec<String>>;

struct Case {
    name: &'static str,
    setup: Setup,
    env: Vec<(&'static str, String)>,
    /// Every one of these must appear in stderr.
    expect: Vec<&'static str>,
}

fn fixture_case(name: &'static str, expect: Vec<&'static str>) -> Case {
    Case {
        name,
        setup: Box::new(move |p| {
            apply_fixture(p, name);
            vec![]
        }),
        env: vec![],
        expect,
    }
}

#[test]
fn bad_inputs_fail_clearly_and_the_live_site_keeps_serving() {
    let Some(_engine) = engine(module_path!()) else {
        return;
    };
    let p = Project::new("bad");
    p.ok(&["up"]);
    let live = p.get("/").body;
    let live_container = p.containers();
    assert_eq!(live_container.len(), 2, "edge + site");

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port();

    let cases = vec![
        Case {
            name: "missing site/",
            setup: Box::new(|p| {
                std::fs::remove_dir_all(p.path().join("site")).unwrap();
                vec![]
            }),
            env: vec![],
            expect: vec!["site", "does not exist", "site_dir"],
        },
        fixture_case("missing-index", vec!["index.html", "missing"]),
        fixture_case(
            "template-syntax",
            vec!["nginx/nginx.conf.j2", "line", "syntax error"],
        ),
        fixture_case(
            "template-undefined",
            vec!["nginx/nginx.conf.j2, line 65", "listen_prot", "undefined"],
        ),
        fixture_case(
            "nginx-t-fails",
            vec!["nginx -t failed", "sendfile_turbo", "nginx.conf.j2"],
        ),
        fixture_case(
            "health-never-200",
            vec!["/healthz", "503", "health_timeout", "never stopped"],
        ),
        fixture_case(
            "unknown-key",
            vec!["sitebuild.toml", "unknown field `prot`"],
        ),
        fixture_case("toml-syntax", vec!["sitebuild.toml", "line 3"]),
        fixture_case(
            "bad-redirects",
            vec![
                "site/_redirects, line 3:",
                "unsupported status \"999\"",
                "301",
            ],
        ),
        fixture_case(
            "bad-headers",
            vec!["site/_headers, line 2:", "is not a header", "`Name: value`"],
        ),
        fixture_case(
            "server-name-semicolon",
            vec!["`server_name`", "sitebuild.toml", "';'"],
        ),
        fixture_case(
            "server-name-newline",
            vec!["`server_name`", "sitebuild.toml", "'\\n'"],
        ),
        Case {
            name: "port 0",
            setup: Box::new(|_| vec!["--port".into(), "0".into()]),
            env: vec![],
            expect: vec!["`port`", "--port", "between 1 and 65535"],
        },
        Case {
            name: "port 70000",
            setup: Box::new(|_| vec![]),
            env: vec![("SITEBUILD_PORT", "70000".into())],
            expect: vec!["`port`", "SITEBUILD_PORT", "between 1 and 65535"],
        },
        Case {
            name: "symlink to /etc/passwd",
            setup: Box::new(|p| {
                std::os::unix::fs::symlink("/etc/passwd", p.site("passwd.txt")).unwrap();
                vec![]
            }),
            env: vec![],
            expect: vec!["passwd.txt", "outside the site directory"],
        },
        Case {
            name: "non-UTF-8 file name",
            setup: Box::new(|p| {
                use std::os::unix::ffi::OsStrExt;
                let name = std::ffi::OsStr::from_bytes(b"caf\xe9.html");
                std::fs::write(p.path().join("site").join(name), "x").unwrap();
                vec![]
            }),
            env: vec![],
            expect: vec!["caf", "not valid UTF-8", "rename"],
        },
        Case {
            name: "host port in use",
            setup: Box::new(move |_| vec!["--port".into(), busy_port.to_string()]),
            env: vec![],
            expect: vec!["already in use", "--port"],
        },
        Case {
            name: "base image missing",
            setup: Box::new(|p| {
                // A content change, so a build is needed.
                std::fs::write(p.site("new.html"), "new").unwrap();
                vec![]
            }),
            env: vec![("SITEBUILD_BASE_IMAGE", "sitebuild/does-not-exist:1".into())],
            expect: vec![
                "sitebuild/does-not-exist:1",
                "scripts/offline-base.sh",
                "SITEBUILD_BASE_IMAGE",
            ],
        },
        Case {
            name: "engine unreachable",
            setup: Box::new(|p| {
                std::fs::write(p.site("new.html"), "new").unwrap();
                vec![]
            }),
            env: vec![("DOCKER_HOST", "unix:///nonexistent".into())],
            expect: vec![
                "cannot reach the Docker engine at unix:///nonexistent",
                "DOCKER_HOST",
            ],
        },
    ];

    let mut failures = Vec::new();
    for case in &cases {
        reset(&p);
        let extra = (case.setup)(&p);
        let mut args = vec!["up".to_string()];
        args.extend(extra);
        let mut cmd = p.cmd(&args.iter().map(String::as_str).collect::<Vec<_>>());
        for (k, v) in &case.env {
            cmd.env(k, v);
        }
        let started = std::time::Instant::now();
        let out = cmd.output().unwrap();
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            failures.push(format!("{}: succeeded, should fail", case.name));
        }
        for want in &case.expect {
            if !stderr.contains(want) {
                failures.push(format!("{}: stderr lacks {want:?}:\n{stderr}", case.name));
            }
        }
        if case.name == "engine unreachable" && took.as_secs_f64() >= 2.0 {
            failures.push(format!("engine unreachable: took {took:?}, want < 2 s"));
        }
        let now = p.get("/");
        if now.status != 200 || now.body != live {
            failures.push(format!(
                "{}: the live site changed (status {})",
                case.name, now.status
            ));
        }
        eprintln!(
            "case {:<24} exit {:?} in {:.2} s",
            case.name,
            out.status.code(),
            took.as_secs_f64()
        );
    }
    assert_eq!(
        p.containers(),
        live_container,
        "the live container was never replaced"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));

    // A good save afterwards recovers.
    reset(&p);
    std::fs::write(p.site("index.html"), "<!doctype html><p>recovered</p>").unwrap();
    p.ok(&["up"]);
    assert_eq!(p.get("/").text(), "<!doctype html><p>recovered</p>");
    drop(busy);
}
