//! The transport the component sends through: wasi:http, from the shared
//! guest crate.

pub use registry_guest::wasi::WasiTransport;
