//! sitebuild: turn a static site into a running, hardened nginx container.
//!
//! The modules follow the pipeline (see ARCHITECTURE.md): [`cli`] (flags) → `config` (validated
//! settings) → `site` (scan + fingerprint) → `render` (nginx.conf) → `context` (deterministic
//! tar) → `image` (build once per fingerprint) → `engine` (the only module that talks to
//! Docker) → `deploy` (start, health gate, switch, per target). [`commands`] wires them together,
//! one file per subcommand; `watch` drives the same stages on every change.

pub(crate) mod acme;
pub(crate) mod changed;
pub mod ci;
pub mod cli;
pub mod commands;
pub(crate) mod config;
pub(crate) mod context;
pub(crate) mod deploy;
pub(crate) mod engine;
pub(crate) mod holder;
pub mod http;
pub(crate) mod image;
pub(crate) mod image_archive;
pub(crate) mod init;
pub mod k8s;
pub(crate) mod layout;
pub(crate) mod located;
pub(crate) mod naming;
pub(crate) mod precompress;
pub(crate) mod registry;
pub(crate) mod render;
pub(crate) mod report;
pub(crate) mod rules;
pub(crate) mod site;
pub(crate) mod skew;
pub(crate) mod tls;
pub(crate) mod ui;
pub(crate) mod watch;

/// The tool's version; part of every fingerprint so a new sitebuild rebuilds images.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");
