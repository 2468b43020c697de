//! The sandbox for registry provisioning plugins.
//!
//! A provisioning plugin is a WebAssembly component of the
//! `registry:provisioning` contract (`wit/` in this repository). This crate
//! loads such components into wasmtime and calls them, each call in a fresh
//! store under a memory cap, a wall-clock deadline and an HTTP allowlist. It
//! has no database, no web server and no opinion about where people come
//! from: a registry host embeds it and supplies those.
//!
//! - [`Runtime`] ([`engine`]): one wasmtime engine per process, components
//!   compiled once and cached precompiled ([`cache`]), the HTTP sender the
//!   plugins' requests go through ([`http`]).
//! - [`Plugin`] ([`plugin`]): a loaded component and its typed calls, in the
//!   latest contract's types whatever version the component targets
//!   ([`contract`]).
//! - [`HttpAllowlist`] ([`http::policy`]): which origins one call may reach.
//! - [`CallError`] ([`error`]): why a call did not complete (deadline, memory
//!   cap, forbidden request, panic, trap), naming the plugin and the export.
//! - [`RequestSource`] ([`batch`]): a batch call's requests, read by the
//!   plugin a page at a time.
//! - [`inspect`]: a plugin's description for people and scripts.
//!
//! # Example
//!
//! An embedder loads a component and asks it to validate target settings,
//! allowing it no HTTP at all:
//!
//! ```no_run
//! use registry_plugin_runtime::{HttpAllowlist, Runtime, RuntimeConfig};
//!
//! # async fn example() -> anyhow::Result<()> {
//! let runtime = Runtime::new(RuntimeConfig::default())?;
//! let plugin = runtime.load_file("salesforce_provisioner.wasm".as_ref()).await?;
//! println!("{} {} (contract {})", plugin.name(), plugin.metadata().version, plugin.contract());
//!
//! let settings = plugin.settings_with_defaults(&[("object".into(), "Contact".into())]);
//! match plugin.validate_settings(&settings, &HttpAllowlist::none()).await? {
//!     Ok(()) => println!("settings accepted"),
//!     Err(problems) => {
//!         for p in problems {
//!             println!("{}: {}", p.field, p.message);
//!         }
//!     }
//! }
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

pub mod batch;
mod call;
pub mod cache;
pub mod contract;
pub mod engine;
pub mod error;
pub mod http;
pub mod inspect;
pub mod limits;
pub mod plugin;
pub mod sanitize;

pub use contract::{ContractVersion, latest};
/// The wasmtime this runtime is built on, for embedders that need its types.
pub use wasmtime;
pub use engine::{Runtime, RuntimeConfig};
pub use error::{CallError, Failure, LoadError, StderrTail};
pub use http::policy::{HostPattern, HttpAllowlist, Origin, PolicyError};
pub use batch::RequestSource;
pub use plugin::{BatchResult, LoadStats, Plugin};
