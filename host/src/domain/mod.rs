//! The registry's domain as plain types, with no SQL and no web: people,
//! OAuth2 servers, provisioning targets, jobs and runs.

pub mod job;
pub mod person;
pub mod server;
pub mod target;

pub use job::{Action, Done, Job, Run};
pub use person::{Address, Email, FieldProblem, Identifier, ImportStats, MAX_VALUE, Name, Person, Role, Status, looks_like_email, new_id, valid_id};
pub use server::{Saved, Server, ServerInput, TokenStatus, grant_parse, grant_str};
pub use target::{HistoryEntry, ProvState, Scope, Target, TargetInput, TargetState};
