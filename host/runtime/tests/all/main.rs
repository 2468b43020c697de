//! The runtime's integration tests, in one binary (each test binary links
//! wasmtime, which costs link time).

mod batch_input;
mod contracts;
mod host_memory;
mod sandbox;
