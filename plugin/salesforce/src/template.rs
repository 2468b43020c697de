//! Value templates (`{email}`, `{identifier:eppn}@example.org`): the shared
//! guest crate's.

pub use registry_guest::template::*;
