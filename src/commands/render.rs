//! `sitebuild render`: the nginx config (or, with `--k8s`, Kubernetes manifests).

use std::path::Path;

use anyhow::{Context, Result};

use super::load;
use crate::cli::BuildArgs;
use crate::config::validate;
use crate::image;
use crate::k8s;
use crate::site;
use crate::ui::Ui;

pub(super) fn nginx(dir: &Path, out: Option<&Path>, ui: &Ui) -> Result<()> {
    let config = load(dir, &BuildArgs::default(), None)?;
    // The 404 pages are looked up so the rendered config is the one `build` would use; a
    // missing site directory is fine here (render shows the config, build checks the site).
    let not_found_pages = match site::scan(&config.site_dir) {
        Ok(s) => s.not_found_pages(),
        Err(_) if config.site_dir.join("404.html").is_file() => vec!["404.html".to_string()],
        Err(_) => Vec::new(),
    };
    let conf = image::render_nginx(&config, &not_found_pages)?;
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
pub(super) fn k8s(dir: &Path, out: Option<&Path>, repo: Option<&str>, ui: &Ui) -> Result<()> {
    let config = load(dir, &BuildArgs::default(), None)?;
    let p = image::prepare(&config)?;
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
