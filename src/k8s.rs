//! Kubernetes manifests for the site image: a hardened Deployment, a `ClusterIP` Service and, when a
//! host is given, an Ingress. Each is rendered from a minijinja template: the built-in default
//! (`deploy/k8s/*.yaml.j2` in this repository), or a file of the same name in the project's
//! `deploy/k8s/` directory. Every value is validated before rendering; undefined template
//! variables are errors; as a second line of defence no string that could break out of a quoted
//! YAML scalar is written at all.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use minijinja::syntax::SyntaxConfig;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value, context};

use crate::config::validate;

/// Where a project keeps its template overrides, relative to the project directory.
pub const OVERRIDE_DIR: &str = "deploy/k8s";

/// Built-in Deployment template, the same file as `deploy/k8s/deployment.yaml.j2` here.
pub const DEFAULT_DEPLOYMENT_TEMPLATE: &str = include_str!("../deploy/k8s/deployment.yaml.j2");

/// Built-in Service template, the same file as `deploy/k8s/service.yaml.j2` here.
pub const DEFAULT_SERVICE_TEMPLATE: &str = include_str!("../deploy/k8s/service.yaml.j2");

/// Built-in Ingress template, the same file as `deploy/k8s/ingress.yaml.j2` here.
pub const DEFAULT_INGRESS_TEMPLATE: &str = include_str!("../deploy/k8s/ingress.yaml.j2");

/// Port the Service exposes inside the cluster.
pub const SERVICE_PORT: u16 = 80;

/// Most replicas sitebuild will write into a Deployment.
pub const MAX_REPLICAS: i64 = validate::MAX_REPLICAS;

/// Replicas when the caller does not choose: two, so a node going away does not take the site down.
pub const DEFAULT_REPLICAS: i64 = 2;

/// What the manifests are made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct K8sOptions {
    /// sitebuild's project name (lowercase letters, digits, `-_.`); `_` and `.` become `-`.
    pub name: String,
    /// The image to run, e.g. `registry.example.com/site:<fingerprint>`.
    pub image: String,
    /// The site's fingerprint, written as an annotation.
    pub fingerprint: String,
    /// 1..=100.
    pub replicas: i64,
    /// Ingress hostname; no Ingress without it.
    pub host: Option<String>,
    /// Namespace written into every object; none leaves it to kubectl's context.
    pub namespace: Option<String>,
    /// Port nginx listens on inside the container (8080).
    pub container_port: u16,
}

impl K8sOptions {
    /// Options with the defaults: [`DEFAULT_REPLICAS`], no host, no namespace, port 8080.
    pub fn new(
        name: impl Into<String>,
        image: impl Into<String>,
        fingerprint: impl Into<String>,
    ) -> Self {
        K8sOptions {
            name: name.into(),
            image: image.into(),
            fingerprint: fingerprint.into(),
            replicas: DEFAULT_REPLICAS,
            host: None,
            namespace: None,
            container_port: crate::layout::CONTAINER_PORT,
        }
    }
}

/// The three templates: (template file name, output file name, built-in source).
const TEMPLATES: [(&str, &str, &str); 3] = [
    (
        "deployment.yaml.j2",
        "deployment.yaml",
        DEFAULT_DEPLOYMENT_TEMPLATE,
    ),
    ("service.yaml.j2", "service.yaml", DEFAULT_SERVICE_TEMPLATE),
    ("ingress.yaml.j2", "ingress.yaml", DEFAULT_INGRESS_TEMPLATE),
];

/// Check every option; errors name the option and say what to do.
pub fn validate(opts: &K8sOptions) -> Result<()> {
    object_name(&opts.name)?;
    let invalid = |what: &str, m: String| anyhow::anyhow!("invalid `{what}`: {m}");
    validate::check_image_ref(&opts.image).map_err(|m| invalid("image", m))?;
    validate_fingerprint(&opts.fingerprint)?;
    validate::replicas(opts.replicas).map_err(|m| invalid("replicas", m))?;
    if let Some(host) = &opts.host {
        validate::hostname(host).map_err(|m| invalid("host", m))?;
    }
    if let Some(namespace) = &opts.namespace {
        validate::namespace(namespace).map_err(|m| invalid("namespace", m))?;
    }
    if opts.container_port == 0 {
        bail!("invalid `container_port`: 0; use the port nginx listens on in the image (8080)");
    }
    Ok(())
}

/// The Kubernetes object name for sitebuild's project `name`: `_` and `.` become `-`; the result
/// must be a DNS-1123 label that starts with a letter (Service names are DNS-1035 labels).
pub fn object_name(name: &str) -> Result<String> {
    let mapped: String = name
        .chars()
        .map(|c| if c == '_' || c == '.' { '-' } else { c })
        .collect();
    let shown = if mapped == name {
        format!("{name:?}")
    } else {
        format!("{name:?} (as a Kubernetes name {mapped:?})")
    };
    if let Some(why) = validate::dns1123_label_problem(&mapped) {
        bail!(
            "invalid `name`: {shown} {why}; set `name` in sitebuild.toml (or SITEBUILD_NAME) to \
             lowercase letters, digits and '-', at most 63 characters, starting with a letter"
        );
    }
    if !mapped.starts_with(|c: char| c.is_ascii_lowercase()) {
        bail!(
            "invalid `name`: {shown} starts with a digit, but a Kubernetes Service name must start with a letter; \
             set `name` in sitebuild.toml (or SITEBUILD_NAME) to a name that starts with a letter"
        );
    }
    Ok(mapped)
}

fn validate_fingerprint(fingerprint: &str) -> Result<()> {
    if fingerprint.is_empty()
        || fingerprint.len() > 128
        || !fingerprint
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        bail!(
            "invalid `fingerprint`: {fingerprint:?}; it must be 1-128 letters, digits or `._-` \
             (use the fingerprint sitebuild printed for the build)"
        );
    }
    Ok(())
}

/// Render the manifests: `deployment.yaml`, `service.yaml` and, when `opts.host` is set,
/// `ingress.yaml`, each as (file name, YAML). A `<name>.j2` file in `override_dir` (the
/// project's [`OVERRIDE_DIR`]) replaces the built-in template of that name.
pub fn render(opts: &K8sOptions, override_dir: &Path) -> Result<Vec<(String, String)>> {
    validate(opts)?;
    let name = object_name(&opts.name)?;
    let optional = |v: &Option<String>| v.as_deref().map_or(Value::from(()), Value::from);
    let ctx = context! {
        name => name,
        image => opts.image.as_str(),
        fingerprint => opts.fingerprint.as_str(),
        replicas => opts.replicas,
        host => optional(&opts.host),
        namespace => optional(&opts.namespace),
        container_port => opts.container_port,
        service_port => SERVICE_PORT,
        version => crate::VERSION,
    };
    let mut out = Vec::new();
    for (template, file, default) in TEMPLATES {
        if file == "ingress.yaml" && opts.host.is_none() {
            continue;
        }
        let (label, source) = load_template(override_dir, template, default)?;
        let yaml = render_one(&label, &source, ctx.clone())?;
        out.push((file.to_string(), yaml));
    }
    Ok(out)
}

/// Write rendered manifests into `dir` (created if needed); returns the paths written.
pub fn write_all(manifests: &[(String, String)], dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    manifests
        .iter()
        .map(|(file, yaml)| {
            let path = dir.join(file);
            std::fs::write(&path, yaml)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(path)
        })
        .collect()
}

/// The override `file` in `dir` if it exists, else the built-in `default` (see
/// [`crate::render::load_template_file`]); returns (name for errors, source).
fn load_template(dir: &Path, file: &str, default: &str) -> Result<(String, String)> {
    crate::render::load_template_file(dir, file, default)
}

/// Characters no rendered string may contain: they could end a double-quoted YAML scalar,
/// start a comment or flow collection, or add a line.
fn unsafe_char(s: &str) -> Option<char> {
    s.chars()
        .find(|c| c.is_control() || "\"'\\;{}#`".contains(*c))
}

fn render_one(label: &str, source: &str, ctx: Value) -> Result<String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_syntax(
        SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()
            .expect("the default delimiters are valid"),
    );
    env.set_formatter(|out, state, value| {
        if let Some(s) = value.as_str()
            && let Some(bad) = unsafe_char(s)
        {
            return Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!(
                    "refusing to write {s:?} into {}: it contains {bad:?}",
                    state.name()
                ),
            ));
        }
        minijinja::escape_formatter(out, state, value)
    });
    env.add_template_owned(label.to_string(), source.to_string())
        .map_err(|e| template_error(label, &e))?;
    let template = env
        .get_template(label)
        .map_err(|e| template_error(label, &e))?;
    let yaml = template
        .render(ctx)
        .map_err(|e| template_error(label, &e))?;
    if yaml.trim().is_empty() {
        bail!(
            "template error in {label}: it rendered to nothing; it must produce one Kubernetes object"
        );
    }
    Ok(yaml)
}

/// "template error in deploy/k8s/service.yaml.j2, line 3: …" with the source excerpt.
fn template_error(label: &str, e: &minijinja::Error) -> anyhow::Error {
    crate::render::template_error(
        label,
        e,
        "name, namespace, image, fingerprint, replicas, host, container_port, service_port, version",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> K8sOptions {
        K8sOptions::new(
            "my_site.web",
            "registry.example.com/my_site.web:3f2a9c1d0b7e",
            "3f2a9c1d0b7e",
        )
    }

    fn no_overrides() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    fn err(opts: &K8sOptions) -> String {
        format!("{:#}", validate(opts).unwrap_err())
    }

    fn joined(manifests: &[(String, String)]) -> String {
        manifests
            .iter()
            .map(|(file, yaml)| format!("### {file}\n{yaml}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn manifests_without_host_snapshot() {
        let dir = no_overrides();
        let out = render(&opts(), dir.path()).unwrap();
        let files: Vec<&str> = out.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(files, ["deployment.yaml", "service.yaml"]);
        insta::assert_snapshot!(joined(&out));
    }

    #[test]
    fn manifests_with_host_and_namespace_snapshot() {
        let dir = no_overrides();
        let o = K8sOptions {
            host: Some("www.example.com".to_string()),
            namespace: Some("web".to_string()),
            replicas: 3,
            ..opts()
        };
        let out = render(&o, dir.path()).unwrap();
        let files: Vec<&str> = out.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(files, ["deployment.yaml", "service.yaml", "ingress.yaml"]);
        for (_, yaml) in &out {
            assert!(yaml.contains("  namespace: \"web\"\n"), "{yaml}");
        }
        insta::assert_snapshot!(joined(&out));
    }

    #[test]
    fn hardening_is_in_the_deployment() {
        let dir = no_overrides();
        let out = render(&opts(), dir.path()).unwrap();
        let deployment = &out[0].1;
        for needle in [
            "name: \"my-site-web\"",
            "app.kubernetes.io/managed-by: sitebuild",
            "sitebuild.dev/fingerprint: \"3f2a9c1d0b7e\"",
            "maxUnavailable: 0",
            "maxSurge: 1",
            "path: /healthz",
            "port: 8080",
            "runAsNonRoot: true",
            "runAsUser: 101",
            "runAsGroup: 101",
            "type: RuntimeDefault",
            "allowPrivilegeEscalation: false",
            "readOnlyRootFilesystem: true",
            "- ALL",
            "medium: Memory",
            "sizeLimit: 64Mi",
            "mountPath: /tmp",
            "automountServiceAccountToken: false",
            "terminationGracePeriodSeconds: 30",
            "imagePullPolicy: IfNotPresent",
            "image: \"registry.example.com/my_site.web:3f2a9c1d0b7e\"",
        ] {
            assert!(
                deployment.contains(needle),
                "missing {needle:?}:\n{deployment}"
            );
        }
        assert!(!deployment.contains("namespace:"), "{deployment}");
        assert_eq!(deployment.matches("path: /healthz").count(), 2);
        assert!(deployment.ends_with("sizeLimit: 64Mi\n"), "{deployment:?}");
    }

    #[test]
    fn replicas_out_of_range_are_refused() {
        for (replicas, hint) in [
            (0, "would run no pod at all"),
            (-1, "negative"),
            (101, "more than sitebuild allows"),
            (i64::MIN, "negative"),
        ] {
            let e = err(&K8sOptions { replicas, ..opts() });
            assert!(e.contains("invalid `replicas`"), "{e}");
            assert!(e.contains(&replicas.to_string()), "{e}");
            assert!(e.contains(hint), "{e}");
            assert!(e.contains("use a number from 1 to 100"), "{e}");
            // render refuses too, before any template is touched
            assert!(render(&K8sOptions { replicas, ..opts() }, no_overrides().path()).is_err());
        }
        for replicas in [1, 100] {
            validate(&K8sOptions { replicas, ..opts() }).unwrap();
        }
    }

    #[test]
    fn bad_hosts_are_refused() {
        for (host, hint) in [
            ("a.com;", "';'"),
            ("*.a.com", "wildcard"),
            ("a b", "whitespace"),
            ("a.com\nx: y", "whitespace"),
            ("a{b}.com", "'{'"),
            ("a\"b.com", "'\"'"),
            ("a'b.com", "'\\''"),
            ("", "empty"),
            ("a..com", "empty label"),
            (".a.com", "empty label"),
            ("a.com.", "empty label"),
            ("-a.com", "starts or ends with '-'"),
            ("a-.com", "starts or ends with '-'"),
            ("Www.Example.com", "uppercase"),
            ("a.com:8080", "':'"),
            ("https://a.com", "':'"),
            ("10.0.0.1", "IP address"),
        ] {
            let e = err(&K8sOptions {
                host: Some(host.to_string()),
                ..opts()
            });
            assert!(e.contains("invalid `host`"), "{host:?}: {e}");
            assert!(e.contains(hint), "{host:?}: expected {hint:?} in {e}");
        }
        let long_label = format!("{}.com", "a".repeat(64));
        let e = err(&K8sOptions {
            host: Some(long_label),
            ..opts()
        });
        assert!(e.contains("more than 63"), "{e}");
        let long_host = vec!["a".repeat(60); 5].join(".");
        let e = err(&K8sOptions {
            host: Some(long_host),
            ..opts()
        });
        assert!(e.contains("more than 253"), "{e}");
        for host in [
            "a.com",
            "www.example.com",
            "localhost",
            "x-1.b2.example.org",
        ] {
            validate(&K8sOptions {
                host: Some(host.to_string()),
                ..opts()
            })
            .unwrap();
        }
    }

    #[test]
    fn bad_namespaces_and_names_are_refused() {
        for ns in ["", "Web", "web_1", "-web", "web-", "a.b", &"a".repeat(64)] {
            let e = err(&K8sOptions {
                namespace: Some(ns.to_string()),
                ..opts()
            });
            assert!(e.contains("invalid `namespace`"), "{ns:?}: {e}");
        }
        validate(&K8sOptions {
            namespace: Some("web-1".to_string()),
            ..opts()
        })
        .unwrap();

        assert_eq!(object_name("my_site.web").unwrap(), "my-site-web");
        assert_eq!(object_name("site").unwrap(), "site");
        for name in ["", "_site", "site.", "Site", "2048", &"a".repeat(64)] {
            let e = format!("{:#}", object_name(name).unwrap_err());
            assert!(e.contains("invalid `name`"), "{name:?}: {e}");
        }
        let e = format!("{:#}", object_name("site_").unwrap_err());
        assert!(e.contains("\"site-\""), "shows the mapped name: {e}");
        let e = format!("{:#}", object_name("2048").unwrap_err());
        assert!(e.contains("start with a letter"), "{e}");
    }

    #[test]
    fn bad_image_fingerprint_and_port_are_refused() {
        for image in ["", "a b", "a\"b", "-x", "x\ny"] {
            let e = err(&K8sOptions {
                image: image.to_string(),
                ..opts()
            });
            assert!(e.contains("invalid `image`"), "{image:?}: {e}");
        }
        validate(&K8sOptions {
            image: "localhost:5000/site@sha256:abc123".to_string(),
            ..opts()
        })
        .unwrap();
        for fingerprint in ["", "a b", "x;y"] {
            let e = err(&K8sOptions {
                fingerprint: fingerprint.to_string(),
                ..opts()
            });
            assert!(e.contains("invalid `fingerprint`"), "{fingerprint:?}: {e}");
        }
        let e = err(&K8sOptions {
            container_port: 0,
            ..opts()
        });
        assert!(e.contains("invalid `container_port`"), "{e}");
    }

    #[test]
    fn override_template_is_used_when_present() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("service.yaml.j2"),
            "# custom\napiVersion: v1\nkind: Service\nmetadata:\n  name: \"{{ name }}-custom\"\n",
        )
        .unwrap();
        let o = K8sOptions {
            host: Some("a.com".to_string()),
            ..opts()
        };
        let out = render(&o, dir.path()).unwrap();
        assert_eq!(out[1].0, "service.yaml");
        assert_eq!(
            out[1].1,
            "# custom\napiVersion: v1\nkind: Service\nmetadata:\n  name: \"my-site-web-custom\"\n"
        );
        // the others stay built-in
        assert!(out[0].1.contains("kind: Deployment"));
        assert!(out[2].1.contains("kind: Ingress"));
    }

    #[test]
    fn template_error_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deployment.yaml.j2");
        std::fs::write(
            &path,
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: \"{{ nmae }}\"\n",
        )
        .unwrap();
        let e = render(&opts(), dir.path()).unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains(&format!("template error in {}, line 4:", path.display())),
            "{msg}"
        );
        assert!(msg.contains("nmae"), "{msg}");
        let located = crate::located::find(&e).expect("a located error");
        assert_eq!(located.file, path);
        assert_eq!(located.line, Some(4));

        // a syntax error is reported the same way
        std::fs::write(&path, "kind: Deployment\n{% if %}\n").unwrap();
        let msg = format!("{:#}", render(&opts(), dir.path()).unwrap_err());
        assert!(
            msg.contains(&format!("template error in {}, line 2:", path.display())),
            "{msg}"
        );
    }

    #[test]
    fn unsafe_strings_are_never_written() {
        // validate() already refuses such values; the formatter is the backstop for overrides
        // that print something else.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("service.yaml.j2"),
            "kind: Service\nmetadata:\n  name: \"{{ name ~ '\"\\nx: y' }}\"\n",
        )
        .unwrap();
        let msg = format!("{:#}", render(&opts(), dir.path()).unwrap_err());
        assert!(msg.contains("refusing to write"), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
    }

    #[test]
    fn empty_override_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("service.yaml.j2"), "{# nothing #}\n").unwrap();
        let msg = format!("{:#}", render(&opts(), dir.path()).unwrap_err());
        assert!(msg.contains("rendered to nothing"), "{msg}");
    }
}
