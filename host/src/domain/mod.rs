//! The registry's domain as plain types, with no SQL and no web: people,
//! OAuth2 servers, provisioning targets, jobs and runs.

pub mod group;
pub mod job;
pub mod person;
pub mod server;
pub mod target;

pub use group::{Group, GroupAction, GroupJob};
pub use job::{Action, Done, Job, Run};
pub use person::{Address, Email, FieldProblem, Identifier, ImportStats, MAX_VALUE, Name, Person, Role, Status, looks_like_email, new_id, valid_id};
pub use server::{Saved, Server, ServerInput, TokenStatus, grant_label, grant_parse, grant_str};
pub use target::{HistoryEntry, ProvState, Scope, Target, TargetInput, TargetState, held_because};

/// `2026-11-24 16:03:18 UTC`.
pub fn format_time(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    at.format(time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC")).expect("every field is in the description")
}
