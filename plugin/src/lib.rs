//! The Salesforce provisioner: a plugin for the identity registry, built as a
//! WebAssembly component against the `registry:provisioning` WIT package.
//!
//! The logic lives in plain modules ([`settings`], [`template`], [`metadata`])
//! that `cargo test` runs natively; [`component`] is the thin WIT glue.

pub mod component;
pub mod metadata;
pub mod settings;
pub mod template;
