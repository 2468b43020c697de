//! Plugins' outgoing HTTP: which requests a call may make ([`policy`]) and
//! how the allowed ones are sent ([`sender`]).

pub mod policy;
pub mod sender;
