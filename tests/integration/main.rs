//! The integration tests, one binary with a module per area. Real-engine tests take their
//! area's turn on the engine first (`common::engine(module_path!())`), so areas do not overlap.

mod common;

mod acme;
mod architecture;
mod bad_input;
mod cli;
mod compression;
mod deploy;
mod engine_up;
mod hostile;
mod init;
mod k8s;
mod layers;
mod pipelines;
mod preview;
mod registry;
mod reliability;
mod remote;
mod rules;
mod shared_edge;
mod skew;
mod soak;
mod ssh;
mod swarm;
mod tls;
mod tool_image;
mod watch;
