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
use crate::engine::{ContainerSpec, Engine, ImageDetails};
use crate::image_archive;
use crate::layout;
use crate::naming::{self, Labels, labels, roles};
use crate::render;
use crate::rules::{self, routes::RouteOptions, routes::compile_routes};
use crate::site::{self, FingerprintInputs, Site};
use crate::skew;
use crate::ui::Ui;

/// Everything the engine needs, computed without touching it.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub(crate) config: Config,
    pub(crate) site: Site,
    pub(crate) nginx_conf: String,
    /// `nginx_conf` comes from the built-in template (not a project's override): it reads no
    /// file of the site layer at `nginx -t`, so a passed check can be remembered
    /// ([`CheckRecords`]).
    pub(crate) builtin_template: bool,
    pub(crate) dockerfile: String,
    pub(crate) fingerprint: String,
    /// What the base image's nginx can do (decides the `.br` siblings and `brotli_static`).
    pub(crate) base: BaseSupport,
}

impl Prepared {
    /// `<name>:<short fingerprint>`.
    pub(crate) fn tag(&self) -> String {
        format!(
            "{}:{}",
            self.config.image_repo(),
            site::short(&self.fingerprint)
        )
    }

    pub(crate) fn short(&self) -> &str {
        site::short(&self.fingerprint)
    }
}

/// What the base image's nginx supports beyond what every base must have
/// ([`check_nginx_features`]). Found by [`base_support`] (the engine), then passed to the pure
/// stages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BaseSupport {
    /// The base has Debian's (Google's `ngx_brotli`) static brotli module at
    /// [`layout::BROTLI_STATIC_MODULE`]: the config loads it and serves the `.br` siblings.
    pub(crate) brotli: bool,
}

/// Scan, hash, render and fingerprint. Every bad input fails here, before the engine is used.
pub(crate) fn prepare(config: &Config, base: BaseSupport) -> Result<Prepared> {
    let mut site = site::scan(&config.site_dir)?;
    let (nginx_conf, builtin_template) =
        render_nginx_origin(config, &site.not_found_pages(), base)?;
    site::hash_files(&mut site)?;
    let mut p = Prepared {
        config: config.clone(),
        site,
        nginx_conf,
        builtin_template,
        dockerfile: context::dockerfile(&config.base_image),
        fingerprint: String::new(),
        base,
    };
    p.fingerprint = p.compute_fingerprint();
    Ok(p)
}

impl Prepared {
    /// The same site for a base that supports `base`: the config re-rendered and the
    /// fingerprint recomputed (no rescan, no rehash). `prepare` runs first with the default
    /// (gzip only) so every bad input fails before the engine is asked about the base.
    pub(crate) fn with_base(mut self, base: BaseSupport) -> Result<Prepared> {
        if base == self.base {
            return Ok(self);
        }
        (self.nginx_conf, self.builtin_template) =
            render_nginx_origin(&self.config, &self.site.not_found_pages(), base)?;
        self.base = base;
        self.fingerprint = self.compute_fingerprint();
        Ok(self)
    }

    fn compute_fingerprint(&self) -> String {
        site::fingerprint(
            &self.site,
            &FingerprintInputs {
                base_image: &self.config.base_image,
                nginx_conf: &self.nginx_conf,
                dockerfile: &self.dockerfile,
                precompress_min_size: self.config.precompress_min_size,
                brotli: self.base.brotli,
            },
        )
    }
}

/// [`prepare`], then what the base supports when it is on the engine ([`local_base_support`];
/// never pulls): the version `build` makes.
pub(crate) async fn prepare_for(engine: &Engine, config: &Config) -> Result<Prepared> {
    let p = prepare(config, BaseSupport::default())?;
    let base = local_base_support(engine, config)
        .await?
        .unwrap_or_default();
    p.with_base(base)
}

/// What the base image `config.base_image` supports, pulled first if it is not local.
///
/// Probed once per base image ID: a container is created from the base (never started) and
/// the engine is asked for [`layout::BROTLI_STATIC_MODULE`] in its filesystem; the answer is kept in
/// `$XDG_CACHE_HOME/sitebuild/base-support/<image id>` (else `~/.cache/…`), so later runs cost
/// one image inspect. An image ID names immutable content, so the entry never goes stale; a
/// rebuilt base is a new ID and is probed again.
pub(crate) async fn base_support(engine: &Engine, config: &Config) -> Result<BaseSupport> {
    if let Some(support) = local_base_support(engine, config).await? {
        return Ok(support);
    }
    engine.ensure_base_image(&config.base_image).await?;
    local_base_support(engine, config).await?.with_context(|| {
        format!(
            "base image {} disappeared while sitebuild was using it; run again",
            config.base_image
        )
    })
}

/// [`base_support`] without a pull: None when the base image is not on the engine (`render`
/// and `status` never pull).
pub(crate) async fn local_base_support(
    engine: &Engine,
    config: &Config,
) -> Result<Option<BaseSupport>> {
    if !config.brotli {
        // gzip only by choice: nothing to ask the engine.
        return Ok(Some(BaseSupport { brotli: false }));
    }
    let base = &config.base_image;
    let Some(img) = engine.image(base).await? else {
        return Ok(None);
    };
    let id = img.id.trim_start_matches("sha256:").to_string();
    let entry = base_support_dir().map(|d| d.join(&id));
    if let Some(text) = entry.as_ref().and_then(|e| std::fs::read_to_string(e).ok()) {
        match text.trim() {
            "brotli=1" => return Ok(Some(BaseSupport { brotli: true })),
            "brotli=0" => return Ok(Some(BaseSupport { brotli: false })),
            _ => {} // damaged: probe again
        }
    }
    let spec = ContainerSpec::new(
        naming::probe_container(&config.name),
        &img.id,
        Labels::held(config.image_repo()).build(),
    )
    .limits(64, 16)
    .nginx_args(vec!["-v".to_string()]);
    let cid = engine.create(&spec).await?;
    let found = engine
        .download_file(&cid, layout::BROTLI_STATIC_MODULE)
        .await;
    engine.remove(&cid).await?;
    let support = BaseSupport {
        brotli: found
            .with_context(|| format!("cannot look for the brotli module in base image {base}"))?
            .is_some(),
    };
    if let Some(entry) = entry {
        // A cache that cannot be written costs one probe next time, not the build.
        let _ = write_atomically(&entry, format!("brotli={}\n", u8::from(support.brotli)));
    }
    Ok(Some(support))
}

/// `$XDG_CACHE_HOME/sitebuild/base-support`, else `$HOME/.cache/sitebuild/base-support`.
fn base_support_dir() -> Option<std::path::PathBuf> {
    crate::precompress::cache_root().map(|r| r.join("base-support"))
}

fn write_atomically(path: &std::path::Path, text: String) -> Result<()> {
    let dir = path.parent().expect("entries live in a directory");
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".tmp-{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// The one line `build` prints about brotli: None when the base serves `.br` siblings.
pub(crate) fn brotli_note(p: &Prepared) -> Option<String> {
    (p.config.brotli && !p.base.brotli).then(|| {
        format!(
            "gzip only: base image {} has no brotli module ({}); the offline base from scripts/offline-base.sh has it",
            p.config.base_image,
            layout::BROTLI_STATIC_MODULE
        )
    })
}

/// The site's nginx.conf: `_redirects` and `_headers` ([`rules::load`], errors with the file and
/// line), clean URLs, trailing slash and the nearest of `not_found_pages` compiled into the
/// template's `rules_http`, `rules_server` and `try_files`.
pub(crate) fn render_nginx(
    config: &Config,
    not_found_pages: &[String],
    base: BaseSupport,
) -> Result<String> {
    render_nginx_origin(config, not_found_pages, base).map(|(conf, _)| conf)
}

/// [`render_nginx`], and whether the template was the built-in one.
fn render_nginx_origin(
    config: &Config,
    not_found_pages: &[String],
    base: BaseSupport,
) -> Result<(String, bool)> {
    let shown = config
        .site_dir
        .strip_prefix(&config.project_dir)
        .unwrap_or(&config.site_dir);
    let compiled = rules::load(&config.site_dir, shown, rules::DEFAULT_HEADERS)?;
    let opts = RouteOptions {
        clean_urls: config.clean_urls,
        trailing_slash: config.trailing_slash,
        spa: config.spa,
    };
    let routes = compile_routes(&opts, not_found_pages)
        .with_context(|| format!("{}: cannot serve this 404 page", shown.display()))?;
    // _redirects and _headers first: a rule for /old still matches before a trailing-slash
    // redirect would turn it into /old/.
    let generated = render::Generated {
        http: compiled.http.clone() + &routes.http,
        server: compiled.server.clone() + &routes.server,
        try_files: routes.try_files,
    };
    let (conf, builtin) = render::render_for_origin(
        config,
        not_found_pages.iter().any(|p| p == "404.html"),
        base.brotli,
        &generated,
    )?;
    let has_rules = compiled != rules::compile(&[], &[], rules::DEFAULT_HEADERS)?
        || opts
            != RouteOptions {
                spa: config.spa,
                ..RouteOptions::default()
            };
    // Indentation aside, the rendered config holds rules_server (an override template may not).
    let flat = |s: &str| s.lines().map(str::trim).collect::<Vec<_>>().join("\n");
    if has_rules && !flat(&conf).contains(&flat(&generated.server)) {
        bail!(
            "the nginx template in {} does not use `{{{{ rules_server }}}}`, so _redirects, _headers, clean_urls or trailing_slash would be ignored; add `{{{{ rules_http }}}}` inside http {{}}, `{{{{ rules_server }}}}` inside server {{}} and `{{{{ try_files }}}}` in location / (see the built-in nginx.conf.j2)",
            config.templates_dir.display()
        );
    }
    Ok((conf, builtin))
}

/// What [`ensure_image`] did.
#[derive(Debug, Clone)]
pub(crate) enum BuildOutcome {
    /// An image with this fingerprint already existed: nothing was built.
    Reused { image_id: String },
    Built {
        image_id: String,
        took: Duration,
        summary: ContextSummary,
        /// Some(n): the site layer holds only what changed since the previous image and is
        /// the n-th site layer (of at most [`image_archive::MAX_SITE_LAYERS`]); None: the whole
        /// site in one layer.
        incremental: Option<usize>,
    },
}

impl BuildOutcome {
    pub(crate) fn image_id(&self) -> &str {
        match self {
            BuildOutcome::Reused { image_id } | BuildOutcome::Built { image_id, .. } => image_id,
        }
    }
}

/// Build the image unless one with this fingerprint exists; tag `<name>:<fp>` and `<name>:latest`.
/// With `skew`, the image also carries the hashed assets of the project's earlier images
/// ([`skew::collect`]; `watch` does without).
///
/// No builder: the site layer is written once (a deterministic tar, [`context::write_layer`])
/// and loaded with the image config as an image archive ([`image_archive`]) on top of the
/// base's layers, or, when `<name>:latest` is an image sitebuild made on this machine from the
/// same base, on top of its layers with only what changed (up to
/// [`image_archive::MAX_SITE_LAYERS`] site layers, then one whole layer again). The loaded
/// image is untagged until `nginx -t` passed in it.
pub(crate) async fn ensure_image(
    engine: &Engine,
    p: &Prepared,
    ui: &Ui,
    skew: bool,
) -> Result<BuildOutcome> {
    let tag = p.tag();
    if let Some(img) = engine.image(&tag).await?
        && img.labels.get(labels::FINGERPRINT) == Some(&p.fingerprint)
    {
        if !img
            .tags
            .contains(&format!("{}:latest", p.config.image_repo()))
        {
            engine.tag(&img.id, p.config.image_repo(), "latest").await?;
        }
        return Ok(BuildOutcome::Reused { image_id: img.id });
    }
    engine.ensure_base_image(&p.config.base_image).await?;
    let base = engine
        .image_details(&p.config.base_image)
        .await?
        .with_context(|| {
            format!(
                "base image {} disappeared while sitebuild was using it; run again",
                p.config.base_image
            )
        })?;

    let started = Instant::now();
    let carry = if skew {
        let carry = skew::collect(engine, &p.config, &p.fingerprint, &p.site, |id| {
            let prefix = format!("{}/", layout::SITE_ROOT.trim_start_matches('/'));
            image_archive::Record::read(id).map(|r| {
                r.tree
                    .keys()
                    .filter_map(|path| path.strip_prefix(&prefix))
                    .map(String::from)
                    .collect()
            })
        })
        .await?;
        ui.detail(format!(
            "skew protection: read {} earlier version{} in {} ms",
            carry.versions + carry.left_out,
            if carry.versions + carry.left_out == 1 {
                ""
            } else {
                "s"
            },
            started.elapsed().as_millis()
        ));
        carry
    } else {
        skew::Carry::default()
    };
    ui.step(format!(
        "building {tag} ({} files, {} bytes) on {}",
        p.site.files.len(),
        p.site.total_bytes(),
        engine.host()
    ));
    let carry = std::sync::Arc::new(carry);
    let previous = if p.config.no_cache {
        None
    } else {
        previous_image(engine, p, &base).await?
    };
    let mut attempt = load_image(engine, p, ui, &base, &carry, previous.clone()).await;
    if let Err(e) = &attempt
        && previous.is_some()
    {
        // The previous image (or one of its layers) went away under us: a whole layer needs
        // nothing but the base.
        ui.detail(format!(
            "incremental layer failed ({e:#}); writing the whole site"
        ));
        attempt = load_image(engine, p, ui, &base, &carry, None).await;
    }
    let (image_id, summary, record) = attempt?;
    let checked = Instant::now();
    let result = check_and_tag(engine, p, &base.id, &image_id).await;
    if let Ok(how) = &result {
        ui.detail(format!(
            "nginx -t: {how} in {} ms",
            checked.elapsed().as_millis()
        ));
    }
    if result.is_err() {
        let _ = engine.remove_image(&image_id, false).await;
    }
    result?;
    // After a failed incremental attempt the layer is a whole one.
    let incremental = (record.site_layers > 1).then_some(record.site_layers);
    record.write(&image_id);
    engine
        .tag(&image_id, p.config.image_repo(), "latest")
        .await?;
    Ok(BuildOutcome::Built {
        image_id,
        took: started.elapsed(),
        summary,
        incremental,
    })
}

/// `<name>:latest` when the next layer can go on top of it: sitebuild made it on this machine
/// (its record is kept), on the same base layers, with fewer than
/// [`image_archive::MAX_SITE_LAYERS`] site layers.
async fn previous_image(
    engine: &Engine,
    p: &Prepared,
    base: &ImageDetails,
) -> Result<Option<(Vec<String>, image_archive::Record)>> {
    let latest = format!("{}:latest", p.config.image_repo());
    let Some(img) = engine.image_details(&latest).await? else {
        return Ok(None);
    };
    let Some(record) = image_archive::Record::read(&img.id) else {
        return Ok(None);
    };
    let fits = record.layers == img.layers
        && img.layers.starts_with(&base.layers)
        && img.layers.len() == base.layers.len() + record.site_layers
        && record.site_layers < image_archive::MAX_SITE_LAYERS;
    Ok(fits.then_some((img.layers, record)))
}

/// Write the site layer (on top of `previous` when given) and load the image, untagged: its
/// ID, what was written, and the record to keep once it passed `nginx -t`.
async fn load_image(
    engine: &Engine,
    p: &Prepared,
    ui: &Ui,
    base: &ImageDetails,
    carry: &std::sync::Arc<skew::Carry>,
    previous: Option<(Vec<String>, image_archive::Record)>,
) -> Result<(String, ContextSummary, image_archive::Record)> {
    // The layer is written once, into an unnamed temporary file (the archive needs its size
    // before its bytes), hashed on the way (its diff ID).
    let started = Instant::now();
    let prepared = p.clone();
    let carry = carry.clone();
    let prev_tree = previous.as_ref().map(|(_, r)| r.tree.clone());
    let writer = tokio::task::spawn_blocking(
        move || -> Result<(std::fs::File, String, u64, ContextSummary, context::LayerTree)> {
            let cache = prepared.config.precompress_cache();
            let ctx = BuildContext {
                site: &prepared.site,
                nginx_conf: &prepared.nginx_conf,
                siblings: context::Siblings {
                    min_size: prepared.config.precompress_min_size,
                    brotli: prepared.base.brotli,
                    cache: cache.as_ref(),
                },
                carry: &carry,
            };
            let file = tempfile::tempfile()
                .context("cannot create a temporary file for the site layer (check TMPDIR)")?;
            let mut out = image_archive::Hashing::new(std::io::BufWriter::with_capacity(
                CHUNK, file,
            ));
            let (summary, tree) = context::write_layer(&ctx, &mut out, prev_tree.as_ref())?;
            out.flush()?;
            let (buf, diff_id, len) = out.finish();
            let file = buf
                .into_inner()
                .map_err(|e| anyhow!("cannot write the site layer: {}", e.error()))?;
            if let Some(cache) = &cache {
                cache.prune(); // keep the cache within its bound (a failure costs nothing)
            }
            Ok((file, diff_id, len, summary, tree))
        },
    );
    let (mut file, diff_id, len, summary, tree) = writer
        .await
        .map_err(|e| anyhow!("site layer writer panicked: {e}"))?
        .context("cannot write the site layer")?;

    ui.detail(format!(
        "site layer: {len} bytes ({}) written in {} ms",
        if previous.is_some() {
            "what changed"
        } else {
            "the whole site"
        },
        started.elapsed().as_millis()
    ));
    let (mut layers, site_layers) = match &previous {
        Some((layers, record)) => (layers.clone(), record.site_layers + 1),
        None => (base.layers.clone(), 1),
    };
    layers.push(diff_id);
    let config =
        image_archive::image_config(base, &image_labels(p), &created_timestamp(), &layers)?;
    let image_id = image_archive::digest(&config);

    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(8);
    let archive_layers = layers.clone();
    let sender = tokio::task::spawn_blocking(move || -> Result<()> {
        use std::io::Seek;
        file.rewind()?;
        let mut out = ChannelWriter::new(tx.clone());
        let result = image_archive::write_archive(&mut out, file, len, &config, &archive_layers)
            .and_then(|()| Ok(out.flush()?));
        if let Err(e) = &result {
            // Abort the upload so the engine does not load a partial archive.
            let _ = tx.blocking_send(Err(std::io::Error::other(format!("{e:#}"))));
        }
        result
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let loaded = engine.load(stream, &p.tag()).await;
    sender
        .await
        .map_err(|e| anyhow!("image archive writer panicked: {e}"))?
        .context("cannot write the image archive")?;
    loaded?;
    ui.detail(format!(
        "loaded image {} in {} ms",
        &image_id[..19.min(image_id.len())],
        started.elapsed().as_millis()
    ));

    Ok((
        image_id,
        summary,
        image_archive::Record {
            layers,
            site_layers,
            tree,
        },
    ))
}

/// Remove `nginx -t` check containers of image repository `repo` left by a build that was
/// killed (SIGKILL, a lost connection): their holder process is gone (or they are older than
/// 30 min). A running build's is left alone. Returns their names.
pub(crate) async fn remove_stale_checks(engine: &Engine, repo: &str) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for c in engine
        .containers_with_labels(&[(labels::PROJECT, repo), (labels::ROLE, roles::CHECK)])
        .await?
    {
        let holder = c.label(labels::HOLDER).unwrap_or("");
        let since = c
            .label(labels::SINCE)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if crate::holder::is_stale(holder, since) {
            engine.remove(&c.id).await?;
            removed.push(c.name);
        }
    }
    Ok(removed)
}

/// Run `nginx -t` inside the loaded image exactly as the site will run (user, read-only root,
/// /tmp tmpfs, no capabilities, no network); if it passes, tag it `<name>:<fingerprint>`. A
/// failing config stops here with nginx's own message, before the image has a name.
///
/// Unless it passed before for exactly what it reads ([`check_key`], [`CheckRecords`]): then
/// the image is tagged without the check container. Returns how the check was made.
async fn check_and_tag(
    engine: &Engine,
    p: &Prepared,
    base_id: &str,
    image_id: &str,
) -> Result<&'static str> {
    let repo = p.config.image_repo();
    let records = CheckRecords::user(&p.config);
    let key = check_key(p, base_id);
    if let (Some(records), Some(key)) = (&records, &key)
        && records.passed(key)
    {
        engine.tag(image_id, repo, p.short()).await?;
        return Ok("passed before for this nginx.conf and base image (not run again)");
    }
    remove_stale_checks(engine, repo).await?;
    // It lives for one `nginx -t`.
    let spec = ContainerSpec::new(
        naming::check_container(repo),
        image_id,
        Labels::held(repo).build(),
    )
    .limits(256, 64)
    .nginx_args(layout::check_args());
    let id = engine.create(&spec).await?;
    let outcome = async {
        let (code, output) = engine.run_to_end(&id, Duration::from_mins(1)).await?;
        // Before nginx's own verdict: a too-old base fails on the first directive it does not
        // know, and "what is missing, from which version" is the clearer message.
        check_nginx_features(&p.config.base_image, &output)?;
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
        engine.tag(image_id, repo, p.short()).await
    }
    .await;
    engine.remove(&id).await?;
    outcome?;
    if let (Some(records), Some(key)) = (&records, &key) {
        // A record that cannot be written costs one check next time, not the build.
        let _ = records.record(key);
    }
    Ok("passed (run in the image)")
}

/// The key of an `nginx -t` result: everything the check reads, or None when that is not
/// known (a project's own nginx template may `include` or load files of the site, which the
/// key does not cover).
///
/// The check runs the base's nginx ([`layout::check_args`]) as [`layout::RUN_AS`] in an image
/// that is the base's layers plus the site layer. The site layer holds, under
/// [`layout::IMAGE_DIR`], `nginx.conf`, sitebuild's `mime.types` and the site files; the
/// built-in template reads the first two at `nginx -t` (the site files only when serving),
/// and everything else it reads (the nginx binary, its modules, `/etc/passwd`) comes from the
/// base. So the result is a function of: the base image ID (immutable content), the rendered
/// config, the mime types and the check's arguments and user (this sitebuild's build).
pub(crate) fn check_key(p: &Prepared, base_id: &str) -> Option<String> {
    use sha2::{Digest, Sha256};
    if !p.builtin_template {
        return None;
    }
    let mut h = Sha256::new();
    for part in [
        "sitebuild nginx -t v1",
        crate::VERSION,
        env!("SITEBUILD_COMMIT"),
        base_id,
        &layout::check_args().join(" "),
        layout::RUN_AS,
        context::MIME_TYPES,
        &p.nginx_conf,
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    Some(hex::encode(h.finalize()))
}

/// The `nginx -t` checks that passed: one file per [`check_key`] in
/// `$XDG_CACHE_HOME/sitebuild/nginx-checked/` (else `~/.cache/…`), holding `passed <key>`.
/// Only passes are kept; a missing, unreadable or damaged record means "run the check".
/// `--no-cache` ignores them.
#[derive(Debug, Clone)]
pub(crate) struct CheckRecords {
    dir: std::path::PathBuf,
}

impl CheckRecords {
    /// The user's records, unless `no_cache`.
    pub(crate) fn user(config: &Config) -> Option<CheckRecords> {
        if config.no_cache {
            return None;
        }
        crate::precompress::cache_root().map(|r| CheckRecords::at(r.join("nginx-checked")))
    }

    pub(crate) fn at(dir: std::path::PathBuf) -> CheckRecords {
        CheckRecords { dir }
    }

    fn line(key: &str) -> String {
        format!("passed {key}\n")
    }

    /// Did `nginx -t` pass for `key`? Only an intact record says yes.
    pub(crate) fn passed(&self, key: &str) -> bool {
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return false;
        }
        std::fs::read_to_string(self.dir.join(key)).is_ok_and(|text| text == Self::line(key))
    }

    /// Remember that `nginx -t` passed for `key` (written atomically).
    pub(crate) fn record(&self, key: &str) -> Result<()> {
        write_atomically(&self.dir.join(key), Self::line(key))
    }
}

/// An nginx feature sitebuild relies on: the version that introduced it and, for optional
/// modules, the `./configure` flag the base's nginx must have been built with.
struct NginxNeed {
    feature: &'static str,
    since: (u32, u32, u32),
    configure_flag: Option<&'static str>,
}

const NGINX_NEEDS: &[NginxNeed] = &[
    NginxNeed {
        feature: "keepalive_min_timeout (the edge keeps keep-alive clients through a switch)",
        since: (1, 27, 4),
        configure_flag: None,
    },
    NginxNeed {
        feature: "gzip_static (build-time .gz siblings)",
        since: (0, 6, 23),
        configure_flag: Some("--with-http_gzip_static_module"),
    },
    NginxNeed {
        feature: "http2 on (the edge listener)",
        since: (1, 25, 1),
        configure_flag: Some("--with-http_v2_module"),
    },
];

/// The version in `nginx -V` output ("nginx version: nginx/1.30.6" → (1, 30, 6)).
pub(crate) fn nginx_version(v_output: &str) -> Option<(u32, u32, u32)> {
    let line = v_output
        .lines()
        .find_map(|l| l.trim().strip_prefix("nginx version: "))?;
    let (_, rest) = line.split_once('/')?;
    let mut parts = rest
        .split_whitespace()
        .next()?
        .split('.')
        .map(|n| n.parse::<u32>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

/// Check the base image's nginx (`nginx -V` output of the check container) for every feature
/// sitebuild relies on; the error names each missing feature and what provides it.
pub(crate) fn check_nginx_features(base_image: &str, v_output: &str) -> Result<()> {
    let Some(version) = nginx_version(v_output) else {
        bail!(
            "cannot tell the nginx version of base image {base_image}: `nginx -V` printed:\n{}\n\
             sitebuild needs an nginx base image (nginx >= 1.27.4) with /usr/sbin/nginx",
            v_output.trim_end()
        );
    };
    let (a, b, c) = version;
    let missing: Vec<String> = NGINX_NEEDS
        .iter()
        .filter_map(|n| {
            let (x, y, z) = n.since;
            if version < n.since {
                Some(format!("  - {}: needs nginx >= {x}.{y}.{z}", n.feature))
            } else {
                n.configure_flag
                    .filter(|flag| !v_output.contains(flag))
                    .map(|flag| format!("  - {}: needs nginx built {flag}", n.feature))
            }
        })
        .collect();
    if !missing.is_empty() {
        bail!(
            "base image {base_image} has nginx {a}.{b}.{c}, which lacks what sitebuild relies on:\n{}\n\
             Use a newer base (the default {}, or scripts/offline-base.sh for an offline one).",
            missing.join("\n"),
            crate::config::keys::DEFAULT_BASE_IMAGE
        );
    }
    Ok(())
}

/// Labels on the image: ours, plus the OCI ones.
pub(crate) fn image_labels(p: &Prepared) -> HashMap<String, String> {
    let dir = &p.config.project_dir;
    let mut l = Labels::project(p.config.image_repo())
        .with(labels::FINGERPRINT, &p.fingerprint)
        .build();
    l.extend([
        (
            "org.opencontainers.image.title".into(),
            p.config.image_repo().to_string(),
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
pub(crate) fn created_timestamp() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
    rfc3339(secs)
}

/// Seconds since the epoch → `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub(crate) fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(secs)).to_string()
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

    const V_1_30: &str = "nginx version: nginx/1.30.6\nbuilt with OpenSSL 3.6.5\n\
        configure arguments: --with-http_v2_module --with-http_gzip_static_module\n";

    #[test]
    fn with_base_equals_preparing_for_that_base() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("site")).unwrap();
        std::fs::write(d.path().join("site/index.html"), "hi").unwrap();
        let cfg = Config::load_with_env(
            d.path(),
            &crate::config::Overrides::default(),
            &Default::default(),
        )
        .unwrap();
        let gzip = prepare(&cfg, BaseSupport::default()).unwrap();
        let br = BaseSupport { brotli: true };
        let direct = prepare(&cfg, br).unwrap();
        let upgraded = gzip.clone().with_base(br).unwrap();
        assert_eq!(upgraded.fingerprint, direct.fingerprint);
        assert_eq!(upgraded.nginx_conf, direct.nginx_conf);
        assert_eq!(upgraded.base, br);
        assert_ne!(upgraded.fingerprint, gzip.fingerprint);
        assert!(direct.nginx_conf.contains("brotli_static on;"));
        assert!(!gzip.nginx_conf.contains("brotli"));
        let back = upgraded.with_base(BaseSupport::default()).unwrap();
        assert_eq!(back.fingerprint, gzip.fingerprint);
    }

    fn prepared_in(d: &std::path::Path) -> Prepared {
        let cfg =
            Config::load_with_env(d, &crate::config::Overrides::default(), &Default::default())
                .unwrap();
        prepare(&cfg, BaseSupport::default()).unwrap()
    }

    #[test]
    fn check_key_covers_what_nginx_t_reads_and_only_the_built_in_template() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("site")).unwrap();
        std::fs::write(d.path().join("site/index.html"), "hi").unwrap();
        let p = prepared_in(d.path());
        assert!(p.builtin_template);
        let key = check_key(&p, "sha256:base1").unwrap();
        assert_eq!(key.len(), 64);
        // The site's files are not read by nginx -t: another page, the same key.
        std::fs::write(d.path().join("site/index.html"), "edited").unwrap();
        let edited = prepared_in(d.path());
        assert_ne!(edited.fingerprint, p.fingerprint);
        assert_eq!(check_key(&edited, "sha256:base1"), Some(key.clone()));
        // Another base, another config: other keys.
        assert_ne!(check_key(&p, "sha256:base2"), Some(key.clone()));
        let br = p.clone().with_base(BaseSupport { brotli: true }).unwrap();
        assert_ne!(check_key(&br, "sha256:base1"), Some(key.clone()));
        // An override template may include site files: never remembered.
        std::fs::create_dir_all(d.path().join("nginx")).unwrap();
        std::fs::write(
            d.path().join("nginx").join(render::NGINX_TEMPLATE),
            render::DEFAULT_NGINX_TEMPLATE,
        )
        .unwrap();
        let custom = prepared_in(d.path());
        assert!(!custom.builtin_template);
        assert_eq!(custom.nginx_conf, edited.nginx_conf);
        assert_eq!(check_key(&custom, "sha256:base1"), None);
    }

    #[test]
    fn check_records_trust_only_an_intact_record() {
        let d = tempfile::tempdir().unwrap();
        let records = CheckRecords::at(d.path().join("nginx-checked"));
        let key = "ab".repeat(32);
        // Missing (no directory yet): run the check.
        assert!(!records.passed(&key));
        records.record(&key).unwrap();
        assert!(records.passed(&key));
        assert!(!records.passed(&"cd".repeat(32)));
        // Damaged: truncated, other content, another key's record copied over it.
        let file = d.path().join("nginx-checked").join(&key);
        for bad in [
            "",
            "passed",
            "failed\n",
            &format!("passed {}\n", "cd".repeat(32)),
        ] {
            std::fs::write(&file, bad).unwrap();
            assert!(!records.passed(&key), "{bad:?}");
        }
        // Unreadable as text, or a directory in its place.
        std::fs::write(&file, [0xff, 0xfe]).unwrap();
        assert!(!records.passed(&key));
        std::fs::remove_file(&file).unwrap();
        std::fs::create_dir(&file).unwrap();
        assert!(!records.passed(&key));
        // A key is never a path.
        assert!(!records.passed("../x"));
        assert!(!records.passed(""));
        // A record that cannot be written is an error the caller ignores.
        assert!(records.record(&key).is_err());
    }

    #[test]
    fn no_cache_ignores_the_records() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("site")).unwrap();
        std::fs::write(d.path().join("site/index.html"), "hi").unwrap();
        let p = prepared_in(d.path());
        let cfg = Config {
            no_cache: true,
            ..p.config.clone()
        };
        assert!(CheckRecords::user(&cfg).is_none());
    }

    #[test]
    fn nginx_versions_parse() {
        assert_eq!(nginx_version(V_1_30), Some((1, 30, 6)));
        assert_eq!(
            nginx_version("nginx version: nginx/1.27.4 (Ubuntu)\n"),
            Some((1, 27, 4))
        );
        assert_eq!(
            nginx_version("nginx version: openresty/1.25\n"),
            Some((1, 25, 0))
        );
        assert_eq!(nginx_version("sh: nginx: not found\n"), None);
    }

    #[test]
    fn base_features_are_checked_with_a_clear_error() {
        check_nginx_features("b", V_1_30).unwrap();
        let old = "nginx version: nginx/1.22.1\nconfigure arguments: --with-http_v2_module\n";
        let e = format!("{:#}", check_nginx_features("old:1", old).unwrap_err());
        assert!(e.contains("old:1 has nginx 1.22.1"), "{e}");
        assert!(e.contains("keepalive_min_timeout"), "{e}");
        assert!(e.contains("nginx >= 1.27.4"), "{e}");
        assert!(e.contains("gzip_static"), "{e}");
        assert!(e.contains("--with-http_gzip_static_module"), "{e}");
        assert!(
            e.contains("http2 on (the edge listener): needs nginx >= 1.25.1"),
            "{e}"
        );
        let no_v2 =
            "nginx version: nginx/1.30.0\nconfigure arguments: --with-http_gzip_static_module\n";
        let e = format!("{:#}", check_nginx_features("b", no_v2).unwrap_err());
        assert!(e.contains("needs nginx built --with-http_v2_module"), "{e}");
        assert!(!e.contains("keepalive_min_timeout"), "{e}");
        let e = format!("{:#}", check_nginx_features("x", "oops").unwrap_err());
        assert!(
            e.contains("cannot tell the nginx version of base image x"),
            "{e}"
        );
    }

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(946_684_800), "2000-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_307_696), "2026-11-22T00:34:56Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
