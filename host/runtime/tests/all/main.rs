//! The runtime's integration tests, in one binary (each test binary links
//! wasmtime, which costs link time).

mod contracts;
mod host_memory;
mod sandbox;
