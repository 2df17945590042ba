//! `sitebuild up`, `deploy` and `rollback`: the health-gated swap, on the configured target.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;

use super::build::{build_image, describe_build};
use super::load;
use crate::cli::UpArgs;
use crate::config::Config;
use crate::config::validate::check_image_ref;
use crate::deploy::{self, Outcome, Release};
use crate::engine::Engine;
use crate::image::BuildOutcome;
use crate::naming::labels;
use crate::registry;
use crate::report::{Report, Sink};
use crate::site;
use crate::ui::Ui;

pub(super) async fn up(dir: &Path, args: &UpArgs, ui: &Ui, sink: &Sink) -> Result<()> {
    let config = load(dir, &args.build, Some(args))?;
    let (engine, p, outcome) = build_image(&config, ui).await?;
    if matches!(outcome, BuildOutcome::Built { .. }) {
        ui.step(describe_build(&p, &outcome));
    }
    let release = Release::from(&p);
    let config = deploy::preview::prepare(&engine, &config).await?;
    let result = deploy::deploy_to(&engine, &config, &release, ui).await?;
    deploy::preview::remove_stale(&engine, &config, ui).await;
    sink.emit(&deploy_report(&config, &release, &result), ui)
}

/// `sitebuild deploy --image REF`: pull an image sitebuild built (elsewhere), tag it
/// `<name>:<short fingerprint>` and deploy it like a local build.
pub(super) async fn image(
    dir: &Path,
    reference: &str,
    args: &UpArgs,
    ui: &Ui,
    sink: &Sink,
) -> Result<()> {
    let config = load(dir, &args.build, Some(args))?;
    check_image_ref(reference).map_err(|m| anyhow!("--image: {m}"))?;
    if !reference.contains('@')
        && !reference
            .rsplit('/')
            .next()
            .is_some_and(|r| r.contains(':'))
    {
        bail!(
            "--image {reference}: name the exact artifact, REPO@sha256:<digest> or REPO:<fingerprint> \
             (the tag `sitebuild push` writes), not a moving tag like latest"
        );
    }
    let engine = Engine::connect().await?;
    // The reference names one artifact (a digest, or the fingerprint tag): when the engine has
    // it already, that is the image; deploying it again needs no registry.
    if engine.image(reference).await?.is_none() {
        ui.step(format!("pulling {reference}"));
        registry::pull(&engine, reference).await?;
    }
    let info = engine
        .image(reference)
        .await?
        .with_context(|| format!("{reference} is not on the engine after the pull"))?;
    let Some(fingerprint) = info.labels.get(labels::FINGERPRINT).cloned() else {
        bail!(
            "{reference} has no {} label: it was not built by sitebuild. Deploy an image that \
             `sitebuild build` or `sitebuild push` made (REPO:<fingerprint> or REPO@sha256:…)",
            labels::FINGERPRINT
        );
    };
    if let Some((_, tag)) = reference
        .rsplit_once(':')
        .filter(|_| !reference.contains('@'))
        && tag.chars().all(|c| c.is_ascii_hexdigit())
        && tag.len() >= 4
        && !fingerprint.starts_with(tag)
    {
        bail!("{reference}: the tag says fingerprint {tag}, the image's label says {fingerprint}");
    }
    if let Some(project) = info.labels.get(labels::PROJECT)
        && project != config.image_repo()
    {
        bail!(
            "{reference} was built for project {project:?}, this is {:?} (name in sitebuild.toml): \
             deploy it from that project's directory, or set the same name",
            config.image_repo()
        );
    }
    let release = Release {
        image: format!("{}:{}", config.image_repo(), site::short(&fingerprint)),
        fingerprint,
    };
    engine
        .tag(reference, config.image_repo(), release.short())
        .await?;
    let config = deploy::preview::prepare(&engine, &config).await?;
    let result = deploy::deploy_to(&engine, &config, &release, ui).await?;
    deploy::preview::remove_stale(&engine, &config, ui).await;
    sink.emit(&deploy_report(&config, &release, &result), ui)
}

pub(super) async fn rollback(
    dir: &Path,
    fingerprint: Option<&str>,
    args: &UpArgs,
    ui: &Ui,
    sink: &Sink,
) -> Result<()> {
    let config = load(dir, &args.build, Some(args))?;
    if let Some(p) = &config.preview {
        bail!(
            "--preview {}: a preview has no rollback; deploy it again with the content you want",
            p.label
        );
    }
    let engine = Engine::connect().await?;
    let (release, result) = deploy::rollback(&engine, &config, fingerprint, ui).await?;
    let mut report = deploy_report(&config, &release, &result);
    report.title = "sitebuild rollback".into();
    sink.emit(&report, ui)
}

fn deploy_report(config: &Config, release: &Release, outcome: &Outcome) -> Report {
    let (container, deployed, replaced, human) = match outcome {
        Outcome::Unchanged { container } => (
            container.clone(),
            false,
            None,
            format!(
                "✔ {} already live at {} ({container}); nothing changed",
                release.short(),
                config.url()
            ),
        ),
        Outcome::Deployed {
            container,
            replaced,
            took,
        } => (
            container.clone(),
            true,
            replaced.clone(),
            format!(
                "✔ {} live at {} ({container}, deployed in {:.1} s{})",
                release.short(),
                config.url(),
                took.as_secs_f64(),
                replaced
                    .as_ref()
                    .map(|r| format!(", replaced {r}"))
                    .unwrap_or_default()
            ),
        ),
    };
    Report {
        title: "sitebuild deploy".into(),
        human,
        fields: vec![
            ("url", json!(config.url())),
            ("image", json!(release.image)),
            ("fingerprint", json!(release.fingerprint)),
            ("container", json!(container)),
            ("deployed", json!(deployed)),
            ("replaced", json!(replaced.unwrap_or_default())),
            (
                "preview",
                json!(
                    config
                        .preview
                        .as_ref()
                        .map(|p| p.label.clone())
                        .unwrap_or_default()
                ),
            ),
        ],
    }
}
