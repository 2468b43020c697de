//! The Salesforce provisioner: a plugin for the identity registry, built as a
//! WebAssembly component against the `registry:provisioning` WIT package.
//!
//! The logic lives in plain modules ([`settings`], [`template`], [`oauth`],
//! [`http`], [`metadata`])
//! that `cargo test` runs natively; [`component`] is the thin WIT glue.

pub mod component;
pub mod connection;
pub mod error;
pub mod http;
pub mod jwt;
pub mod mapping;
pub mod metadata;
pub mod oauth;
pub mod person;
pub mod provision;
pub mod settings;
pub mod template;
pub mod wasi_transport;
