//! A registry person as the plugin's logic sees it: the shared guest
//! crate's.

pub use registry_guest::person::*;
