//! `registry-host`: the identity registry host's command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use registry_plugin_runtime::inspect::PluginSummary;
use registry_plugin_runtime::{Runtime, RuntimeConfig};

mod args;
mod benchmarks;
mod commands;
mod queue_bench;

use args::*;

/// The identity registry host: runs sandboxed provisioning plugins.
#[derive(Parser)]
#[command(name = "registry-host", version, about)]
struct Cli {
    #[command(flatten)]
    runtime: RuntimeArgs,
    #[command(subcommand)]
    command: Command,
}

/// Where state lives and how plugins are confined.
#[derive(Args)]
struct RuntimeArgs {
    /// Directory for the registry's data and caches [default: the user's
    /// data dir + /registry-host, else ./data].
    #[arg(long, global = true, env = "REGISTRY_HOST_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Memory cap per plugin call, in MiB.
    #[arg(long, global = true, default_value_t = 64, env = "REGISTRY_HOST_PLUGIN_MEMORY_MIB")]
    plugin_memory_mib: usize,
    /// Deadline per plugin call, in milliseconds.
    #[arg(long, global = true, default_value_t = 10_000, env = "REGISTRY_HOST_PLUGIN_TIMEOUT_MS")]
    plugin_timeout_ms: u64,
    /// Compile plugins on every load instead of using the precompiled cache.
    #[arg(long, global = true)]
    no_cache: bool,
    /// The most the precompiled cache keeps on disk (MiB); the least
    /// recently used plugins are evicted past it.
    #[arg(long, global = true, default_value_t = 1024, env = "REGISTRY_HOST_CACHE_MAX_MIB")]
    cache_max_mib: u64,
    /// Keep this many plugin instances' memory pre-reserved (wasmtime's
    /// pooling allocator: instantiation about twice as fast); a call beyond
    /// them waits for one to free. 0: no pool [default: the provisioning
    /// workers plus 8 for the admin UI's and commands' calls].
    #[arg(long, global = true, env = "REGISTRY_HOST_PLUGIN_POOL")]
    plugin_pool: Option<u32>,
    /// Let plugins and OAuth2 servers use plain http:// to loopback
    /// addresses (a local emulator; `serve --demo` implies it). Without it,
    /// everything is https.
    #[arg(long, global = true, env = "REGISTRY_HOST_ALLOW_INSECURE_LOOPBACK")]
    allow_insecure_loopback: bool,
    /// A PostgreSQL database shared by several hosts (key=value pairs or a
    /// postgres:// URL) instead of SQLite in the data directory. Every host
    /// on it needs the same secret key (REGISTRY_HOST_SECRET_KEY).
    #[arg(long, global = true, env = "REGISTRY_HOST_DATABASE_URL")]
    database: Option<String>,
}

impl RuntimeArgs {
    fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| {
            dirs::data_dir().map(|d| d.join("registry-host")).unwrap_or_else(|| PathBuf::from("data"))
        })
    }

    /// Whether the registry's secret key is set or already in the data dir.
    fn has_registry_key(&self) -> bool {
        std::env::var_os(registry_host::secrets::KEY_ENV).is_some() || self.data_dir().join(registry_host::secrets::KEY_FILE).is_file()
    }

    fn config(&self) -> anyhow::Result<RuntimeConfig> {
        anyhow::ensure!(self.plugin_memory_mib > 0, "--plugin-memory-mib must be at least 1");
        anyhow::ensure!(self.plugin_timeout_ms > 0, "--plugin-timeout-ms must be at least 1");
        Ok(RuntimeConfig {
            memory_limit: self.plugin_memory_mib << 20,
            deadline: Duration::from_millis(self.plugin_timeout_ms),
            cache_dir: (!self.no_cache).then(|| self.data_dir().join("cache").join("components")),
            // Artifacts are authenticated with a key derived from the
            // registry's secret key, so every process of this registry trusts
            // them and nobody else can plant native code there. Without a
            // registry here (a plugin author's `plugin test`), a key kept
            // beside the cache, so the next run does not compile again.
            cache_key: if self.no_cache {
                RuntimeConfig::default().cache_key
            } else if self.has_registry_key() {
                registry_host::secrets::SecretBox::load_or_create(&self.data_dir())?.derive("component-cache")
            } else {
                registry_host::secrets::cache_only_key(&self.data_dir())?
            },
            pooling: match self.plugin_pool {
                Some(0) => None,
                Some(n) => Some(n),
                None => Some(RuntimeConfig::pool_for(registry_host::engine::EngineConfig::default().workers)),
            },
            cache_max_bytes: self.cache_max_mib.saturating_mul(1 << 20),
            insecure_loopback: self.allow_insecure_loopback,
            ..RuntimeConfig::default()
        })
    }
}

#[derive(Subcommand)]
enum Command {
    /// Work with plugin components.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Run the registry: the admin web UI and the plugin runtime.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080", env = "REGISTRY_HOST_LISTEN")]
        listen: std::net::SocketAddr,
        /// The URL browsers use to reach this host (for Redirect URIs) [default: http://<listen>].
        #[arg(long, env = "REGISTRY_HOST_PUBLIC_URL")]
        public_url: Option<String>,
        /// A plugin component to load (repeatable); the components in
        /// <data dir>/plugins are loaded too. Nothing else is.
        #[arg(long = "plugin")]
        plugins: Vec<PathBuf>,
        /// Also start the Salesforce emulator and preconfigure a server for it.
        #[arg(long)]
        demo: bool,
        /// With --database: this host's name among the nodes, the same
        /// across its restarts [default: the host name and the listen port].
        #[arg(long, env = "REGISTRY_HOST_NODE_ID")]
        node_id: Option<String>,
        /// With --database: how long a claim holds without this host's
        /// heartbeat (another host takes the job back after it).
        #[arg(long, default_value_t = 120, env = "REGISTRY_HOST_LEASE_SECONDS")]
        lease_seconds: u64,
        /// How long a failing job keeps being retried, from its first
        /// failure, before it is failed for good.
        #[arg(long, default_value_t = 96, env = "REGISTRY_HOST_RETRY_HORIZON_HOURS")]
        retry_horizon_hours: u64,
        /// How long the provisioning log keeps an attempt (pruned hourly).
        #[arg(long, default_value_t = 90, env = "REGISTRY_HOST_LOG_RETENTION_DAYS")]
        log_retention_days: u64,
        /// Provisioning calls in flight at once (the workers). Calls wait on
        /// the network, so more than the CPUs pays against a slow service;
        /// keep it under the service's own limit (Salesforce: 25 long
        /// calls per org) [default: the CPUs, 2 to 8].
        #[arg(long, env = "REGISTRY_HOST_WORKERS")]
        workers: Option<usize>,
        /// The most people one plugin call carries. A call must finish
        /// within the plugin deadline (--plugin-timeout-ms): against a slow
        /// service, a smaller batch keeps it there (Salesforce answers 200
        /// records a call in one to three seconds) [default: 1000].
        #[arg(long, env = "REGISTRY_HOST_BATCH_MAX")]
        batch_max: Option<usize>,
        /// Mail notifications through this SMTP server:
        /// smtp://user:pass@host:587?tls=required (STARTTLS),
        /// smtps://user:pass@host:465 (TLS), or smtp://host:25 (no TLS: a
        /// relay on this machine only).
        #[arg(long, env = "REGISTRY_HOST_SMTP_URL")]
        smtp_url: Option<String>,
        /// The notifications' sender address.
        #[arg(long, env = "REGISTRY_HOST_NOTIFY_FROM")]
        notify_from: Option<String>,
        /// Who gets notifications (repeatable).
        #[arg(long = "notify-to", env = "REGISTRY_HOST_NOTIFY_TO", value_delimiter = ',')]
        notify_to: Vec<String>,
        /// POST each notification as JSON to this URL.
        #[arg(long, env = "REGISTRY_HOST_WEBHOOK_URL")]
        webhook_url: Option<String>,
        /// Sign webhook bodies: X-Registry-Signature: sha256=HMAC(secret, body).
        #[arg(long, env = "REGISTRY_HOST_WEBHOOK_SECRET", hide_env_values = true)]
        webhook_secret: Option<String>,
    },
    /// Manage admin accounts.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Manage the registry's people.
    #[command(subcommand)]
    People(PeopleCommand),
    /// Manage provisioning targets.
    #[command(subcommand)]
    Targets(TargetsCommand),
    /// Measure the host: see the README's Performance section.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Manage tokens for the JSON API (/api/v1).
    #[command(subcommand, name = "api-token")]
    ApiToken(ApiTokenCommand),
    /// Manage the secret key that seals client secrets and tokens.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// The provisioning log: every attempt across people and targets.
    #[command(subcommand)]
    Log(ExportCommand),
    /// The audit trail of admin actions.
    #[command(subcommand)]
    Audit(ExportCommand),
    /// The hosts sharing the PostgreSQL database (--database): each live
    /// node, its last heartbeat and the jobs it holds.
    Nodes,
}

/// One malloc arena for the whole process, unless the operator set
/// `MALLOC_ARENA_MAX`. glibc gives threads that allocate at once arenas of
/// their own and keeps what they free there: a bulk batch of 50,000 people,
/// made and dropped across the runtime's threads, left some 150 MiB
/// stranded (a 100,000-person Bulk API run peaked at 383 MiB, and at 234 MiB
/// with one arena; collections at 82 and 62 MiB; release build, measured).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn one_malloc_arena() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; called before
        // any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn one_malloc_arena() {}

/// This machine's name, for a node's default id.
fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_string()).filter(|h| !h.is_empty()).unwrap_or_else(|| "host".into())
}

fn main() -> ExitCode {
    one_malloc_arena();
    let cli = Cli::parse();
    let _ = commands::DATABASE.set(cli.runtime.database.clone());
    // A bench prints figures; its teardown (a scratch database dropped
    // under live pools) would otherwise warn of every closed connection.
    let default_filter = if matches!(cli.command, Command::Bench(_)) { "error" } else { "warn,registry_plugin_runtime::compile=info" };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("REGISTRY_HOST_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build();
    let result = runtime
        .context("cannot start the async runtime")
        .and_then(|rt| rt.block_on(run(cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Plugin(PluginCommand::Cache(CacheCommand::List)) => {
            let dir = cli.runtime.data_dir().join("cache").join("components");
            let entries = registry_plugin_runtime::cache::entries(&dir);
            let total: u64 = entries.iter().map(|e| e.bytes).sum();
            for e in &entries {
                let age = e.last_used.elapsed().map(|d| format!("{} min ago", d.as_secs() / 60)).unwrap_or_else(|_| "just now".into());
                println!("{:>9.1} MiB  last used {age:<16}  {}", e.bytes as f64 / (1 << 20) as f64, e.path.display());
            }
            println!("{} plugin(s), {:.1} MiB of {} MiB allowed, in {}", entries.len(), total as f64 / (1 << 20) as f64, cli.runtime.cache_max_mib, dir.display());
            Ok(())
        }
        Command::Plugin(PluginCommand::Cache(CacheCommand::Prune { all })) => {
            let dir = cli.runtime.data_dir().join("cache").join("components");
            let max = if all { 0 } else { cli.runtime.cache_max_mib.saturating_mul(1 << 20) };
            let (removed, freed) = registry_plugin_runtime::cache::prune(&dir, max, None);
            println!("removed {removed} cached plugin(s), {:.1} MiB freed", freed as f64 / (1 << 20) as f64);
            Ok(())
        }
        Command::Plugin(PluginCommand::Inspect { plugin, json }) => {
            let runtime = Runtime::new(cli.runtime.config()?)?;
            let plugin = runtime.load_file(&plugin).await?;
            let summary = PluginSummary::of(&plugin);
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print!("{}", summary.to_table());
            }
            Ok(())
        }
        Command::Plugin(PluginCommand::Test { plugin, settings, scim_url, scim_token, json }) => {
            let settings = match settings {
                Some(path) => commands::read_settings(&path)?,
                None => Vec::new(),
            };
            let mut bed = registry_plugin_testbed::TestBed::start_with(&plugin, cli.runtime.config()?).await?;
            if let (Some(url), Some(token)) = (scim_url, scim_token) {
                bed = bed.with_scim(registry_plugin_testbed::ScimService { url, token });
            }
            let report = registry_plugin_testbed::conformance::run(&bed, &settings).await;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.to_text());
            }
            anyhow::ensure!(report.failed == 0, "{} check(s) failed", report.failed);
            Ok(())
        }
        Command::Plugin(PluginCommand::Bench { plugin, iterations }) => {
            benchmarks::plugin(cli.runtime.config()?, &plugin, iterations.max(1)).await
        }
        Command::Bench(BenchCommand::Reprovision { people, plugin, latency_ms, per_record_ms, workers, bulk, database, nodes }) => {
            let latency = benchmarks::Latency { base_ms: latency_ms, per_record_ms };
            let on = match database {
                Some(url) => benchmarks::BenchStore::Postgres { url, nodes },
                None => {
                    anyhow::ensure!(nodes == 1, "--nodes needs --database: several nodes share a PostgreSQL database");
                    benchmarks::BenchStore::Sqlite
                }
            };
            benchmarks::reprovision(cli.runtime.config()?, &plugin, people, latency, workers, bulk, on).await
        }
        Command::Bench(BenchCommand::Table { people, plugin, latency_ms, per_record_ms, workers }) => {
            benchmarks::table(&plugin, people, benchmarks::Latency { base_ms: latency_ms, per_record_ms }, workers)
        }
        Command::Bench(BenchCommand::Queue { database, jobs, batch, workers, failed }) => queue_bench::queue(database.as_deref(), jobs, batch.max(1), workers.max(1), failed).await,
        Command::Bench(BenchCommand::Emulator { latency_ms, per_record_ms }) => {
            benchmarks::emulator_process(benchmarks::Latency { base_ms: latency_ms, per_record_ms })
        }
        Command::Serve { listen, public_url, mut plugins, demo, node_id, lease_seconds, retry_horizon_hours, log_retention_days, workers, batch_max, smtp_url, notify_from, notify_to, webhook_url, webhook_secret } => {
            anyhow::ensure!(workers.is_none_or(|w| (1..=256).contains(&w)), "--workers must be 1 to 256");
            anyhow::ensure!(batch_max.is_none_or(|b| (1..=100_000).contains(&b)), "--batch-max must be 1 to 100000");
            let defaults = registry_host::engine::EngineConfig::default();
            let notify = registry_host::notify::NotifyConfig { smtp_url, from: notify_from, to: notify_to, webhook_url, webhook_secret, ..defaults.notify.clone() };
            notify.check()?;
            let data_dir = cli.runtime.data_dir();
            // The registry's key first: the component cache's key derives from it.
            std::fs::create_dir_all(&data_dir).with_context(|| format!("creating the data directory {}", data_dir.display()))?;
            // A shared database's key is given, never made here.
            if cli.runtime.database.is_some() {
                registry_host::secrets::SecretBox::load_shared(&data_dir)?;
            } else {
                registry_host::secrets::SecretBox::load_or_create(&data_dir)?;
            }
            plugins.extend(registry_host::serve::installed_plugins(&data_dir)?);
            anyhow::ensure!(
                !plugins.is_empty(),
                "no plugin to load: pass --plugin PATH (e.g. target/wasm32-wasip2/release/salesforce_provisioner.wasm, built as the README says) or put components in {}",
                data_dir.join(registry_host::serve::PLUGIN_DIR).display()
            );
            let config = registry_host::serve::ServeConfig {
                data_dir,
                listen,
                public_url,
                plugins,
                runtime: {
                    let runtime = cli.runtime.config()?;
                    // An automatic pool grows with the workers.
                    let auto_pool = cli.runtime.plugin_pool.is_none();
                    match workers {
                        Some(w) if auto_pool => RuntimeConfig { pooling: Some(RuntimeConfig::pool_for(w)), ..runtime },
                        _ => runtime,
                    }
                },
                demo,
                engine: registry_host::engine::EngineConfig {
                    workers: workers.unwrap_or(defaults.workers),
                    batch_max: batch_max.unwrap_or(defaults.batch_max),
                    retry_horizon: Duration::from_secs(retry_horizon_hours.saturating_mul(3600)),
                    log_retention: Duration::from_secs(log_retention_days.max(1).saturating_mul(86_400)),
                    notify,
                    ..defaults
                },
                web: Default::default(),
                database: cli.runtime.database.clone().map(|url| registry_host::serve::Shared {
                    url,
                    // Port 0 (any free one) names no process: the process id does.
                    node: node_id.unwrap_or_else(|| match listen.port() {
                        0 => format!("{}:pid{}", host_name(), std::process::id()),
                        port => format!("{}:{port}", host_name()),
                    }),
                    lease: Duration::from_secs(lease_seconds.max(5)),
                }),
            };
            let running = registry_host::serve::start(config).await?;
            println!("Registry host running (Ctrl-C to stop)");
            println!("  open:        {}/", running.public_url);
            if let Some(path) = running.store.path() {
                println!("  database:    {}", path.display());
            }
            if running.insecure_loopback {
                println!("  warning:     plain http:// to loopback is allowed (--demo or --allow-insecure-loopback); not for production");
            }
            let mut loaded: Vec<String> = running.plugins.values().map(|p| format!("{} ({})", p.name(), p.contract())).collect();
            loaded.sort();
            println!("  plugins:     {}", loaded.join(", "));
            if running.resumed > 0 {
                println!("  resumed:     {} provisioning job(s) left unfinished by the last run", running.resumed);
            }
            match &running.created_admin {
                Some((user, Some(password))) => println!("  admin login: {user} / {password}   (created now; keep it)"),
                Some((user, None)) => println!("  admin login: {user} (created now, with REGISTRY_HOST_ADMIN_PASSWORD)"),
                None => {}
            }
            if let Some(emu) = &running.emulator {
                println!("  emulator:    login {}  instance {}", emu.login_url(), emu.instance_url());
                println!("  Salesforce login on the emulator: {} / {}", salesforce_emulator::seed::DEMO_USERNAME, salesforce_emulator::seed::DEMO_PASSWORD);
                println!("  then: OAuth2 Servers -> {} -> Obtain New Token", registry_host::serve::DEMO_SERVER);
            }
            tokio::select! {
                r = running.wait() => r,
                _ = tokio::signal::ctrl_c() => Ok(()),
            }
        }
        Command::Admin(AdminCommand::Create { username }) => {
            let store = commands::open_store(&cli.runtime.data_dir()).await?;
            let password = match std::env::var("REGISTRY_HOST_ADMIN_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    eprint!("password for {username}: ");
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line).context("reading the password from stdin")?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            registry_host::auth::create_admin(&store, &username, &password).await?;
            println!("admin {username} created in {}", store.path().map(|p| p.display().to_string()).unwrap_or_default());
            Ok(())
        }
        Command::People(PeopleCommand::Import { file }) => commands::import_people(&cli.runtime.data_dir(), &file).await,
        Command::Targets(TargetsCommand::List) => commands::list_targets(&cli.runtime.data_dir()).await,
        Command::Targets(TargetsCommand::Removals { target, confirm, discard }) => commands::removals(&cli.runtime.data_dir(), &target, confirm, discard).await,
        Command::Targets(TargetsCommand::Reprovision { target, no_wait }) => {
            commands::reprovision(&cli.runtime.data_dir(), &target, !no_wait).await
        }
        Command::ApiToken(ApiTokenCommand::Create { name, expires_in_days }) => commands::create_api_token(&cli.runtime.data_dir(), &name, expires_in_days).await,
        Command::ApiToken(ApiTokenCommand::List) => commands::list_api_tokens(&cli.runtime.data_dir()).await,
        Command::ApiToken(ApiTokenCommand::Revoke { name }) => commands::revoke_api_token(&cli.runtime.data_dir(), &name).await,
        Command::Secrets(SecretsCommand::Rotate { new_key_file }) => commands::rotate_key(&cli.runtime.data_dir(), new_key_file.as_deref()).await,
        Command::Log(ExportCommand::Export { format, days, target }) => commands::export_log(&cli.runtime.data_dir(), &format, days, target.as_deref()).await,
        Command::Audit(ExportCommand::Export { format, days, target: _ }) => commands::export_audit(&cli.runtime.data_dir(), &format, days).await,
        Command::Nodes => commands::list_nodes(&cli.runtime.data_dir()).await,
    }
}
