//! The image contract: where things are inside a site image and how its nginx runs. The
//! renderer, the build context, the engine and the deploy all read these, so a path or an
//! argument is changed here once.

/// The non-root user nginx runs as (uid/gid 101, like the official image).
pub(crate) const RUN_AS: &str = "101:101";

/// The group of [`RUN_AS`]: secrets in a container are readable by it only.
pub(crate) const RUN_AS_GID: u64 = 101;

/// Where the context's `sitebuild/` directory lands in the image (site + config, one layer).
pub(crate) const IMAGE_DIR: &str = "/usr/share/sitebuild";

/// Where the site files live inside the image.
pub(crate) const SITE_ROOT: &str = "/usr/share/sitebuild/html";

/// Where the rendered config lives inside the image.
pub(crate) const CONF_PATH: &str = "/usr/share/sitebuild/nginx.conf";

/// sitebuild's own `mime.types` in the image (the config includes this path).
pub(crate) const MIME_TYPES_PATH: &str = "/usr/share/sitebuild/mime.types";

/// The base image's nginx binary (the entrypoint of every container sitebuild runs).
pub(crate) const NGINX: &str = "/usr/sbin/nginx";

/// Port nginx listens on inside the container (non-root, so above 1024).
pub(crate) const CONTAINER_PORT: u16 = 8080;

/// nginx finishes in-flight requests on SIGQUIT (graceful stop).
pub(crate) const STOP_SIGNAL: &str = "SIGQUIT";

/// The only writable place in a container: a tmpfs.
pub(crate) const TMPFS: &str = "/tmp";

/// Size of a site container's [`TMPFS`] (nginx's temp paths; a static site writes nothing
/// else), locally and in a swarm service. The edge's is larger: it holds its cache.
pub(crate) const SITE_TMPFS_BYTES: i64 = 64 * 1024 * 1024;

/// Where a base image with brotli keeps its static module (Debian's
/// `libnginx-mod-http-brotli-static`, and `scripts/offline-base.sh`'s image).
pub(crate) const BROTLI_STATIC_MODULE: &str =
    "/usr/lib/nginx/modules/ngx_http_brotli_static_module.so";

/// mtime of generated entries (Dockerfile, nginx.conf, directories): 2000-01-01T00:00:00Z.
pub(crate) const FIXED_MTIME: u64 = 946_684_800;

/// Arguments that serve `conf` in the foreground.
pub(crate) fn nginx_args(conf: &str) -> Vec<String> {
    ["-e", "stderr", "-c", conf, "-g", "daemon off;"]
        .map(String::from)
        .to_vec()
}

/// Arguments that serve the site in the foreground.
pub(crate) fn serve_args() -> Vec<String> {
    nginx_args(CONF_PATH)
}

/// Arguments that test the config (`nginx -t`), quietly: the serving arguments plus `-t -q`,
/// so a config that clashes with them (e.g. its own `daemon` directive) fails here. `-V` first
/// prints the base's nginx version and configure flags (nginx goes on to test the config when
/// `-t` is also given), which `image::check_nginx_features` reads: no extra container.
pub(crate) fn check_args() -> Vec<String> {
    let mut args = vec!["-V".to_string()];
    args.extend(serve_args());
    args.extend(["-t", "-q"].map(String::from));
    args
}
