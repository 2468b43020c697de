//! The command line's subcommands, as clap reads them (`main.rs` holds the
//! top level and what each command does).

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Subcommand)]
pub(crate) enum ExportCommand {
    /// Print it, newest first, as CSV or JSON.
    Export {
        /// csv or json.
        #[arg(long, default_value = "csv", value_parser = ["csv", "json"])]
        format: String,
        /// Only the last N days.
        #[arg(long)]
        days: Option<i64>,
        /// Log only: only this target (name or id).
        #[arg(long)]
        target: Option<String>,
    },
}

#[derive(Subcommand)]
pub(crate) enum CacheCommand {
    /// Each cached plugin: size and when it was last used, least recent first.
    List,
    /// Delete the least recently used until the cache is under --cache-max-mib
    /// (or everything, with --all).
    Prune {
        /// Delete every cached plugin.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum PeopleCommand {
    /// Add or update people from a CSV or JSON file (see the README for the
    /// format); every row is checked first and nothing is imported if any is bad.
    Import {
        /// FILE.csv or FILE.json.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
pub(crate) enum TargetsCommand {
    /// List targets with their queued and failed jobs.
    List,
    /// Show the removals a target holds for confirmation, and confirm or
    /// discard them.
    Removals {
        /// The target's name or id.
        target: String,
        /// Let them run.
        #[arg(long, conflicts_with = "discard")]
        confirm: bool,
        /// Drop them: the records stay in the remote system, no longer managed.
        #[arg(long)]
        discard: bool,
    },
    /// Queue everyone in a target's scope and follow the run.
    Reprovision {
        /// The target's name or id.
        target: String,
        /// Queue and return, without following the run.
        #[arg(long)]
        no_wait: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum BenchCommand {
    /// A full "Reprovision all" against the bundled emulator: people per
    /// second, API calls, peak memory.
    Reprovision {
        /// How many people.
        #[arg(long, default_value_t = 10_000)]
        people: usize,
        /// The plugin component, e.g. target/wasm32-wasip2/release/salesforce_provisioner.wasm.
        #[arg(long)]
        plugin: PathBuf,
        /// The emulator's latency model: milliseconds for every call ...
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
        /// ... and more for each record of a `composite/sobjects` call
        /// (e.g. 150 and 2, as Salesforce answers 200 records).
        #[arg(long, default_value_t = 0)]
        per_record_ms: u64,
        /// Provisioning workers [default: as `serve` runs them].
        #[arg(long)]
        workers: Option<usize>,
        /// Through Salesforce's Bulk API 2.0 (the plugin's "Bulk API from"
        /// at 2,000) instead of collections.
        #[arg(long)]
        bulk: bool,
        /// On a PostgreSQL server instead of SQLite (key=value or
        /// postgres:// URL); the bench makes and drops a database there
        /// (CREATEDB needed).
        #[arg(long)]
        database: Option<String>,
        /// With --database: how many nodes share the run, each with its
        /// own pool, engine, heartbeat and wake-ups (in this process).
        #[arg(long, default_value_t = 1)]
        nodes: usize,
    },
    /// The job queue alone (no plugin): jobs claimed and recorded per
    /// second on SQLite and, with --database, on PostgreSQL with 1 and 3
    /// nodes (in a database of its own, dropped afterwards).
    Queue {
        /// A PostgreSQL server to measure on (key=value or postgres:// URL);
        /// the bench makes and drops a database there (CREATEDB needed).
        #[arg(long)]
        database: Option<String>,
        /// How many jobs.
        #[arg(long, default_value_t = 20_000)]
        jobs: usize,
        /// Jobs per claim (the engine's batch size).
        #[arg(long, default_value_t = 200)]
        batch: usize,
        /// Workers per node.
        #[arg(long, default_value_t = 4)]
        workers: usize,
        /// Record every job failed (the path a batch of refused calls
        /// takes, a job at a time) instead of done.
        #[arg(long)]
        failed: bool,
    },
    /// The reprovision bench over both paths (collections and Bulk API)
    /// with the latency model off and on, each in a process of its own:
    /// one Markdown table.
    Table {
        /// How many people.
        #[arg(long, default_value_t = 10_000)]
        people: usize,
        /// The plugin component.
        #[arg(long)]
        plugin: PathBuf,
        /// The latency model of the "on" rows: milliseconds for every call ...
        #[arg(long, default_value_t = 150)]
        latency_ms: u64,
        /// ... and for each record of a collections call.
        #[arg(long, default_value_t = 2)]
        per_record_ms: u64,
        /// Provisioning workers [default: as `serve` runs them].
        #[arg(long)]
        workers: Option<usize>,
    },
    /// The emulator the reprovision bench runs in a process of its own
    /// (so that each process's peak memory is its own): prints its URLs,
    /// then a report for each `report` line on stdin; stops at end of input.
    #[command(hide = true)]
    Emulator {
        /// Milliseconds for every call.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
        /// Milliseconds more for each record of a collections call.
        #[arg(long, default_value_t = 0)]
        per_record_ms: u64,
    },
}

#[derive(Subcommand)]
pub(crate) enum ApiTokenCommand {
    /// Create a token; it is printed once.
    Create {
        /// What the token is for, e.g. hr-feed.
        name: String,
        /// Days until it stops working (default: never).
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// List tokens: name, state, created, last used, expiry (never the token).
    List,
    /// Revoke a token: requests with it get 401 from now on.
    Revoke {
        /// The token's name.
        name: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum SecretsCommand {
    /// Make a new secret key and re-seal every stored secret with it, in one
    /// transaction (stop `serve` first; with --database, every node).
    Rotate {
        /// With --database: where to write the new key (base64, mode 0600)
        /// for every node's REGISTRY_HOST_SECRET_KEY. On SQLite the data
        /// directory's key file is replaced instead.
        #[arg(long, value_name = "FILE")]
        new_key_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub(crate) enum AdminCommand {
    /// Create an admin; the password is read from REGISTRY_HOST_ADMIN_PASSWORD or one line of stdin.
    Create {
        /// Login name.
        username: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum PluginCommand {
    /// The precompiled plugins on disk.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Load a plugin in the sandbox and print what it says about itself.
    Inspect {
        /// The plugin component (.wasm).
        plugin: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run the conformance suite on a plugin against the bundled Salesforce
    /// emulator, in the registry's sandbox; exits non-zero on any failure.
    Test {
        /// The plugin component (.wasm).
        plugin: PathBuf,
        /// Target settings for the provisioning checks: a JSON object
        /// {"name": "value"} or `name=value` lines.
        #[arg(long)]
        settings: Option<PathBuf>,
        /// A SCIM 2.0 service's base URL, for a plugin that takes a pasted
        /// token (`static-bearer`): its checks run against that service
        /// (e.g. a local `scim2-server`) instead of the Salesforce emulator.
        #[arg(long, requires = "scim_token")]
        scim_url: Option<String>,
        /// The bearer token the SCIM service takes.
        #[arg(long, requires = "scim_url")]
        scim_token: Option<String>,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Measure loading and calling a plugin: cold compile, cached load,
    /// instantiate + one call.
    Bench {
        /// The plugin component (.wasm).
        plugin: PathBuf,
        /// Samples per figure.
        #[arg(long, default_value_t = 200)]
        iterations: u32,
    },
}
