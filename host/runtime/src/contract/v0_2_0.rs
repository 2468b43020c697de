//! Bindings for `registry:provisioning@0.2.0` (`wit/0.2.0`), the latest
//! version: the types the rest of the host uses. wasi:http and wasi:io come
//! from the wasmtime-wasi crates, so their resources are the same types the
//! wasi-http implementation uses.
#![allow(missing_docs)] // generated; the WIT's own doc comments carry over

wasmtime::component::bindgen!({
    path: "../../wit/0.2.0",
    world: "provisioner",
    imports: {
        default: async,
        // A source that cannot read stops the call.
        "registry:provisioning/batch-input.[method]batch-requests.len": async | trappable,
        "registry:provisioning/batch-input.[method]batch-requests.read": async | trappable,
        "registry:provisioning/batch-input.[drop]batch-requests": async | trappable,
    },
    exports: { default: async },
    additional_derives: [PartialEq, Eq],
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        "registry:provisioning/batch-input.batch-requests": crate::batch::BatchRequests,
    },
});

pub use exports::registry::provisioning::oauth2_server;
pub use exports::registry::provisioning::plugin_info;
pub use exports::registry::provisioning::provisioning_target;
pub use registry::provisioning::batch_input;
pub use registry::provisioning::log;
/// The contract's data types (the WIT `registry-types` interface).
pub use registry::provisioning::registry_types as types;
