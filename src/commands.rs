//! One function per subcommand: load the config, run the stages, print the result.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::cli::{BuildArgs, Cli, Command, UpArgs};
use crate::config::{Config, Overrides};
use crate::deploy::{self, UpOutcome};
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
        Command::Up(args) => runtime.block_on(up_cmd(&cli.dir, &args, &ui)),
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
    match deploy::up(&engine, &p, ui).await? {
        UpOutcome::Unchanged { container } => ui.result(format!(
            "✔ {} already live at {} ({container}); nothing changed",
            p.short(),
            config.url()
        )),
        UpOutcome::Started {
            container,
            replaced,
            took,
        } => {
            let replaced = if replaced.is_empty() {
                String::new()
            } else {
                format!(", replaced {}", replaced.join(", "))
            };
            ui.result(format!(
                "✔ {} live at {} ({container}, healthy in {:.1} s{replaced})",
                p.short(),
                config.url(),
                took.as_secs_f64()
            ));
        }
    }
    Ok(())
}

async fn status_cmd(dir: &std::path::Path, ui: &Ui) -> Result<()> {
    let config = load(dir, &BuildArgs::default(), None)?;
    let engine = Engine::connect().await?;
    let containers = deploy::site_containers(&engine, &config.name).await?;
    let current = image::prepare(&config).map(|p| p.fingerprint);
    ui.result(format!(
        "project   {} (engine {})",
        config.name,
        engine.host()
    ));
    if containers.is_empty() {
        ui.result("nothing runs for this project (start it with `sitebuild up`)");
    }
    for c in &containers {
        let fp = c.label(labels::FINGERPRINT).unwrap_or("?");
        let address = c.label(labels::ADDRESS).unwrap_or("?");
        ui.result(format!(
            "container {} ({})",
            c.name,
            &c.id[..12.min(c.id.len())]
        ));
        ui.result(format!(
            "  image       {} (fingerprint {})",
            c.image,
            site::short(fp)
        ));
        ui.result(format!(
            "  state       {} since {}",
            c.state,
            c.started_at.as_deref().unwrap_or("?")
        ));
        if let Ok(addr) = address.parse::<std::net::SocketAddr>() {
            let probe_addr = if addr.ip().is_unspecified() {
                std::net::SocketAddr::from(([127, 0, 0, 1], addr.port()))
            } else {
                addr
            };
            let health = if c.is_running() {
                match deploy::probe(probe_addr, Duration::from_secs(2)).await {
                    Ok(_) => "healthy (/healthz 200)".to_string(),
                    Err(e) => format!("unhealthy: {e:#}"),
                }
            } else {
                "not running".to_string()
            };
            ui.result(format!("  url         http://{addr}/"));
            ui.result(format!("  health      {health}"));
        }
        match &current {
            Ok(now) if now == fp => ui.result("  content     up to date with the project"),
            Ok(now) => ui.result(format!(
                "  content     the project now has {} (run `sitebuild up`)",
                site::short(now)
            )),
            Err(e) => ui.result(format!("  content     the project does not build: {e:#}")),
        }
    }
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
    let mut removed_images = 0;
    if images {
        for img in engine
            .images_with_labels(&[(labels::PROJECT, &config.name)])
            .await?
        {
            engine.remove_image(&img.id).await?;
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
