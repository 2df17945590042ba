//! One deploy per project at a time, across processes and machines: the lock is a container
//! named `<name>-lock` (never started). Creating it is atomic in the engine; a second deploy gets
//! 409, waits, and takes over when the holder is done. A lock whose holder process is gone (same
//! host) or that is older than 30 minutes is stale and removed.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::config::Config;
use crate::engine::{ContainerSpec, Engine, is_conflict, is_not_found};
use crate::holder::{is_stale, now_secs, this_process};
use crate::naming::{self, Labels, labels, roles};
use crate::ui::Ui;

/// A held lock; call [`Lock::release`].
#[derive(Debug)]
pub(crate) struct Lock {
    id: String,
}

/// Take the project's deploy lock, waiting up to `lock_timeout`.
pub(crate) async fn acquire(engine: &Engine, cfg: &Config, ui: &Ui) -> Result<Lock> {
    let what = format!("another deploy of {}", cfg.name);
    acquire_named(
        engine,
        cfg,
        &naming::lock_container(&cfg.name),
        &cfg.name,
        &what,
        ui,
    )
    .await
}

/// Take the lock container `name` (labelled with `project`); `what` names the other holder in
/// messages ("another deploy of blog").
async fn acquire_named(
    engine: &Engine,
    cfg: &Config,
    name: &str,
    project: &str,
    what: &str,
    ui: &Ui,
) -> Result<Lock> {
    let name = name.to_string();
    let holder = this_process();
    let started = Instant::now();
    let mut told = false;
    loop {
        // Never started: it exists to be created atomically. No network, tiny limits.
        let labels = Labels::project(project)
            .role(roles::LOCK)
            .with(labels::HOLDER, &holder)
            .with(labels::SINCE, now_secs().to_string())
            .build();
        let spec = ContainerSpec::new(&name, &cfg.base_image, labels).limits(16, 8);
        match engine.create(&spec).await {
            Ok(id) => {
                ui.detail(format!(
                    "lock {name} taken in {} ms",
                    started.elapsed().as_millis()
                ));
                return Ok(Lock { id });
            }
            Err(e) if is_conflict(&e) => {}
            Err(e) => return Err(e),
        }
        let info = match engine.container(&name).await {
            Ok(info) => info,
            Err(e) if is_not_found(&e) => continue, // released meanwhile
            Err(e) => return Err(e),
        };
        let other = info.label(labels::HOLDER).unwrap_or("?").to_string();
        let since: u64 = info
            .label(labels::SINCE)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if is_stale(&other, since) {
            ui.step(format!(
                "removing a stale deploy lock ({name}, held by {other}, whose process is gone)"
            ));
            engine.remove(&info.id).await?;
            continue;
        }
        if !told {
            ui.step(format!(
                "waiting for {what} to finish (lock {name} held by {other}; lock_timeout {} s)",
                cfg.lock_timeout
            ));
            told = true;
        }
        if started.elapsed() > Duration::from_secs(cfg.lock_timeout) {
            bail!(
                "{what} held the lock for more than {} s (lock_timeout); holder {other}. \
                 If it crashed on another machine, remove the lock with `docker rm {name}`",
                cfg.lock_timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Lock {
    pub(crate) async fn release(self, engine: &Engine) -> Result<()> {
        engine.remove(&self.id).await
    }
}

/// Run `work` holding the project's lock; the lock is released whether `work` succeeds or not
/// (`work`'s error wins over a release error).
pub(crate) async fn holding<T>(
    engine: &Engine,
    cfg: &Config,
    ui: &Ui,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    let lock = acquire(engine, cfg, ui).await?;
    let result = work.await;
    let released = lock.release(engine).await;
    let value = result?;
    released?;
    Ok(value)
}

/// Run `work` holding the lock of a resource several projects share (the shared edge): a
/// lock container `name` labelled with `project` (the shared resource's name).
pub(crate) async fn holding_shared<T>(
    engine: &Engine,
    cfg: &Config,
    name: &str,
    project: &str,
    ui: &Ui,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    let what = format!("another change of the shared edge {project}");
    let lock = acquire_named(engine, cfg, name, project, &what, ui).await?;
    let result = work.await;
    let released = lock.release(engine).await;
    let value = result?;
    released?;
    Ok(value)
}
