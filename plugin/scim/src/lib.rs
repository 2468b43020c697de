//! The SCIM 2.0 provisioner: people become SCIM Users and registry groups
//! SCIM Groups in any service that speaks RFC 7643/7644, authorized by a
//! bearer token an admin pastes or by OAuth2 client credentials
//! ([`token`]).
//!
//! The logic lives in plain modules ([`settings`], [`user`], [`scim`],
//! [`groups`]) that `cargo test` runs natively over a scripted transport;
//! [`component`] is the thin WIT glue.

pub mod bulk;
pub mod component;
pub mod groups;
pub mod scim;
pub mod settings;
pub mod token;
pub mod user;

/// What a provisioning call answers: the remote record, one line for the
/// history, and whether the record is out of the service now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The SCIM resource (`User` or `Group`, its id); none once deleted.
    pub remote: Option<(String, String)>,
    /// What happened.
    pub summary: String,
    /// Whether the person (or group) is out: deleted or deactivated.
    pub removed: bool,
}
