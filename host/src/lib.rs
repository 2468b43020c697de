//! The identity registry host: people, OAuth2 servers and provisioning
//! targets in a database, the engine that provisions them through sandboxed
//! plugins, the admin web UI and the JSON API. The sandbox itself is the
//! `registry-plugin-runtime` crate.
//!
//! - [`domain`]: people, servers, targets, jobs and runs as plain types;
//! - [`import`]: the CSV and JSON import formats;
//! - [`store`]: the SQLite database, one module per aggregate;
//! - [`secrets`]: encryption at rest and random tokens;
//! - [`auth`]: admins and their sessions;
//! - [`oauth`]: obtaining, refreshing and revoking tokens through plugins;
//! - [`engine`]: the engine that drains the job queue through plugins;
//! - [`web`]: the admin UI and the JSON API; [`serve`] puts it all together.

pub mod auth;
pub mod certificates;
pub mod domain;
pub mod engine;
pub mod import;
pub mod notify;
pub mod oauth;
pub mod secrets;
pub mod serve;
pub mod store;
pub mod web;
