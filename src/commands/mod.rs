//! One file per subcommand: load the config, run the stages, print the result. This file
//! only dispatches and turns flags into config overrides.

mod build;
mod changed;
mod deploy;
mod down;
mod help;
mod init;
mod maintenance;
mod push;
mod render;
mod renew;
mod status;

use std::path::Path;

use anyhow::{Context, Result};

use crate::cli::{BuildArgs, Cli, Command, UpArgs};
use crate::config::{Config, Overrides};
use crate::report::Sink;
use crate::ui::Ui;

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
    let done = |r: Result<()>| r.map(|()| 0);
    match cli.command {
        Command::Render {
            out,
            k8s: true,
            image,
        } => done(render::k8s(
            dir,
            out.as_deref(),
            image.as_deref(),
            &ui,
            &runtime,
        )),
        Command::Render { out, .. } => done(render::nginx(dir, out.as_deref(), &ui, &runtime)),
        Command::Build(args) => done(runtime.block_on(build::run(dir, &args, &ui, &sink))),
        Command::Up(args) | Command::Deploy { args, image: None } => {
            done(runtime.block_on(deploy::up(dir, &args, &ui, &sink)))
        }
        Command::Deploy {
            args,
            image: Some(image),
        } => done(runtime.block_on(deploy::image(dir, &image, &args, &ui, &sink))),
        Command::Rollback { fingerprint, args } => done(runtime.block_on(deploy::rollback(
            dir,
            fingerprint.as_deref(),
            &args,
            &ui,
            &sink,
        ))),
        Command::Watch { args, rm } => done(runtime.block_on(crate::watch::run(
            dir,
            overrides(&args.build, Some(&args)),
            rm,
            ui,
        ))),
        Command::Changed { since } => changed::run(dir, since.as_deref(), &ui, &sink),
        Command::Push { to, tags, build } => {
            done(runtime.block_on(push::run(dir, &to, &tags, &build, &ui, &sink)))
        }
        Command::Status { target } => done(runtime.block_on(status::run(dir, target, &ui))),
        Command::Down { images, preview } => {
            done(runtime.block_on(down::run(dir, images, preview, &ui)))
        }
        Command::Renew { force } => done(runtime.block_on(renew::run(dir, force, &ui))),
        Command::Renewer { interval, force } => done(runtime.block_on(renew::daemon(
            dir,
            std::time::Duration::from_secs(interval.max(1)),
            force,
        ))),
        Command::Maintenance { state, message } => done(runtime.block_on(maintenance::run(
            dir,
            state == crate::cli::OnOff::On,
            message.as_deref(),
            &ui,
        ))),
        Command::Init { ci, force } => done(init::run(dir, ci, force, &ui, &sink)),
        Command::Completions { shell } => done(help::completions(shell)),
        Command::Man => done(help::man()),
    }
}

/// Flags that override settings, by the key names of `config::keys`.
fn overrides(build: &BuildArgs, up: Option<&UpArgs>) -> Overrides {
    let mut o = Overrides::default();
    o.set("base_image", build.base_image.clone())
        .set("no_cache", build.no_cache.then_some(true));
    if let Some(up) = up {
        o.set("port", up.port)
            .set("bind", up.bind)
            .set("target", up.target)
            .set("replicas", up.replicas)
            .set("http_port", up.http_port)
            .set("https_port", up.https_port)
            .set("preview", up.preview.clone());
    }
    o
}

fn load(dir: &Path, build: &BuildArgs, up: Option<&UpArgs>) -> Result<Config> {
    Config::load(dir, &overrides(build, up))
}
