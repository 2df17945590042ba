//! sitebuild: turn a static site into a running, hardened nginx container.
//!
//! The modules follow the pipeline: [`cli`] (flags) → [`config`] (validated settings) →
//! [`site`] (scan + fingerprint) → [`render`] (nginx.conf) → [`context`] (deterministic tar) →
//! [`engine`] (the only module that talks to Docker) → [`deploy`] (start, health gate, replace).
//! [`commands`] wires them together for each subcommand.

pub mod changed;
pub mod ci;
pub mod cli;
pub mod commands;
pub mod config;
pub mod context;
pub mod deploy;
pub mod engine;
pub mod http;
pub mod image;
pub mod k8s;
pub mod livereload;
pub mod located;
pub mod registry;
pub mod render;
pub mod report;
pub mod site;
pub mod ui;
pub mod watch;

/// The tool's version; part of every fingerprint so a new sitebuild rebuilds images.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
