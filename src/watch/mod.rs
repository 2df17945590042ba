//! `sitebuild watch`: redeploy on every change, with live reload in the browser.
//!
//! - Watches `site/`, the template directory and `sitebuild.toml` (notify, debounced): one
//!   update per burst of changes; events that arrive during an update make exactly one
//!   follow-up update. Dotfiles and ignored paths trigger nothing.
//! - **Fast path** (`sync`): only site files were added or changed → the same tar entries the
//!   image build would write (bytes, mode, mtime, `.gz`/`.br` siblings: [`context::append_site`]) are
//!   copied into the live dev container's site volume, and that is all: the container runs the
//!   image with nginx.conf rendered with `dev` (no `open_file_cache`), so nginx serves the new
//!   bytes at once (an override template that still caches descriptors gets a reload and the
//!   wait for old workers). Everything else (templates, config, deleted files) takes the **rebuild**
//!   path: a real image and the health-gated swap of `deploy`.
//! - **CSS hot-swap**: when a fast-path update changed only `.css` files, open tabs are told to
//!   swap those stylesheets (cache-busting query; the old `<link>` goes once the new one
//!   loaded) instead of reloading: scroll position and page state survive. Anything else
//!   reloads the tabs.
//! - Errors (template, config, `_redirects`/`_headers`, missing index.html, engine down) are
//!   printed and the loop goes on; the last good version stays live. The next good state always
//!   prints one line, `✔ <fp> live again (nothing to rebuild)` when it is the live one.
//! - `_redirects` and `_headers` are config: a change to either takes the rebuild path.

mod livereload;
mod sync;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use notify::RecursiveMode;
use tokio::sync::mpsc;

use crate::config::{Config, Overrides};
use crate::deploy::{self, DeployOptions, Outcome, Release};
use crate::engine::Engine;
use crate::image::{self, Prepared};
use crate::layout::SITE_ROOT;
use crate::naming::{self, Labels, roles};
use crate::site;
use crate::ui::{Phases, Ui};
use livereload::LiveReload;
use sync::{LivePath, caches_descriptors, can_sync, delta, is_relevant, sync_tar};

/// Quiet time that ends a burst of file events (an editor's save, a generator's output: their
/// writes come well within it). Events during an update still make one follow-up update.
const DEBOUNCE: Duration = Duration::from_millis(20);

/// The watch session.
struct Session {
    engine: Engine,
    dir: PathBuf,
    overrides: Overrides,
    ui: Ui,
    livereload: Option<LiveReload>,
    /// The version live now and the container serving it.
    last: Option<(Prepared, String)>,
    /// The live container's nginx caches descriptors (an override template without `dev`):
    /// a sync must reload it.
    reload_on_sync: bool,
    generation: u64,
    /// The last update failed: the next good state says so ("live again").
    failed: bool,
}

/// Run `sitebuild watch` until Ctrl-C.
pub(crate) async fn run(
    dir: &Path,
    overrides: Overrides,
    remove_on_exit: bool,
    ui: Ui,
) -> Result<()> {
    let cfg = Config::load(dir, &overrides)?;
    deploy::require_local(&cfg, "watch")?;
    if let Some(p) = &cfg.preview {
        anyhow::bail!(
            "preview {} (from {}): watch serves the working copy on `port`; previews are made \
             with `sitebuild deploy --preview NAME`",
            p.label,
            cfg.origin_of("preview")
        );
    }
    let engine = connect_retrying(&ui).await;
    engine
        .ensure_network(
            &naming::network(&cfg.name),
            &Labels::project(&cfg.name).role(roles::NETWORK).build(),
        )
        .await?;
    let livereload = match engine.network_gateway(&naming::network(&cfg.name)).await {
        Ok(Some(ip)) if crate::engine::remote_host().is_none() => {
            match LiveReload::start(ip).await {
                Ok(lr) => Some(lr),
                Err(e) => {
                    ui.step(format!("live reload is off: {e:#}"));
                    None
                }
            }
        }
        _ => {
            ui.step("live reload is off (the engine is remote, or the network has no gateway)");
            None
        }
    };

    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<PathBuf>>();
    let mut debouncer = notify_debouncer_full::new_debouncer(
        DEBOUNCE,
        None,
        move |res: notify_debouncer_full::DebounceEventResult| {
            if let Ok(events) = res {
                // Reads (sitebuild's own scan opens every file) are not changes.
                let paths: Vec<PathBuf> = events
                    .into_iter()
                    .filter(|e| !matches!(e.event.kind, notify::EventKind::Access(_)))
                    .flat_map(|e| e.event.paths)
                    .collect();
                if !paths.is_empty() {
                    let _ = tx.send(paths);
                }
            }
        },
    )
    .context("cannot start the file watcher")?;
    let mut watched: BTreeSet<PathBuf> = BTreeSet::new();
    // Returns true when a directory is newly watched (created after the start): its files may
    // have been written before the watch existed, so the caller rescans.
    let mut watch_dirs = |cfg: &Config, debouncer: &mut notify_debouncer_full::Debouncer<_, _>| {
        let mut added = false;
        for (path, mode) in [
            (cfg.project_dir.clone(), RecursiveMode::NonRecursive),
            (cfg.site_dir.clone(), RecursiveMode::Recursive),
            (cfg.templates_dir.clone(), RecursiveMode::Recursive),
        ] {
            if path.is_dir() && !watched.contains(&path) && debouncer.watch(&path, mode).is_ok() {
                watched.insert(path);
                added = true;
            }
        }
        added
    };
    watch_dirs(&cfg, &mut debouncer);

    let mut session = Session {
        engine,
        dir: dir.to_path_buf(),
        overrides,
        ui,
        livereload,
        last: None,
        reload_on_sync: true,
        generation: 0,
        failed: false,
    };
    let url = cfg.url();
    session.ui.step(format!(
        "watching {} for changes; the site is at {url} (Ctrl-C stops)",
        cfg.project_dir.display()
    ));
    // Registered once: a Ctrl-C that arrives during an update is kept and ends the loop after it.
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigint = signal(SignalKind::interrupt()).context("cannot handle Ctrl-C")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    session.update(true).await;

    loop {
        tokio::select! {
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            batch = rx.recv() => {
                let Some(mut paths) = batch else { break };
                // Everything that arrived meanwhile (including during the last update) makes
                // one follow-up update, not one per event.
                while let Ok(more) = rx.try_recv() {
                    paths.extend(more);
                }
                let Ok(cfg) = Config::load(&session.dir, &session.overrides) else {
                    // A broken sitebuild.toml: let update() report it.
                    session.update(false).await;
                    continue;
                };
                let added = watch_dirs(&cfg, &mut debouncer);
                let ignore = site::load_ignore(&cfg.site_dir)
                    .unwrap_or_else(|_| ignore::gitignore::Gitignore::empty());
                let relevant: Vec<&PathBuf> =
                    paths.iter().filter(|p| is_relevant(&cfg, &ignore, p)).collect();
                if relevant.is_empty() && !added {
                    continue;
                }
                session.ui.detail(format!("changed: {}", relevant.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")));
                session.update(false).await;
            }
        }
    }
    drop(debouncer);
    session.finish(remove_on_exit).await
}

async fn connect_retrying(ui: &Ui) -> Engine {
    let mut told = false;
    loop {
        match Engine::connect().await {
            Ok(e) => return e,
            Err(e) => {
                if !told {
                    ui.step(format!("✘ {e:#}\n  retrying every 2 s…"));
                    told = true;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

impl Session {
    fn deploy_options(&self, dev_conf: String) -> DeployOptions {
        DeployOptions {
            dev: true,
            dev_conf: Some(dev_conf),
            livereload: self.livereload.as_ref().map(|l| l.addr.to_string()),
        }
    }

    /// One update; errors are printed, never returned: the loop goes on.
    async fn update(&mut self, initial: bool) {
        let started = Instant::now();
        match self.try_update(initial).await {
            Ok(Some((p, how))) => {
                self.failed = false;
                self.generation += 1;
                let css = match &how {
                    LivePath::Sync { css, .. } => css.clone(),
                    LivePath::Rebuild => None,
                };
                if let Some(lr) = &self.livereload {
                    match &css {
                        Some(paths) => lr.swap_css(self.generation, paths),
                        None => lr.reload(self.generation),
                    }
                }
                let took = started.elapsed();
                let took = if took < Duration::from_secs(1) {
                    format!("{} ms", took.as_millis())
                } else {
                    format!("{:.1} s", took.as_secs_f64())
                };
                let how = match how {
                    LivePath::Sync { files, .. } => {
                        format!("sync, {files} file{}", if files == 1 { "" } else { "s" })
                    }
                    LivePath::Rebuild => "rebuild".to_string(),
                };
                let tabs = self
                    .livereload
                    .as_ref()
                    .map(livereload::LiveReload::clients)
                    .filter(|n| *n > 0)
                    .map(|n| {
                        let s = if n == 1 { "" } else { "s" };
                        if css.is_some() {
                            format!(", stylesheets swapped in {n} tab{s} (no reload)")
                        } else {
                            format!(", {n} tab{s} reloaded")
                        }
                    })
                    .unwrap_or_default();
                self.ui
                    .result(format!("✔ {} live in {took} ({how}){tabs}", p.short()));
            }
            // Back to the live version after an error (e.g. a broken _redirects line undone):
            // say so, or the last line on screen would still be the error.
            Ok(None) if self.failed => {
                self.failed = false;
                if let Some((p, _)) = &self.last {
                    self.ui
                        .result(format!("✔ {} live again (nothing to rebuild)", p.short()));
                }
            }
            Ok(None) => self.ui.detail("no change that affects the site"),
            Err(e) => {
                self.failed = true;
                let kept = match &self.last {
                    Some((p, _)) => format!("{} stays live", p.short()),
                    None => "nothing is live yet".to_string(),
                };
                eprintln!("✘ {e:#}\n  ({kept}; fix it and save again)");
            }
        }
    }

    async fn try_update(&mut self, initial: bool) -> Result<Option<(Prepared, LivePath)>> {
        let mut t = Phases::start();
        let cfg = Config::load(&self.dir, &self.overrides)?;
        // Bad input fails before the engine is asked what the base supports.
        let p = image::prepare(&cfg, image::BaseSupport::default())?;
        t.mark("prepare");
        let base = match image::base_support(&self.engine, &cfg).await {
            Ok(base) => base,
            // The engine may be restarting: reconnect once and ask again.
            Err(_) if self.engine.ping().await.is_err() => {
                self.ui.step("the engine does not answer; waiting for it…");
                self.engine = connect_retrying(&self.ui).await;
                image::base_support(&self.engine, &cfg).await?
            }
            Err(e) => return Err(e),
        };
        let p = p.with_base(base)?;
        t.mark("base");
        if let Some((last, container)) = &self.last {
            if last.fingerprint == p.fingerprint && !initial {
                return Ok(None);
            }
            let d = delta(last, &p);
            if can_sync(last, &p, &d) {
                let container = container.clone();
                match self.sync(&p, &d.changed, &container, &mut t).await {
                    Ok(files) => {
                        self.ui.detail(t.line());
                        self.last = Some((p.clone(), container));
                        // Only stylesheets: tabs swap them in place, page state kept.
                        let css = livereload::only_stylesheets(&d.changed);
                        return Ok(Some((p, LivePath::Sync { files, css })));
                    }
                    Err(e) => self.ui.step(format!("sync failed, rebuilding: {e:#}")),
                }
            }
        }
        // Rebuild: the real image, the health-gated swap.
        if let Err(e) = self.engine.ensure_base_image(&cfg.base_image).await {
            // The engine may be restarting: reconnect once and try again.
            if self.engine.ping().await.is_err() {
                self.ui.step("the engine does not answer; waiting for it…");
                self.engine = connect_retrying(&self.ui).await;
            } else {
                return Err(e);
            }
        }
        // No skew protection in development: a rebuild stays as fast as it can be.
        image::ensure_image(&self.engine, &p, &self.ui, false).await?;
        // The container runs the image with the development config (no descriptor cache).
        let dev = Config {
            dev: true,
            ..cfg.clone()
        };
        let dev_conf = image::render_nginx(&dev, &p.site.not_found_pages(), p.base)?;
        let outcome = deploy::deploy_dev(
            &self.engine,
            &cfg,
            &Release::from(&p),
            &self.deploy_options(dev_conf),
            &self.ui,
        )
        .await?;
        let container = match outcome {
            Outcome::Unchanged { container } | Outcome::Deployed { container, .. } => container,
        };
        // What the container runs decides, not what was rendered: an unchanged container may
        // come from an earlier session (or an older sitebuild).
        let running = self
            .engine
            .download_file(&container, crate::layout::CONF_PATH)
            .await
            .ok()
            .flatten();
        self.reload_on_sync =
            running.is_none_or(|c| caches_descriptors(&String::from_utf8_lossy(&c)));
        self.last = Some((p.clone(), container));
        Ok(Some((p, LivePath::Rebuild)))
    }

    /// Copy the changed files (and their .gz siblings) into the dev container; reload its nginx
    /// only when its config caches descriptors (an override template without `dev`).
    async fn sync(
        &self,
        p: &Prepared,
        files: &BTreeSet<String>,
        container: &str,
        t: &mut Phases,
    ) -> Result<usize> {
        let (tar, summary) = sync_tar(p, files)?;
        t.mark("tar");
        // The engine answers once every file is in place: from here on a request gets the new
        // bytes, as nginx opens each file per request in the development config.
        self.engine.upload_tar(container, SITE_ROOT, tar).await?;
        t.mark("upload");
        if !self.reload_on_sync {
            return Ok(summary.files);
        }
        let old = deploy::edge::accepting_workers(&self.engine, container).await?;
        t.mark("workers");
        // New workers, open_file_cache emptied; by an exec, so the restart policy holds.
        deploy::edge::nginx_reload(
            &self.engine,
            container,
            &format!("the container {container}"),
            crate::layout::CONF_PATH,
        )
        .await?;
        t.mark("reload");
        // The reload is asynchronous, and an old worker keeps its open_file_cache (60 s: the
        // replaced file's old descriptor). A tab told to reload while an old worker still
        // takes requests can get the old page (over the edge's kept-alive connection) and
        // never reload again. So the tabs hear of the update only once every old worker is
        // shutting down: it has closed its listening socket and idle connections by then.
        let gone = deploy::probe::poll_until(
            Duration::from_secs(3),
            Duration::from_millis(10),
            async || {
                let now = deploy::edge::accepting_workers(&self.engine, container).await?;
                Ok((!now.is_empty() && !now.iter().any(|pid| old.contains(pid))).then_some(()))
            },
        )
        .await?;
        t.mark("old workers gone");
        if gone.is_none() {
            self.ui.step(
                "nginx's old workers still take requests after 3 s: a tab may show the previous \
                 version until the next save",
            );
        }
        Ok(summary.files)
    }

    /// Ctrl-C: take the live-reload hooks out of the edge; remove everything with --rm.
    async fn finish(self, remove: bool) -> Result<()> {
        let cfg = Config::load(&self.dir, &self.overrides)?;
        if remove {
            let line = deploy::down(&self.engine, &cfg, false, &self.ui).await?;
            self.ui.result(format!("stopped watching; {line}"));
            return Ok(());
        }
        if let Some(e) = deploy::front::find_for(&self.engine, &cfg).await? {
            let edge = deploy::front::attach(&self.engine, &cfg, &e).await?;
            let live = deploy::edge::read_live(&self.engine, &edge).await?;
            if let Err(e) =
                deploy::front::apply(&self.engine, &cfg, &edge, live.as_ref(), &self.ui).await
            {
                self.ui
                    .step(format!("could not remove the live-reload hooks: {e:#}"));
            }
        }
        match &self.last {
            Some((p, container)) => self.ui.result(format!(
                "stopped watching; {} still serves {} ({container}). `sitebuild down` removes it, `sitebuild deploy` makes it a production container.",
                cfg.url(),
                p.short()
            )),
            None => self.ui.result("stopped watching; nothing was deployed"),
        }
        Ok(())
    }
}
