//! The plugin's error, one case per WIT `plugin-error` case, so the logic
//! decides what the host should do without touching the bindings.

use crate::settings::FieldError;

/// What went wrong, phrased as what the host should do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The access token was refused: refresh once and retry once.
    Unauthorized(String),
    /// The refresh token is dead: an admin must obtain a new token.
    ReauthorizationRequired(String),
    /// Throttled: retry after this many ms (or the host's backoff).
    RateLimited(Option<u64>),
    /// The org's daily API requests are used up: (used, limit) if known.
    QuotaExhausted(Option<(u64, u64)>),
    /// A setting or the OAuth2 server configuration is wrong.
    InvalidConfig(FieldError),
    /// The person cannot be provisioned as they are.
    InvalidPerson(FieldError),
    /// The remote system refused.
    Remote {
        /// Salesforce's error code (e.g. `invalid_grant`, `UNABLE_TO_LOCK_ROW`).
        code: String,
        /// Its message.
        message: String,
        /// HTTP status, if there was a response.
        status: Option<u16>,
        /// Whether retrying may help.
        retryable: bool,
    },
    /// No usable answer came back.
    Transport(String),
}

impl Error {
    /// An `invalid-config` error for `field`.
    pub fn config(field: &str, message: impl Into<String>) -> Self {
        Error::InvalidConfig(FieldError::new(field, message))
    }
}
