//! Dostup: the backend for photo-backed field accessibility audits.
//!
//! Start reading at [`http::app`] (the router), then a resource module such
//! as [`http::institutions`], which calls the repository functions in [`db`].
//! [`server`] wires configuration, database and router together for the
//! binary and for tests.

pub mod audit;
pub mod auth;
pub mod catalogs;
pub mod checklist;
pub mod config;
pub mod db;
pub mod demo;
pub mod domain;
pub mod evidence;
pub mod http;
pub mod maintenance;
pub mod rating;
pub mod server;
pub mod storage;

pub use http::{AppState, app};

/// Version of this build, reported by `dostup version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
