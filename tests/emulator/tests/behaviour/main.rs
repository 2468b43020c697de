//! The emulator's own behaviour tests: every documented Salesforce behaviour
//! it claims, pinned over real HTTP (and, in `jsforce`, through a
//! third-party client library).

mod bulk;
mod faults;
mod jsforce;
mod jwt;
mod oauth;
mod query;
mod rest;
mod support;
