//! `registry-host serve`: opens the store, loads plugins, makes sure an admin
//! exists, optionally starts the Salesforce emulator with a ready server
//! (`--demo`), and serves the admin UI. Tests start it in-process.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use salesforce_emulator::seed::{DEMO_CONSUMER_KEY, DEMO_CONSUMER_SECRET};
use salesforce_emulator::{Emulator, Seed};

use registry_plugin_runtime::latest::types::GrantType;
use crate::oauth::OAuth;
use crate::domain::Scope;
use crate::engine::{Engine, EngineConfig};
use registry_plugin_runtime::{HostPattern, Origin, Plugin, Runtime, RuntimeConfig};
use crate::secrets::SecretBox;
use crate::domain::{ServerInput, TargetInput};
use crate::store::Store;
use crate::web::{self, App};
use crate::auth;

/// Name of the OAuth2 server `--demo` creates.
pub const DEMO_SERVER: &str = "Salesforce (demo emulator)";

/// Name of the provisioning target `--demo` creates when there is none.
pub const DEMO_TARGET: &str = "Salesforce Contacts (demo)";

/// The file in the data directory a serving host holds locked.
pub const LOCK_FILE: &str = "serve.lock";

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Data directory (database, key file, caches).
    pub data_dir: PathBuf,
    /// Listen address; port 0 picks a free one.
    pub listen: SocketAddr,
    /// URL browsers use to reach this host (default `http://<listen>`).
    pub public_url: Option<String>,
    /// Plugin components to load.
    pub plugins: Vec<PathBuf>,
    /// Sandbox settings.
    pub runtime: RuntimeConfig,
    /// Start the emulator and preconfigure a server (and, if there is none,
    /// a target) for it.
    pub demo: bool,
    /// How the provisioning engine works.
    pub engine: EngineConfig,
    /// Timeouts and the connection cap of the web server.
    pub web: web::WebLimits,
    /// A PostgreSQL database shared with other nodes, instead of SQLite in
    /// the data directory.
    pub database: Option<Shared>,
}

/// Serving as one node of several on one PostgreSQL database.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The connection string (key=value pairs or a postgres:// URL).
    pub url: String,
    /// This node's id, stable across its restarts (its earlier claims are
    /// released when it starts again).
    pub node: String,
    /// How long a claim holds without a heartbeat.
    pub lease: std::time::Duration,
}

/// A running host.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its public URL.
    pub public_url: String,
    /// The store.
    pub store: Arc<Store>,
    /// The provisioning engine.
    pub engine: Arc<Engine>,
    /// Jobs a previous process left unfinished, resumed at start.
    pub resumed: usize,
    /// The emulator, with `--demo`.
    pub emulator: Option<Emulator>,
    /// The loaded plugins, by name.
    pub plugins: Arc<HashMap<String, Plugin>>,
    /// Whether plain http to loopback is allowed (`--demo` or the operator's opt-in).
    pub insecure_loopback: bool,
    /// An admin created at start: (username, password if it was generated
    /// here; an operator's own password is never echoed).
    pub created_admin: Option<(String, Option<String>)>,
    server: Option<tokio::task::JoinHandle<()>>,
    /// Held while serving: one host per data directory.
    _lock: Option<std::fs::File>,
    _upkeep: Option<crate::store::postgres::Upkeep>,
}

impl Running {
    /// Waits until the server stops (it normally does not).
    pub async fn wait(mut self) -> anyhow::Result<()> {
        match self.server.take() {
            Some(h) => h.await.context("the web server stopped"),
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(h) = &self.server {
            h.abort();
        }
    }
}

/// The data directory's plugin folder: with `--plugin` paths, the only
/// place plugins are loaded from. A plugin gets client secrets and tokens,
/// so it is never picked up from wherever the process happens to run.
pub const PLUGIN_DIR: &str = "plugins";

/// The `.wasm` components in `<data_dir>/plugins`, sorted by name (none if
/// the folder does not exist).
pub fn installed_plugins(data_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let dir = data_dir.join(PLUGIN_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading the plugin folder {}", dir.display())),
    };
    let mut found = Vec::new();
    for entry in entries {
        let path = entry.with_context(|| format!("reading the plugin folder {}", dir.display()))?.path();
        if path.extension().is_some_and(|e| e == "wasm") && path.is_file() {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// Starts serving; returns once the listener is bound.
pub async fn start(config: ServeConfig) -> anyhow::Result<Running> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    let secrets = if config.database.is_some() { SecretBox::load_shared(&config.data_dir)? } else { SecretBox::load_or_create(&config.data_dir)? };
    let (store, lock) = match &config.database {
        Some(shared) => {
            anyhow::ensure!(
                shared.lease > config.runtime.deadline,
                "--lease-seconds ({} s) must be longer than the plugin deadline (--plugin-timeout-ms, {} ms): a plugin call must never outlive the claim it runs under",
                shared.lease.as_secs(),
                config.runtime.deadline.as_millis()
            );
            anyhow::ensure!(
                !config.demo,
                "--demo runs the bundled emulator for one machine and is refused with a shared PostgreSQL database; serve without --database to try it"
            );
            let pg = crate::store::postgres::PgStore::connect(&shared.url, &shared.node, secrets, crate::store::postgres::PgConfig { lease: shared.lease, exclusive_id: true, ..Default::default() })
                .await
                .context("connecting to the PostgreSQL database (--database)")?;
            (Arc::new(Store::from(pg)), None)
        }
        None => {
            // One process per data directory (SQLite).
            let lock_path = config.data_dir.join(LOCK_FILE);
            let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).with_context(|| format!("opening {}", lock_path.display()))?;
            if lock.try_lock().is_err() {
                anyhow::bail!("another registry-host is already serving {}; stop it first or use another --data-dir", config.data_dir.display());
            }
            (Arc::new(Store::open(&config.data_dir, secrets)?), Some(lock))
        }
    };

    anyhow::ensure!(
        !config.plugins.is_empty(),
        "no plugin to load: build the Salesforce plugin with `cargo build --release --target wasm32-wasip2 -p salesforce-provisioner` and pass --plugin PATH, or put components in the data directory's plugins folder"
    );
    // The demo's emulator speaks plain http on loopback; otherwise that is
    // the operator's explicit choice (--allow-insecure-loopback).
    let mut runtime_config = config.runtime.clone();
    runtime_config.insecure_loopback |= config.demo;
    if runtime_config.insecure_loopback {
        tracing::warn!("plain http:// to loopback addresses is allowed for plugins and OAuth2 servers (--demo or --allow-insecure-loopback); never use this in production");
    }
    let runtime = Runtime::new(runtime_config.clone())?;
    let mut plugins: HashMap<String, Plugin> = HashMap::new();
    for path in &config.plugins {
        let plugin = runtime.load_file(path).await.with_context(|| format!("loading plugin {}", path.display()))?;
        let name = plugin.name().to_string();
        anyhow::ensure!(!plugins.contains_key(&name), "two plugins are named '{name}' ({})", path.display());
        plugins.insert(name, plugin);
    }
    let mut names: Vec<String> = plugins.keys().cloned().collect();
    names.sort();

    let listener = tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let public_url = config.public_url.clone().unwrap_or_else(|| format!("http://{addr}")).trim_end_matches('/').to_string();
    let plugins = Arc::new(plugins);
    let oauth = OAuth::new(store.clone(), plugins.clone(), &public_url, runtime_config.insecure_loopback);

    let created_admin = bootstrap_admin(&store, config.demo).await?;
    let emulator = if config.demo { Some(demo(&store, &oauth, &names).await?) } else { None };

    anyhow::ensure!(
        config.engine.retry_horizon > config.engine.backoff_base,
        "--retry-horizon-hours: the horizon ({:?}) is not longer than the first retry delay ({:?}), so no job would ever be retried; give a horizon of hours or days (the default is 96)",
        config.engine.retry_horizon,
        config.engine.backoff_base
    );
    let engine = Engine::new(store.clone(), plugins.clone(), oauth.clone(), config.engine.clone());
    engine.refresh_removal_effects().await?;
    engine.refresh_group_targets().await?;
    let resumed = engine.start().await?;
    // Sharing the database: the heartbeat and rescue, and wake-ups from
    // the other nodes.
    let upkeep = match (store.postgres(), &config.database) {
        (Some(pg), Some(shared)) => {
            let wakeups = pg.start_wakeups(&shared.url).await.context("listening for the other nodes' wake-ups")?;
            engine.share_wakeups(wakeups);
            Some(pg.start_upkeep())
        }
        _ => None,
    };
    let app = App::new(store.clone(), oauth, plugins.clone(), engine.clone(), public_url.starts_with("https://")).allow_hosts(host_names(&public_url, addr));
    let router = web::router(Arc::new(app));
    let server = tokio::spawn(web::serve(listener, router, config.web.clone()));
    Ok(Running { addr, public_url, store, engine, resumed, emulator, plugins, insecure_loopback: runtime_config.insecure_loopback, created_admin, server: Some(server), _lock: lock, _upkeep: upkeep })
}

/// The `Host` values the web server answers: the public URL's, the listen
/// address itself (a reverse proxy may pass that on), and on loopback its
/// other spellings. Any other name (a DNS name rebound to this address by
/// a page on another site) is refused.
fn host_names(public_url: &str, addr: SocketAddr) -> Vec<String> {
    let authority = public_url.split_once("://").map_or(public_url, |(_, rest)| rest);
    let authority = authority.split(['/', '?', '#']).next().unwrap_or("");
    let mut hosts = vec![authority.to_string(), addr.to_string()];
    if addr.ip().is_loopback() {
        let port = addr.port();
        hosts.extend([format!("localhost:{port}"), format!("127.0.0.1:{port}"), format!("[::1]:{port}")]);
    }
    hosts.sort();
    hosts.dedup();
    hosts
}

/// Creates the first admin from `REGISTRY_HOST_ADMIN_USER` /
/// `REGISTRY_HOST_ADMIN_PASSWORD`, or, for the demo, with a random password.
async fn bootstrap_admin(store: &Store, demo: bool) -> anyhow::Result<Option<(String, Option<String>)>> {
    if store.admin_count().await? > 0 {
        return Ok(None);
    }
    // With several nodes starting at once, one makes it (below).
    let user = std::env::var("REGISTRY_HOST_ADMIN_USER").unwrap_or_else(|_| "admin".into());
    let (password, generated) = match std::env::var("REGISTRY_HOST_ADMIN_PASSWORD") {
        Ok(p) => (p, false),
        Err(_) if demo => (auth::random_password(), true),
        Err(_) => {
            tracing::warn!("no admin exists yet: create one with `registry-host admin create NAME` or set REGISTRY_HOST_ADMIN_PASSWORD");
            return Ok(None);
        }
    };
    if auth::create_first_admin(store, &user, &password).await.context("creating the first admin")?.is_none() {
        return Ok(None);
    }
    Ok(Some((user, generated.then_some(password))))
}

/// Starts the emulator and points a server at it (re-pointed on every start,
/// since the emulator's ports and tokens are new each time).
async fn demo(store: &Store, oauth: &OAuth, plugins: &[String]) -> anyhow::Result<Emulator> {
    let emulator = Emulator::start(Seed::demo(vec![])).context("starting the Salesforce emulator")?;
    let existing = store.servers().await?.into_iter().find(|s| s.name == DEMO_SERVER);
    let input = ServerInput {
        name: DEMO_SERVER.into(),
        description: "Points at the bundled Salesforce emulator; no Salesforce account needed.".into(),
        plugin: plugins.iter().find(|p| *p == "salesforce").cloned().unwrap_or_else(|| plugins[0].clone()),
        server_url: emulator.login_url(),
        client_id: DEMO_CONSUMER_KEY.into(),
        client_secret: Some(DEMO_CONSUMER_SECRET.into()),
        grant_type: GrantType::AuthorizationCode,
        scope: Some("api refresh_token".into()),
        // The emulator's instance host, and only it.
        api_hosts: vec![HostPattern::exact(&Origin::of_url(&emulator.instance_url())?).to_string()],
        jwt_subject: None,
        token_url: None,
    };
    let id = match existing {
        Some(s) => store.update_server(s.id, &input).await?.id,
        None => store.create_server(&input).await?,
    };
    emulator.add_callback_url(DEMO_CONSUMER_KEY, &oauth.redirect_uri(id)).map_err(anyhow::Error::msg)?;
    if store.targets().await?.is_empty() {
        store.create_target(&TargetInput {
            name: DEMO_TARGET.into(),
            plugin: input.plugin.clone(),
            server_id: id,
            settings: vec![("object".into(), "Contact".into()), ("external_id_field".into(), "Registry_ID__c".into())],
            enabled: true,
            scope: Scope::default(),
        }).await?;
    }
    Ok(emulator)
}

#[cfg(test)]
mod tests {
    use super::host_names;

    #[test]
    fn the_web_server_answers_for_its_public_name_and_listen_address_only() {
        let hosts = host_names("https://registry.example.org/", "10.0.0.5:8080".parse().unwrap());
        assert_eq!(hosts, ["10.0.0.5:8080", "registry.example.org"]);
        let hosts = host_names("http://127.0.0.1:8080", "127.0.0.1:8080".parse().unwrap());
        assert_eq!(hosts, ["127.0.0.1:8080", "[::1]:8080", "localhost:8080"]);
    }
}
