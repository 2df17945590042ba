//! Shared helpers for the real-engine integration tests, by concern: [`engine`] (the engine,
//! base images, `docker` helpers, one area at a time), [`project`] (a fixture project and the
//! binary run on it, cleaned up by label), [`load`] (HTTP load during deploys), [`pebble`] (an ACME server on loopback), [`tools`]
//! (installed tools, a registry on loopback).

mod engine;
mod load;
mod pebble;
mod project;
mod tools;

pub(crate) use engine::*;
pub(crate) use load::*;
pub(crate) use pebble::*;
pub(crate) use project::*;
pub(crate) use sitebuild::http::{Response, get};
pub(crate) use tools::*;
