//! The host's integration tests, in one binary (each test binary links
//! wasmtime, which costs link time).

mod admin_security;
mod admin_tokens;
mod batch_splitting;
mod browser;
mod bulk_api;
mod cli;
mod common;
mod concurrent_writers;
mod conformance;
mod crash;
mod groups;
mod instance_urls;
mod jwt_bearer;
mod no_secrets;
mod notifications;
mod operations;
mod pg;
mod postgres_calls;
mod postgres_cli;
mod postgres_finishes;
mod postgres_order;
mod postgres_people;
mod postgres_web;
mod postgres_queue;
mod postgres_serve;
mod postgres_servers;
mod postgres_tls;
mod provisioning;
mod real_org;
mod scim;
mod store_backends;
mod web;
