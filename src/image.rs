//! From a validated config to an image in the engine: run the pure stages (scan, hash, render,
//! fingerprint), and build only when no image with this fingerprint exists.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::context::{self, BuildContext, ContextSummary};
use crate::engine::{BuildEvent, ContainerSpec, Engine, ImageConfig, labels};
use crate::render;
use crate::site::{self, FingerprintInputs, Site};
use crate::ui::Ui;

/// Everything the engine needs, computed without touching it.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub config: Config,
    pub site: Site,
    pub nginx_conf: String,
    pub dockerfile: String,
    pub fingerprint: String,
}

impl Prepared {
    /// `<name>:<short fingerprint>`.
    pub fn tag(&self) -> String {
        format!("{}:{}", self.config.name, site::short(&self.fingerprint))
    }

    pub fn short(&self) -> &str {
        site::short(&self.fingerprint)
    }
}

/// Scan, hash, render and fingerprint. Every bad input fails here, before the engine is used.
pub fn prepare(config: &Config) -> Result<Prepared> {
    let mut site = site::scan(&config.site_dir)?;
    let nginx_conf = render::render_for(config, site.has("404.html"))?;
    site::hash_files(&mut site)?;
    let dockerfile = context::dockerfile(&config.base_image);
    let fingerprint = site::fingerprint(
        &site,
        &FingerprintInputs {
            base_image: &config.base_image,
            nginx_conf: &nginx_conf,
            dockerfile: &dockerfile,
            precompress_min_size: config.precompress_min_size,
        },
    );
    Ok(Prepared {
        config: config.clone(),
        site,
        nginx_conf,
        dockerfile,
        fingerprint,
    })
}

/// What [`ensure_image`] did.
#[derive(Debug, Clone)]
pub enum BuildOutcome {
    /// An image with this fingerprint already existed: nothing was built.
    Reused { image_id: String },
    Built {
        image_id: String,
        took: Duration,
        summary: ContextSummary,
    },
}

impl BuildOutcome {
    pub fn image_id(&self) -> &str {
        match self {
            BuildOutcome::Reused { image_id } | BuildOutcome::Built { image_id, .. } => image_id,
        }
    }
}

/// Build the image unless one with this fingerprint exists; tag `<name>:<fp>` and `<name>:latest`.
pub async fn ensure_image(engine: &Engine, p: &Prepared, ui: &Ui) -> Result<BuildOutcome> {
    let tag = p.tag();
    if let Some(img) = engine.image(&tag).await?
        && img.labels.get(labels::FINGERPRINT) == Some(&p.fingerprint)
    {
        if !img.tags.contains(&format!("{}:latest", p.config.name)) {
            engine.tag(&img.id, &p.config.name, "latest").await?;
        }
        return Ok(BuildOutcome::Reused { image_id: img.id });
    }
    engine.ensure_base_image(&p.config.base_image).await?;

    let started = Instant::now();
    ui.step(format!(
        "building {tag} ({} files, {} bytes) on {}",
        p.site.files.len(),
        p.site.total_bytes(),
        engine.host()
    ));

    // The tar is written on a blocking thread into a bounded channel and streamed to the
    // engine: the site is never held in memory as a whole.
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(8);
    let prepared = p.clone();
    let writer = tokio::task::spawn_blocking(move || -> Result<ContextSummary> {
        let ctx = BuildContext {
            site: &prepared.site,
            nginx_conf: &prepared.nginx_conf,
            dockerfile: &prepared.dockerfile,
            precompress_min_size: prepared.config.precompress_min_size,
        };
        let mut out = ChannelWriter::new(tx.clone());
        let result = context::write_tar(&ctx, &mut out).and_then(|s| {
            out.flush()?;
            Ok(s)
        });
        if let Err(e) = &result {
            // Abort the upload so the engine does not build a partial context.
            let _ = tx.blocking_send(Err(std::io::Error::other(format!("{e:#}"))));
        }
        result
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });

    let mut tick = 0usize;
    let build = engine
        .build(stream, &tag, |ev| match ev {
            BuildEvent::Log(line) => {
                tick += 1;
                ui.progress(tick, &line);
            }
        })
        .await;
    ui.clear();
    let summary = writer
        .await
        .map_err(|e| anyhow!("build context writer panicked: {e}"))?
        .context("cannot write the build context")?;
    let stage_id = build?;

    let result = check_and_commit(engine, p, &stage_id).await;
    if result.is_err() {
        let _ = engine.remove_image(&stage_id, true).await;
    }
    let image_id = result?;
    engine.tag(&image_id, &p.config.name, "latest").await?;
    Ok(BuildOutcome::Built {
        image_id,
        took: started.elapsed(),
        summary,
    })
}

/// Run `nginx -t` inside the built image exactly as the site will run (user, read-only root,
/// /tmp tmpfs, no capabilities, no network); if it passes, commit the runtime settings and tag
/// `<name>:<fingerprint>`. A failing config stops here with nginx's own message.
async fn check_and_commit(engine: &Engine, p: &Prepared, stage_id: &str) -> Result<String> {
    let spec = ContainerSpec {
        name: format!("{}-check-{}", p.config.name, crate::deploy::unique_suffix()),
        image: stage_id.to_string(),
        labels: HashMap::from([
            (labels::MANAGED.to_string(), "true".to_string()),
            (labels::PROJECT.to_string(), p.config.name.clone()),
        ]),
        publish: None,
        user: context::RUN_AS.to_string(),
        memory_bytes: 256 * 1024 * 1024,
        pids_limit: 64,
        entrypoint: Some(vec![context::NGINX.to_string()]),
        cmd: Some(context::check_args()),
        network_disabled: true,
        network: None,
        binds: vec![],
        scratch_volume: None,
        restart: false,
    };
    let id = engine.create(&spec).await?;
    let outcome = async {
        let (code, output) = engine.run_to_end(&id, Duration::from_secs(60)).await?;
        if code != 0 {
            bail!(
                "nginx -t failed in the built image (exit code {code}); nginx says:\n{}\n\
                 Fix the template ({}) and run again; nothing was deployed.",
                output.trim_end(),
                p.config
                    .templates_dir
                    .join(render::NGINX_TEMPLATE)
                    .display()
            );
        }
        let config = ImageConfig {
            user: context::RUN_AS.to_string(),
            entrypoint: vec![context::NGINX.to_string()],
            cmd: context::serve_args(),
            exposed_port: render::CONTAINER_PORT,
            stop_signal: "SIGQUIT".to_string(),
            labels: image_labels(p),
        };
        engine.commit(&id, &p.config.name, p.short(), &config).await
    }
    .await;
    engine.remove(&id).await?;
    outcome
}

/// Labels on the image: ours, plus the OCI ones.
pub fn image_labels(p: &Prepared) -> HashMap<String, String> {
    let dir = &p.config.project_dir;
    let mut l = HashMap::from([
        (labels::MANAGED.to_string(), "true".to_string()),
        (labels::PROJECT.to_string(), p.config.name.clone()),
        (labels::FINGERPRINT.to_string(), p.fingerprint.clone()),
        (
            "org.opencontainers.image.title".into(),
            p.config.name.clone(),
        ),
        (
            "org.opencontainers.image.version".into(),
            p.short().to_string(),
        ),
        (
            "org.opencontainers.image.created".into(),
            created_timestamp(),
        ),
        (
            "org.opencontainers.image.base.name".into(),
            p.config.base_image.clone(),
        ),
    ]);
    let revision = std::env::var("GITHUB_SHA")
        .or_else(|_| std::env::var("CI_COMMIT_SHA"))
        .ok()
        .or_else(|| git(dir, &["rev-parse", "HEAD"]));
    if let Some(rev) = revision {
        l.insert("org.opencontainers.image.revision".into(), rev);
    }
    let source = match (
        std::env::var("GITHUB_SERVER_URL"),
        std::env::var("GITHUB_REPOSITORY"),
    ) {
        (Ok(server), Ok(repo)) => Some(format!("{server}/{repo}")),
        _ => std::env::var("CI_PROJECT_URL")
            .ok()
            .or_else(|| git(dir, &["config", "--get", "remote.origin.url"])),
    };
    if let Some(src) = source {
        l.insert("org.opencontainers.image.source".into(), src);
    }
    l
}

fn git(dir: &std::path::Path, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

/// RFC 3339 UTC: `SOURCE_DATE_EPOCH` when set (reproducible builds), else now.
pub fn created_timestamp() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        });
    rfc3339(secs)
}

/// Seconds since the epoch → `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-from-civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// A `Write` that sends 64 KiB chunks into a channel (blocking the writer thread when the
/// engine is slower than the disk).
struct ChannelWriter {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 64 * 1024;

impl ChannelWriter {
    fn new(tx: mpsc::Sender<std::io::Result<Bytes>>) -> Self {
        ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the engine stopped reading the build context",
            )
        })
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(946_684_800), "2000-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_307_696), "2026-11-22T00:34:56Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
