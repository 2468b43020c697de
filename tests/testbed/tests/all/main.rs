//! The test bed's integration tests, in one binary (each test binary links
//! wasmtime, which costs link time).

mod plugin_oauth;
mod testbed;
mod wit_contract;
