//! Render nginx.conf from a minijinja template: the built-in default, or `nginx/nginx.conf.j2`
//! in the project when present. Undefined variables are errors; every interpolated string is
//! checked once more for nginx syntax (the config layer already refused it, this is a backstop).

use std::path::Path;

use anyhow::{Context, Result, bail};
use minijinja::{Environment, UndefinedBehavior, context};

use crate::config::Config;

/// The template file name looked up in the project's template directory.
pub const NGINX_TEMPLATE: &str = "nginx.conf.j2";

/// Built-in default, the same file as `nginx/nginx.conf.j2` in this repository.
pub const DEFAULT_NGINX_TEMPLATE: &str = include_str!("../nginx/nginx.conf.j2");

/// Port nginx listens on inside the container (non-root, so above 1024).
pub const CONTAINER_PORT: u16 = 8080;

/// Where the site files live inside the image.
pub const SITE_ROOT: &str = "/usr/share/sitebuild/html";

/// Where the rendered config lives inside the image.
pub const CONF_PATH: &str = "/usr/share/sitebuild/nginx.conf";

/// What the template sees.
#[derive(Debug, Clone)]
pub struct RenderInputs<'a> {
    pub server_name: &'a str,
    pub spa: bool,
    pub has_404: bool,
    pub gzip_min_length: u64,
}

impl<'a> RenderInputs<'a> {
    pub fn from_config(config: &'a Config, has_404: bool) -> Self {
        RenderInputs {
            server_name: &config.server_name,
            spa: config.spa,
            has_404,
            gzip_min_length: 256,
        }
    }
}

/// The edge proxy's template file name.
pub const EDGE_TEMPLATE: &str = "edge.conf.j2";

/// Built-in edge template, the same file as `nginx/edge.conf.j2` in this repository.
pub const DEFAULT_EDGE_TEMPLATE: &str = include_str!("../nginx/edge.conf.j2");

/// Load `file` from `templates_dir` if it exists, else the built-in `default`;
/// returns (name for errors, source).
pub fn load_template_file(
    templates_dir: &Path,
    file: &str,
    default: &str,
) -> Result<(String, String)> {
    let path = templates_dir.join(file);
    if path.exists() {
        let src = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read template {}", path.display()))?;
        Ok((path.display().to_string(), src))
    } else {
        Ok((format!("<built-in {file}>"), default.to_string()))
    }
}

/// The site template: the project's override or the built-in one.
pub fn load_template(templates_dir: &Path) -> Result<(String, String)> {
    load_template_file(templates_dir, NGINX_TEMPLATE, DEFAULT_NGINX_TEMPLATE)
}

/// Render the site config `source` (named `name` in errors) with `inputs`.
pub fn render(name: &str, source: &str, inputs: &RenderInputs<'_>) -> Result<String> {
    let ctx = context! {
        listen_port => CONTAINER_PORT,
        server_name => inputs.server_name,
        root => SITE_ROOT,
        spa => inputs.spa,
        has_404 => inputs.has_404,
        gzip_min_length => inputs.gzip_min_length,
        version => crate::VERSION,
    };
    let out = render_with(
        name,
        source,
        ctx,
        "listen_port, server_name, root, spa, has_404, gzip_min_length, version",
    )?;
    if !out.contains("/healthz") {
        bail!(
            "{name}: the rendered config has no /healthz location; sitebuild needs `location = /healthz {{ return 200; }}` to know the site is up"
        );
    }
    Ok(out)
}

/// What the edge template sees.
#[derive(Debug, Clone, Default)]
pub struct EdgeInputs<'a> {
    pub live: &'a str,
    pub live_fingerprint: &'a str,
    /// The project's name: the candidate route admits only its site containers.
    pub project: &'a str,
    /// `ip:port` of `sitebuild watch`'s live-reload server; "" in production.
    pub livereload: &'a str,
}

/// Render the edge proxy config (override in `templates_dir`, else built-in).
pub fn render_edge(templates_dir: &Path, inputs: &EdgeInputs<'_>) -> Result<String> {
    let (name, source) = load_template_file(templates_dir, EDGE_TEMPLATE, DEFAULT_EDGE_TEMPLATE)?;
    let ctx = context! {
        listen_port => CONTAINER_PORT,
        site_port => CONTAINER_PORT,
        live => inputs.live,
        live_fingerprint => inputs.live_fingerprint,
        project => inputs.project,
        livereload => inputs.livereload,
        version => crate::VERSION,
    };
    render_with(
        &name,
        &source,
        ctx,
        "listen_port, site_port, live, live_fingerprint, project, livereload, version",
    )
}

/// Strict rendering with the injection backstop.
fn render_with(name: &str, source: &str, ctx: minijinja::Value, variables: &str) -> Result<String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_formatter(|out, state, value| {
        if let Some(s) = value.as_str()
            && let Some(bad) = s.chars().find(|c| ";{}\"'\\\n\r".contains(*c))
        {
            return Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("refusing to write {s:?} into the nginx config: it contains {bad:?}"),
            ));
        }
        minijinja::escape_formatter(out, state, value)
    });
    env.add_template_owned(name.to_string(), source.to_string())
        .map_err(|e| template_error(name, &e, variables))?;
    let tmpl = env.get_template(name).expect("just added");
    tmpl.render(ctx)
        .map_err(|e| template_error(name, &e, variables))
}

/// "nginx/nginx.conf.j2, line 3: undefined value …" followed by minijinja's source excerpt and
/// the variables the template may use; located (for CI annotations) unless it is a built-in one.
pub(crate) fn template_error(name: &str, e: &minijinja::Error, variables: &str) -> anyhow::Error {
    let line = e.line().map(|l| format!(", line {l}")).unwrap_or_default();
    let what = e
        .detail()
        .map(str::to_string)
        .unwrap_or_else(|| e.kind().to_string());
    let message = format!(
        "template error in {name}{line}: {what}\n{e:#}\nFix the template (variables: {variables})"
    );
    if name.starts_with("<built-in") {
        anyhow::anyhow!(message)
    } else {
        anyhow::Error::new(crate::located::Located::new(name, e.line(), message))
    }
}

/// Render the config for a project: override template if present, else the built-in one.
pub fn render_for(config: &Config, has_404: bool) -> Result<String> {
    let (name, source) = load_template(&config.templates_dir)?;
    render(&name, &source, &RenderInputs::from_config(config, has_404))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> RenderInputs<'static> {
        RenderInputs {
            server_name: "_",
            spa: false,
            has_404: true,
            gzip_min_length: 256,
        }
    }

    #[test]
    fn default_config_snapshot() {
        let out = render("default", DEFAULT_NGINX_TEMPLATE, &inputs()).unwrap();
        insta::assert_snapshot!(out);
    }

    #[test]
    fn spa_and_no_404() {
        let out = render(
            "default",
            DEFAULT_NGINX_TEMPLATE,
            &RenderInputs {
                spa: true,
                has_404: false,
                server_name: "example.com www.example.com",
                ..inputs()
            },
        )
        .unwrap();
        assert!(out.contains("try_files $uri $uri/ /index.html;"));
        assert!(!out.contains("error_page 404"));
        assert!(out.contains("server_name example.com www.example.com;"));
    }

    #[test]
    fn undefined_variable_names_template_and_line() {
        let src =
            "events {}\nhttp {\n  server { listen {{ lisen_port }}; location = /healthz {} }\n}\n";
        let e = format!(
            "{:#}",
            render("nginx/nginx.conf.j2", src, &inputs()).unwrap_err()
        );
        assert!(e.contains("nginx/nginx.conf.j2"), "{e}");
        assert!(e.contains("line 3"), "{e}");
        assert!(e.contains("undefined"), "{e}");
    }

    #[test]
    fn syntax_error_names_template_and_line() {
        let src = "events {}\n\nhttp { {% if spa %} }\n";
        let e = format!(
            "{:#}",
            render("nginx/nginx.conf.j2", src, &inputs()).unwrap_err()
        );
        assert!(
            e.contains("nginx/nginx.conf.j2") && e.contains("line 3"),
            "{e}"
        );
        assert!(e.contains("syntax error"), "{e}");
    }

    #[test]
    fn formatter_refuses_injection_even_if_config_did_not() {
        let bad = RenderInputs {
            server_name: "x; return 301 http://evil",
            ..inputs()
        };
        let e = format!(
            "{:#}",
            render("t", DEFAULT_NGINX_TEMPLATE, &bad).unwrap_err()
        );
        assert!(e.contains("refusing to write"), "{e}");
    }

    #[test]
    fn edge_config_snapshots() {
        let none = render_edge(Path::new("/nonexistent"), &EdgeInputs::default()).unwrap();
        assert!(none.contains("return 503"));
        assert!(!none.contains("upstream sitebuild_"));
        let gate = render_edge(
            Path::new("/nonexistent"),
            &EdgeInputs {
                live: "blog-111111111111-aaaaaa",
                live_fingerprint: "111111111111",
                project: "blog",
                livereload: "",
            },
        )
        .unwrap();
        insta::assert_snapshot!(gate);
        let dev = render_edge(
            Path::new("/nonexistent"),
            &EdgeInputs {
                live: "blog-111111111111-aaaaaa",
                live_fingerprint: "111111111111",
                livereload: "172.18.0.1:40000",
                ..Default::default()
            },
        )
        .unwrap();
        assert!(dev.contains("proxy_pass http://172.18.0.1:40000/events;"));
        assert!(dev.contains("sub_filter"));
        assert!(!gate.contains("sub_filter"), "never in production");
    }

    #[test]
    fn healthz_required() {
        let e = render("t", "events {}\nhttp {}\n", &inputs()).unwrap_err();
        assert!(e.to_string().contains("/healthz"));
    }
}
