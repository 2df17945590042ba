//! `sitebuild render`: the nginx config (or, with `--k8s`, Kubernetes manifests).

use std::path::Path;

use anyhow::{Context, Result};

use super::load;
use crate::cli::BuildArgs;
use crate::config::{Config, validate};
use crate::engine::Engine;
use crate::image::{self, BaseSupport};
use crate::k8s;
use crate::site;
use crate::ui::Ui;

/// What the base supports, when the engine answers and has the base (`render` never pulls);
/// else gzip only, said once on stderr (`render` works without an engine).
fn base_support(config: &Config, ui: &Ui, runtime: &tokio::runtime::Runtime) -> BaseSupport {
    let probed = runtime.block_on(async {
        let engine = Engine::connect().await?;
        image::local_base_support(&engine, config).await
    });
    match probed {
        Ok(Some(support)) => support,
        Ok(None) => {
            ui.step(format!(
                "rendered for a base without brotli: base image {} is not on the engine (build pulls it)",
                config.base_image
            ));
            BaseSupport::default()
        }
        Err(e) => {
            ui.step(format!(
                "rendered for a base without brotli (cannot ask the engine about {}: {e:#})",
                config.base_image
            ));
            BaseSupport::default()
        }
    }
}

pub(super) fn nginx(
    dir: &Path,
    out: Option<&Path>,
    ui: &Ui,
    runtime: &tokio::runtime::Runtime,
) -> Result<()> {
    let config = load(dir, &BuildArgs::default(), None)?;
    // The 404 pages are looked up so the rendered config is the one `build` would use; a
    // missing site directory is fine here (render shows the config, build checks the site).
    let not_found_pages = match site::scan(&config.site_dir) {
        Ok(s) => s.not_found_pages(),
        Err(_) if config.site_dir.join("404.html").is_file() => vec!["404.html".to_string()],
        Err(_) => Vec::new(),
    };
    // Bad input fails before the engine is asked anything.
    image::render_nginx(&config, &not_found_pages, BaseSupport::default())?;
    let base = base_support(&config, ui, runtime);
    let conf = image::render_nginx(&config, &not_found_pages, base)?;
    match out {
        Some(path) => {
            std::fs::write(path, &conf)
                .with_context(|| format!("cannot write {}", path.display()))?;
            ui.step(format!("wrote {}", path.display()));
        }
        None => print!("{conf}"),
    }
    Ok(())
}

/// `render --k8s`: manifests for the image of the current content.
pub(super) fn k8s(
    dir: &Path,
    out: Option<&Path>,
    repo: Option<&str>,
    ui: &Ui,
    runtime: &tokio::runtime::Runtime,
) -> Result<()> {
    let config = load(dir, &BuildArgs::default(), None)?;
    let p = image::prepare(&config, BaseSupport::default())?;
    let base = base_support(&config, ui, runtime);
    let p = p.with_base(base)?;
    let image = match repo {
        Some(r) => {
            validate::check_image_ref(r).map_err(|m| anyhow::anyhow!("invalid --image: {m}"))?;
            format!("{r}:{}", p.short())
        }
        None => p.tag(),
    };
    let mut opts = k8s::K8sOptions::new(&config.name, image, &p.fingerprint);
    opts.replicas = config.replicas;
    opts.host = config.ingress_host.clone();
    opts.namespace = config.namespace.clone();
    let manifests = k8s::render(&opts, &config.project_dir.join(k8s::OVERRIDE_DIR))?;
    match out {
        Some(dir) => {
            let written = k8s::write_all(&manifests, dir)?;
            ui.result(format!(
                "wrote {}",
                written
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        None => {
            for (name, yaml) in &manifests {
                println!("---\n# {name}\n{}", yaml.trim_end());
            }
        }
    }
    Ok(())
}
