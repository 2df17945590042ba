//! One function per subcommand: load the config, run the stages, print the result.

use std::time::Duration;

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::changed;
use crate::cli::{BuildArgs, Cli, Command, UpArgs};
use crate::config::{Config, Overrides};
use crate::deploy::{self, Outcome, Release};
use crate::engine::{Engine, labels};
use crate::image::{self, BuildOutcome, Prepared};
use crate::registry;
use crate::render;
use crate::report::{Report, Sink};
use crate::site;
use crate::ui::Ui;

/// Exit code of `sitebuild changed` when nothing that affects the site changed.
pub const EXIT_NO_CHANGE: u8 = 3;

/// Run the parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> Result<u8> {
    let ui = Ui::new(cli.quiet, cli.verbose);
    let sink = Sink {
        json: cli.json,
        dotenv: cli.dotenv.clone(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let dir = cli.dir.as_path();
    match cli.command {
        Command::Render {
            out,
            k8s: true,
            image,
        } => k8s_cmd(dir, out.as_deref(), image.as_deref(), &ui).map(|_| 0),
        Command::Render { out, .. } => render_cmd(dir, out.as_deref(), &ui).map(|_| 0),
        Command::Build(args) => runtime
            .block_on(build_cmd(dir, &args, &ui, &sink))
            .map(|_| 0),
        Command::Up(args) | Command::Deploy(args) => {
            runtime.block_on(up_cmd(dir, &args, &ui, &sink)).map(|_| 0)
        }
        Command::Rollback { fingerprint, args } => runtime
            .block_on(rollback_cmd(dir, fingerprint.as_deref(), &args, &ui, &sink))
            .map(|_| 0),
        Command::Watch { args, rm } => runtime
            .block_on(crate::watch::run(
                dir,
                overrides(&args.build, Some(&args)),
                rm,
                ui,
            ))
            .map(|_| 0),
        Command::Changed { since } => changed_cmd(dir, since.as_deref(), &ui, &sink),
        Command::Push { to, tags, build } => runtime
            .block_on(push_cmd(dir, &to, &tags, &build, &ui, &sink))
            .map(|_| 0),
        Command::Status { target } => runtime.block_on(status_cmd(dir, target, &ui)).map(|_| 0),
        Command::Down { images } => runtime.block_on(down_cmd(dir, images, &ui)).map(|_| 0),
    }
}

fn overrides(build: &BuildArgs, up: Option<&UpArgs>) -> Overrides {
    Overrides {
        port: up.and_then(|u| u.port.clone()),
        bind: up.and_then(|u| u.bind.clone()),
        base_image: build.base_image.clone(),
        target: up.and_then(|u| u.target.clone()),
        replicas: up.and_then(|u| u.replicas.clone()),
    }
}

fn load(dir: &Path, build: &BuildArgs, up: Option<&UpArgs>) -> Result<Config> {
    Config::load(dir, &overrides(build, up))
}

fn render_cmd(dir: &Path, out: Option<&Path>, ui: &Ui) -> Result<()> {
    let config = load(dir, &BuildArgs::default(), None)?;
    // 404.html is looked up so the rendered config is the one `build` would use; a missing
    // site directory is fine here (render shows the config, build checks the site).
    let has_404 = config.site_dir.join("404.html").is_file();
    let conf = render::render_for(&config, has_404)?;
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
fn k8s_cmd(dir: &Path, out: Option<&Path>, repo: Option<&str>, ui: &Ui) -> Result<()> {
    let config = load(dir, &BuildArgs::default(), None)?;
    let p = image::prepare(&config)?;
    let image = match repo {
        Some(r) => {
            crate::config::check_image_ref(r)
                .map_err(|m| anyhow::anyhow!("invalid --image: {m}"))?;
            format!("{r}:{}", p.short())
        }
        None => p.tag(),
    };
    let mut opts = crate::k8s::K8sOptions::new(&config.name, image, &p.fingerprint);
    opts.replicas = config.replicas;
    opts.host = config.ingress_host.clone();
    opts.namespace = config.namespace.clone();
    let manifests = crate::k8s::render(&opts, &config.project_dir.join(crate::k8s::OVERRIDE_DIR))?;
    match out {
        Some(dir) => {
            let written = crate::k8s::write_all(&manifests, dir)?;
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

async fn build_image(p: &Prepared, ui: &Ui) -> Result<(Engine, BuildOutcome)> {
    let engine = Engine::connect().await?;
    let outcome = image::ensure_image(&engine, p, ui).await?;
    Ok((engine, outcome))
}

fn describe_build(p: &Prepared, outcome: &BuildOutcome) -> String {
    match outcome {
        BuildOutcome::Reused { .. } => {
            format!(
                "{} is up to date (fingerprint {}): nothing to build",
                p.tag(),
                p.short()
            )
        }
        BuildOutcome::Built { took, summary, .. } => format!(
            "built {} in {:.1} s ({} files, {} precompressed)",
            p.tag(),
            took.as_secs_f64(),
            summary.files,
            summary.gz_files
        ),
    }
}

fn build_report(p: &Prepared, outcome: &BuildOutcome) -> Report {
    Report {
        title: "sitebuild build".into(),
        human: describe_build(p, outcome),
        fields: vec![
            ("image", json!(p.tag())),
            ("fingerprint", json!(p.fingerprint)),
            ("short", json!(p.short())),
            ("image_id", json!(outcome.image_id())),
            (
                "built",
                json!(matches!(outcome, BuildOutcome::Built { .. })),
            ),
            ("file_count", json!(p.site.files.len())),
        ],
    }
}

async fn build_cmd(dir: &Path, args: &BuildArgs, ui: &Ui, sink: &Sink) -> Result<()> {
    let config = load(dir, args, None)?;
    let p = image::prepare(&config)?;
    let (_, outcome) = build_image(&p, ui).await?;
    sink.emit(&build_report(&p, &outcome), ui)
}

async fn up_cmd(dir: &Path, args: &UpArgs, ui: &Ui, sink: &Sink) -> Result<()> {
    let config = load(dir, &args.build, Some(args))?;
    let p = image::prepare(&config)?;
    let (engine, outcome) = build_image(&p, ui).await?;
    if matches!(outcome, BuildOutcome::Built { .. }) {
        ui.step(describe_build(&p, &outcome));
    }
    let release = Release::from(&p);
    let result = deploy::deploy_to(&engine, &config, &release, ui).await?;
    sink.emit(&deploy_report(&config, &release, &result), ui)
}

async fn rollback_cmd(
    dir: &Path,
    fingerprint: Option<&str>,
    args: &UpArgs,
    ui: &Ui,
    sink: &Sink,
) -> Result<()> {
    let config = load(dir, &args.build, Some(args))?;
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
        ],
    }
}

fn changed_cmd(dir: &Path, since: Option<&str>, ui: &Ui, sink: &Sink) -> Result<u8> {
    let config = load(dir, &BuildArgs::default(), None)?;
    let change = changed::changed_since(&config, since)?;
    if let Some(reason) = &change.reason {
        ui.step(format!("note: {reason}"));
    }
    sink.emit(
        &Report {
            title: "sitebuild changed".into(),
            human: change.describe(),
            fields: vec![
                ("changed", json!(change.changed)),
                ("since", json!(change.since)),
                ("files", json!(change.relevant)),
                ("other_files", json!(change.ignored)),
                ("reason", json!(change.reason.clone().unwrap_or_default())),
            ],
        },
        ui,
    )?;
    Ok(if change.changed { 0 } else { EXIT_NO_CHANGE })
}

/// A tag as the registry accepts it.
fn check_tag(tag: &str) -> Result<()> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !ok {
        bail!("invalid --tag {tag:?}: use up to 128 letters, digits, '_', '.', '-' (not first)");
    }
    Ok(())
}

async fn push_cmd(
    dir: &Path,
    to: &str,
    tags: &[String],
    args: &BuildArgs,
    ui: &Ui,
    sink: &Sink,
) -> Result<()> {
    if let Err(m) = crate::config::check_image_ref(to) {
        bail!("invalid --to: {m}");
    }
    if to.rsplit('/').next().is_some_and(|last| last.contains(':')) || to != to.to_ascii_lowercase()
    {
        bail!("invalid --to {to:?}: give a lowercase repository without a tag (tags go in --tag)");
    }
    for t in tags {
        check_tag(t)?;
    }
    let config = load(dir, args, None)?;
    let p = image::prepare(&config)?;
    let (engine, outcome) = build_image(&p, ui).await?;
    if matches!(outcome, BuildOutcome::Built { .. }) {
        ui.step(describe_build(&p, &outcome));
    }
    let creds = registry::credentials_for(&registry::registry_of(to))?;
    let mut all_tags = vec![p.short().to_string()];
    all_tags.extend(tags.iter().cloned());
    all_tags.dedup();
    let mut pushed = Vec::new();
    for tag in &all_tags {
        ui.step(format!("pushing {to}:{tag}"));
        registry::push(&engine, outcome.image_id(), to, tag, creds.as_ref()).await?;
        pushed.push(format!("{to}:{tag}"));
    }
    sink.emit(
        &Report {
            title: "sitebuild push".into(),
            human: format!("pushed {}", pushed.join(", ")),
            fields: vec![
                ("image", json!(format!("{to}:{}", p.short()))),
                ("fingerprint", json!(p.fingerprint)),
                ("tags", json!(pushed)),
                ("registry", json!(registry::registry_of(to))),
            ],
        },
        ui,
    )
}

async fn status_cmd(dir: &Path, target: Option<String>, ui: &Ui) -> Result<()> {
    let config = load(
        dir,
        &BuildArgs::default(),
        Some(&UpArgs {
            target,
            ..Default::default()
        }),
    )?;
    let engine = Engine::connect().await?;
    let all = engine
        .containers_with_labels(&[(labels::PROJECT, &config.name)])
        .await?;
    let current = image::prepare(&config).map(|p| p.fingerprint);
    ui.result(format!(
        "project    {} (engine {})",
        config.name,
        engine.host()
    ));
    if config.target == crate::config::Target::Swarm {
        for line in deploy::swarm::status(&engine, &config).await? {
            ui.result(line);
        }
        return Ok(());
    }
    if all.is_empty() {
        ui.result("nothing runs for this project (start it with `sitebuild up`)");
        return Ok(());
    }
    let edge = all
        .iter()
        .find(|c| c.label(labels::ROLE) == Some(deploy::edge::ROLE_EDGE));
    let mut live_name = None;
    if let Some(e) = edge {
        let e = &engine.container(&e.id).await?;
        let address = e.label(labels::ADDRESS).unwrap_or("?");
        ui.result(format!(
            "edge       {} ({}) on http://{address}/ since {}",
            e.name,
            e.state,
            e.started_at.as_deref().unwrap_or("?")
        ));
        let handle = deploy::edge::Edge {
            id: e.id.clone(),
            name: e.name.clone(),
            probe: config.probe_addr()?,
            livereload: None,
        };
        if let Some(live) = deploy::edge::read_live(&engine, &handle).await? {
            let health = if address == deploy::address_of(&config) {
                match deploy::probe(config.probe_addr()?, "/healthz", Duration::from_secs(2)).await
                {
                    Ok(_) => "healthy (/healthz 200)".to_string(),
                    Err(e) => format!("unhealthy: {e:#}"),
                }
            } else {
                format!(
                    "not probed (the edge is on {address}, the config says {})",
                    deploy::address_of(&config)
                )
            };
            ui.result(format!(
                "live       {} (fingerprint {})",
                live.container,
                site::short(&live.fingerprint)
            ));
            ui.result(format!("health     {health}"));
            match &current {
                Ok(now) if *now == live.fingerprint => {
                    ui.result("content    up to date with the project")
                }
                Ok(now) => ui.result(format!(
                    "content    the project now has {} (run `sitebuild deploy`)",
                    site::short(now)
                )),
                Err(e) => ui.result(format!("content    the project does not build: {e:#}")),
            }
            live_name = Some(live.container);
        } else {
            ui.result("live       none yet");
        }
    }
    for c in &all {
        let role = c.label(labels::ROLE).unwrap_or("?");
        if role == deploy::edge::ROLE_EDGE || Some(&c.name) == live_name.as_ref() {
            if Some(&c.name) == live_name.as_ref() {
                let c = engine.container(&c.id).await?;
                ui.result(format!(
                    "           {} {} since {}",
                    c.name,
                    c.state,
                    c.started_at.as_deref().unwrap_or("?")
                ));
            }
            continue;
        }
        let what = match role {
            deploy::lock::ROLE_LOCK => format!(
                "deploy lock held by {}",
                c.label(labels::HOLDER).unwrap_or("?")
            ),
            _ => "leftover (removed by the next deploy)".to_string(),
        };
        ui.result(format!(
            "other      {} ({}, {}): {what}",
            c.name, role, c.state
        ));
    }
    let images = deploy::project_images(&engine, &config.name).await?;
    let kept: Vec<String> = images
        .iter()
        .filter_map(|i| i.labels.get(labels::FINGERPRINT))
        .map(|f| site::short(f).to_string())
        .collect();
    ui.result(format!(
        "images     {} kept for rollback: {}",
        kept.len(),
        kept.join(", ")
    ));
    Ok(())
}

async fn down_cmd(dir: &Path, images: bool, ui: &Ui) -> Result<()> {
    let config = load(dir, &BuildArgs::default(), None)?;
    let engine = Engine::connect().await?;
    let line = deploy::down(&engine, &config, images, ui).await?;
    ui.result(line);
    Ok(())
}
