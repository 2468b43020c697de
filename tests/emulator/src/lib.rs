//! An offline Salesforce emulator: a login host with the OAuth 2.0 endpoints
//! (a real login form and consent page included) and instance hosts with the
//! REST API, each on its own loopback port, behaving as
//! `../shared/reference/salesforce-api.md` documents Salesforce: the same
//! response fields, error bodies, limits header and id formats. Fault
//! switches (expired tokens, rotation, revocation, instance migration,
//! throttling, failures, latency) and inspection (records, request log)
//! are available over HTTP (`/_emulator/...`) and through [`Emulator`].
//!
//! ```no_run
//! use salesforce_emulator::{Emulator, Seed};
//! let sf = Emulator::start(Seed::demo(vec!["http://127.0.0.1:8080/callback".into()])).unwrap();
//! println!("login host: {}", sf.login_url());
//! ```
//!
//! Where Salesforce's documentation leaves a detail open, the code says
//! "unconfirmed" beside the choice made.

pub mod admin;
pub mod bulk;
pub mod describe;
pub mod errors;
pub mod fields;
pub mod ids;
pub mod jwt;
pub mod oauth;
pub mod pages;
pub mod records;
pub mod rest;
pub mod schema;
pub mod seed;
pub mod server;
pub mod soql;
pub mod state;

pub use admin::{Fault, FaultError};
pub use seed::Seed;
pub use server::{AppInfo, Emulator, Options, OrgInfo};
pub use state::{FailKind, LoggedRequest, RefreshStatus};
