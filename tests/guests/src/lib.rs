//! Paths of guest components built for wasm32-wasip2 by this crate's build
//! script: the real Salesforce plugin and the hostile fixtures; and, built
//! on first use, the example plugin in other languages ([`languages`]).

use std::path::Path;

pub mod languages;
pub mod oauth_server;
pub mod scim_server;

/// The SCIM 2.0 provisioner component (release build).
pub fn scim_plugin() -> &'static Path {
    Path::new(env!("SCIM_PLUGIN_WASM"))
}

/// The Salesforce provisioner component (release build).
pub fn salesforce_plugin() -> &'static Path {
    Path::new(env!("SALESFORCE_PLUGIN_WASM"))
}

/// A plugin whose calls loop forever.
pub fn hostile_loop() -> &'static Path {
    Path::new(env!("HOSTILE_LOOP_WASM"))
}

/// A plugin whose calls allocate without bound.
pub fn hostile_alloc() -> &'static Path {
    Path::new(env!("HOSTILE_ALLOC_WASM"))
}

/// A plugin whose calls make an HTTP request, by default to a host that is
/// never on an allowlist; `validate-settings` takes the URL from its `url`
/// setting.
pub fn hostile_http() -> &'static Path {
    Path::new(env!("HOSTILE_HTTP_WASM"))
}

/// A plugin whose calls panic.
pub fn hostile_panic() -> &'static Path {
    Path::new(env!("HOSTILE_PANIC_WASM"))
}

/// A batch plugin that provisions everyone, except that a person named
/// Poison makes the whole call trap.
pub fn hostile_poison() -> &'static Path {
    Path::new(env!("HOSTILE_POISON_WASM"))
}

/// A batch plugin that makes the host hold memory its guest cap does not
/// count: header maps, long texts, aliased strings (see the fixture).
pub fn hostile_hoarder() -> &'static Path {
    Path::new(env!("HOSTILE_HOARDER_WASM"))
}

/// The example plugin of docs/writing-a-plugin.md.
pub fn example_plugin() -> &'static Path {
    Path::new(env!("EXAMPLE_PLUGIN_WASM"))
}

/// The example plugin built against the frozen `registry:provisioning@0.1.0`,
/// as a plugin released for the first contract version was.
pub fn example_plugin_v0_1_0() -> &'static Path {
    Path::new(env!("EXAMPLE_PLUGIN_V0_1_0_WASM"))
}
