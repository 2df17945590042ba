//! One function per subcommand: load the config, run the stages, print the result.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::cli::{BuildArgs, Cli, Command, UpArgs};
use crate::config::{Config, Overrides};
use crate::deploy::{self, Outcome, Release};
use crate::engine::{Engine, labels};
use crate::image::{self, BuildOutcome, Prepared};
use crate::render;
use crate::site;
use crate::ui::Ui;

/// Run the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    let ui = Ui::new(cli.quiet, cli.verbose);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match cli.command {
        Command::Render { out } => render_cmd(&cli.dir, out.as_deref(), &ui),
        Command::Build(args) => runtime.block_on(build_cmd(&cli.dir, &args, &ui)),
        Command::Up(args) | Command::Deploy(args) => runtime.block_on(up_cmd(&cli.dir, &args, &ui)),
        Command::Rollback { fingerprint, args } => {
            runtime.block_on(rollback_cmd(&cli.dir, fingerprint.as_deref(), &args, &ui))
        }
        Command::Status => runtime.block_on(status_cmd(&cli.dir, &ui)),
        Command::Down { images } => runtime.block_on(down_cmd(&cli.dir, images, &ui)),
    }
}

fn load(dir: &std::path::Path, build: &BuildArgs, up: Option<&UpArgs>) -> Result<Config> {
    Config::load(
        dir,
        &Overrides {
            port: up.and_then(|u| u.port.clone()),
            bind: up.and_then(|u| u.bind.clone()),
            base_image: build.base_image.clone(),
        },
    )
}

fn render_cmd(dir: &std::path::Path, out: Option<&std::path::Path>, ui: &Ui) -> Result<()> {
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

async fn build_cmd(dir: &std::path::Path, args: &BuildArgs, ui: &Ui) -> Result<()> {
    let config = load(dir, args, None)?;
    let p = image::prepare(&config)?;
    let (_, outcome) = build_image(&p, ui).await?;
    ui.result(describe_build(&p, &outcome));
    Ok(())
}

async fn up_cmd(dir: &std::path::Path, args: &UpArgs, ui: &Ui) -> Result<()> {
    let config = load(dir, &args.build, Some(args))?;
    let p = image::prepare(&config)?;
    let (engine, outcome) = build_image(&p, ui).await?;
    if matches!(outcome, BuildOutcome::Built { .. }) {
        ui.step(describe_build(&p, &outcome));
    }
    let result = deploy::deploy(&engine, &config, &Release::from(&p), ui).await?;
    report(&config, &Release::from(&p), &result, ui);
    Ok(())
}

async fn rollback_cmd(
    dir: &std::path::Path,
    fingerprint: Option<&str>,
    args: &UpArgs,
    ui: &Ui,
) -> Result<()> {
    let config = load(dir, &args.build, Some(args))?;
    let engine = Engine::connect().await?;
    let result = deploy::rollback(&engine, &config, fingerprint, ui).await?;
    let short = match &result {
        Outcome::Unchanged { container } | Outcome::Deployed { container, .. } => container.clone(),
    };
    ui.result(format!("rolled back: {short} serves {}", config.url()));
    Ok(())
}

fn report(config: &Config, release: &Release, outcome: &Outcome, ui: &Ui) {
    match outcome {
        Outcome::Unchanged { container } => ui.result(format!(
            "✔ {} already live at {} ({container}); nothing changed",
            release.short(),
            config.url()
        )),
        Outcome::Deployed {
            container,
            replaced,
            took,
        } => {
            let replaced = replaced
                .as_ref()
                .map(|r| format!(", replaced {r}"))
                .unwrap_or_default();
            ui.result(format!(
                "✔ {} live at {} ({container}, deployed in {:.1} s{replaced})",
                release.short(),
                config.url(),
                took.as_secs_f64()
            ));
        }
    }
}

async fn status_cmd(dir: &std::path::Path, ui: &Ui) -> Result<()> {
    let config = load(dir, &BuildArgs::default(), None)?;
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
    if all.is_empty() {
        ui.result("nothing runs for this project (start it with `sitebuild up`)");
        return Ok(());
    }
    let edge = all
        .iter()
        .find(|c| c.label(labels::ROLE) == Some(deploy::edge::ROLE_EDGE));
    let mut live_name = None;
    if let Some(e) = edge {
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
            probe: config.probe_addr(),
        };
        if let Some(live) = deploy::edge::read_live(&engine, &handle).await? {
            let health = if address == deploy::address_of(&config) {
                match deploy::probe(config.probe_addr(), "/healthz", Duration::from_secs(2)).await {
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

async fn down_cmd(dir: &std::path::Path, images: bool, ui: &Ui) -> Result<()> {
    let config = load(dir, &BuildArgs::default(), None)?;
    let engine = Engine::connect().await?;
    let containers = engine
        .containers_with_labels(&[(labels::PROJECT, &config.name)])
        .await?;
    for c in &containers {
        engine.remove(&c.id).await?;
        ui.step(format!("removed container {}", c.name));
    }
    if engine
        .remove_network(&deploy::network_name(&config.name))
        .await?
    {
        ui.step(format!(
            "removed network {}",
            deploy::network_name(&config.name)
        ));
    }
    if engine
        .remove_volume(&deploy::volume_name(&config.name))
        .await?
    {
        ui.step(format!(
            "removed volume {}",
            deploy::volume_name(&config.name)
        ));
    }
    let mut removed_images = 0;
    if images {
        for img in engine
            .images_with_labels(&[(labels::PROJECT, &config.name)])
            .await?
        {
            engine.remove_image(&img.id, true).await?;
            removed_images += 1;
        }
    }
    ui.result(format!(
        "{}: removed {} container(s){}",
        config.name,
        containers.len(),
        if images {
            format!(" and {removed_images} image(s)")
        } else {
            String::new()
        }
    ));
    Ok(())
}
