//! The identity registry host: loads provisioning plugins (WebAssembly
//! components targeting `wit/`) into a wasmtime sandbox and calls them.
//!
//! - [`runtime`]: the engine, plugin loading and the per-call sandbox;
//! - [`cache`]: precompiled components on disk;
//! - [`limits`]: the per-call memory cap;
//! - [`http_policy`]: which outgoing HTTP requests a call may make;
//! - [`http_client`]: how the allowed ones are sent (kept-alive connections);
//! - [`error`]: how a failed call is reported;
//! - [`sanitize`]: plugin text made safe for logs;
//! - [`inspect`]: a plugin's description for people and scripts;
//! - [`bindings`]: the host side of the WIT contract;
//! - [`store`]: the SQLite database (servers, people, targets, the job queue);
//! - [`oauth`]: obtaining, refreshing and revoking tokens through plugins;
//! - [`people`]: the registry's people, their changes and import formats;
//! - [`provisioning`]: the engine that drains the job queue through plugins;
//! - [`web`]: the admin UI and the JSON API; [`serve`] puts it all together;
//! - [`testing`]: a test bed for plugin authors; [`conformance`]: `plugin test`.

pub mod auth;
pub mod bindings;
pub mod cache;
pub mod conformance;
pub mod error;
pub mod http_client;
pub mod http_policy;
pub mod inspect;
pub mod limits;
pub mod oauth;
pub mod people;
pub mod provisioning;
pub mod runtime;
pub mod sanitize;
pub mod secrets;
pub mod serve;
pub mod store;
pub mod testing;
pub mod web;

pub use error::{CallError, Failure, LoadError};
pub use http_policy::HttpAllowlist;
pub use runtime::{Plugin, Runtime, RuntimeConfig};
