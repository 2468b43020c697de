//! The data commands of the CLI: `people`, `targets`, `api-token`. They
//! work on the database directly (SQLite in WAL mode lets them run beside
//! `serve`); provisioning itself happens in `serve`'s engine, which picks up
//! whatever these commands queue.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use registry_host::import::parse_import;
use registry_host::secrets::SecretBox;
use registry_host::store::Store;

/// The shared PostgreSQL database the commands work on (`--database`),
/// set once by `main`; none: SQLite in the data directory.
pub static DATABASE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

fn database() -> Option<&'static str> {
    DATABASE.get().and_then(|d| d.as_deref())
}

/// Opens the store: the shared PostgreSQL database, or (creating if
/// needed) the data directory's SQLite.
pub async fn open_store(data_dir: &Path) -> anyhow::Result<Store> {
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let secrets = if database().is_some() { SecretBox::load_shared(data_dir)? } else { SecretBox::load_or_create(data_dir)? };
    open_store_with(data_dir, secrets).await
}

/// [`open_store`] under the key `secrets`.
async fn open_store_with(data_dir: &Path, secrets: SecretBox) -> anyhow::Result<Store> {
    match database() {
        Some(url) => {
            let config = registry_host::store::postgres::PgConfig { register: false, pool_size: 4, ..Default::default() };
            let pg = registry_host::store::postgres::PgStore::connect(url, "cli", secrets, config).await.context("connecting to the PostgreSQL database (--database)")?;
            Ok(Store::from(pg))
        }
        None => Ok(Store::open(data_dir, secrets)?),
    }
}

/// Where a `serve` must run to work this store's queue, for messages.
fn where_serve(data_dir: &Path) -> String {
    match database() {
        Some(_) => "this database".into(),
        None => format!("this data directory ({})", data_dir.display()),
    }
}

/// `nodes`: the live nodes sharing the database, their heartbeats and jobs.
pub async fn list_nodes(data_dir: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(database().is_some(), "`nodes` lists the hosts sharing a PostgreSQL database: give it with --database (or REGISTRY_HOST_DATABASE_URL)");
    let store = open_store(data_dir).await?;
    let pg = store.postgres().expect("a --database store is PostgreSQL");
    let nodes = pg.live_nodes(NODE_FRESH).await?;
    if nodes.is_empty() {
        println!("no live node: no registry-host serve has sent a heartbeat in the last {} s", NODE_FRESH.as_secs());
        return Ok(());
    }
    println!("{:<32} {:>8} {:>14} {:>6}", "NODE", "PID", "HEARTBEAT", "JOBS");
    for n in nodes {
        println!("{:<32} {:>8} {:>12} s {:>6}", n.id, n.pid, format!("{:.1}", n.silent_ms as f64 / 1000.0), n.claimed);
    }
    Ok(())
}

const NODE_FRESH: std::time::Duration = registry_host::store::postgres::LIVE_WITHIN;

/// Whether a `registry-host serve` works through `store`'s queue: on a
/// shared database, a node with a fresh heartbeat; else one holding this
/// data directory.
pub async fn server_running(store: &Store, data_dir: &Path) -> bool {
    match store.postgres() {
        Some(pg) => pg.live_nodes(NODE_FRESH).await.is_ok_and(|n| !n.is_empty()),
        None => serve_holds(data_dir),
    }
}

/// Whether a `serve` holds the data directory's lock (SQLite).
fn serve_holds(data_dir: &Path) -> bool {
    let Ok(lock) = std::fs::OpenOptions::new().read(true).write(true).open(data_dir.join(registry_host::serve::LOCK_FILE)) else { return false };
    // Taking the lock proves nobody holds it; it is released when `lock` drops.
    lock.try_lock().is_err()
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!("{{spinner}} {what} [{{bar:40}}] {{pos}}/{{len}} ({{per_sec}}, {{eta}} left)"))
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// On a shared database, wakes the serving nodes: work a command queued
/// starts at once, not at their next poll. A failure only delays it.
async fn wake_nodes(store: &Store) {
    if let Some(pg) = store.postgres()
        && let Err(e) = pg.notify(registry_host::store::postgres::Topic::Jobs).await
    {
        eprintln!("note: could not wake the serving nodes ({e}); they find the work at their next poll");
    }
}

/// `people import FILE`: every row is checked first; if any is bad, all
/// problems are printed and nothing is imported.
pub async fn import_people(data_dir: &Path, file: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let people = match parse_import(&file.display().to_string(), &text) {
        Ok(p) => p,
        Err(problems) => {
            for p in problems.iter().take(50) {
                eprintln!("  {}: {p}", file.display());
            }
            if problems.len() > 50 {
                eprintln!("  ... and {} more", problems.len() - 50);
            }
            anyhow::bail!("{} problem(s) in {}; fix them and import again (nothing was imported)", problems.len(), file.display());
        }
    };
    let store = open_store(data_dir).await?;
    let bar = bar(people.len() as u64, "importing");
    let stats = store.import_people(people, |done| bar.set_position(done as u64)).await?;
    if stats.added + stats.updated > 0 {
        wake_nodes(&store).await;
    }
    bar.finish_and_clear();
    store.audit(&cli_actor(), "people.import", &file.display().to_string(), serde_json::json!({"added": stats.added, "updated": stats.updated, "unchanged": stats.unchanged})).await?;
    let (queued, _) = store.job_counts(None).await?;
    println!("imported {}: {} added, {} updated, {} unchanged", file.display(), stats.added, stats.updated, stats.unchanged);
    if queued > 0 && !server_running(&store, data_dir).await {
        println!("{queued} provisioning job(s) are queued; they run when `registry-host serve` runs on {}", where_serve(data_dir));
    }
    Ok(())
}

/// `api-token create NAME [--expires-in-days N]`.
pub async fn create_api_token(data_dir: &Path, name: &str, days: Option<u32>) -> anyhow::Result<()> {
    anyhow::ensure!(!name.trim().is_empty(), "the token needs a name, e.g. `api-token create hr-feed`");
    let store = open_store(data_dir).await?;
    let token = registry_host::auth::create_api_token(&store, name, days).await?;
    store.audit(&cli_actor(), "api-token.create", name.trim(), serde_json::json!({"expires_in_days": days})).await?;
    println!("{token}");
    let until = days.map(|d| format!(", valid for {d} day(s)")).unwrap_or_default();
    eprintln!("API token '{}' created{until}; it is shown only now. Send it as `Authorization: Bearer <token>`.", name.trim());
    Ok(())
}

/// Who the command line acts as, for the audit trail.
fn cli_actor() -> String {
    format!("cli:{}", std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into()))
}

/// `log export`.
pub async fn export_log(data_dir: &Path, format: &str, days: Option<i64>, target: Option<&str>) -> anyhow::Result<()> {
    let store = open_store(data_dir).await?;
    let target = match target {
        Some(t) => Some(find_target(&store, t).await?),
        None => None,
    };
    let filter = registry_host::store::LogFilter {
        target: target.map(|t| t.id),
        since: days.map(|d| registry_host::store::now_ms() - d * 86_400_000),
        ..Default::default()
    };
    let entries = store.log(&filter, usize::MAX >> 1).await?;
    let out = match format {
        "json" => serde_json::to_vec_pretty(&entries)?,
        _ => registry_host::web::log_csv(entries)?,
    };
    std::io::Write::write_all(&mut std::io::stdout(), &out)?;
    Ok(())
}

/// `audit export`.
pub async fn export_audit(data_dir: &Path, format: &str, days: Option<i64>) -> anyhow::Result<()> {
    let store = open_store(data_dir).await?;
    let filter = registry_host::store::AuditFilter { since: days.map(|d| registry_host::store::now_ms() - d * 86_400_000), ..Default::default() };
    let entries = store.audit_entries(&filter, usize::MAX >> 1).await?;
    if format == "json" {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(());
    }
    let mut w = csv::Writer::from_writer(std::io::stdout());
    w.write_record(["id", "at", "actor", "action", "subject", "detail"])?;
    for e in entries {
        w.write_record([e.id.to_string(), registry_host::web::format_time(e.at), e.actor, e.action, e.subject, e.detail.to_string()])?;
    }
    w.flush()?;
    Ok(())
}

/// `api-token list`.
pub async fn list_api_tokens(data_dir: &Path) -> anyhow::Result<()> {
    let tokens = open_store(data_dir).await?.api_tokens().await?;
    if tokens.is_empty() {
        println!("no API tokens; create one with `registry-host api-token create NAME`");
        return Ok(());
    }
    let now = registry_host::store::now_ms();
    let time = |t: Option<i64>, none: &str| t.map(registry_host::web::format_time).unwrap_or_else(|| none.to_string());
    println!("{:<24} {:<8} {:<24} {:<24} EXPIRES", "NAME", "STATE", "CREATED", "LAST USED");
    for t in tokens {
        println!("{:<24} {:<8} {:<24} {:<24} {}", t.name, t.state(now), time(Some(t.created_at), ""), time(t.last_used_at, "never"), time(t.expires_at, "never"));
    }
    Ok(())
}

/// `api-token revoke NAME`.
pub async fn revoke_api_token(data_dir: &Path, name: &str) -> anyhow::Result<()> {
    let store = open_store(data_dir).await?;
    anyhow::ensure!(store.revoke_api_token(name).await?, "there is no active API token named '{name}' (see `registry-host api-token list`)");
    store.audit(&cli_actor(), "api-token.revoke", name, serde_json::json!({})).await?;
    println!("API token '{name}' revoked; requests with it now get 401");
    Ok(())
}

/// `secrets rotate`: a new key, every secret re-sealed with it in one
/// transaction, then the key file replaced. Refused while `serve` runs:
/// it holds the old key and would go on sealing with it.
pub async fn rotate_key(data_dir: &Path, new_key_file: Option<&Path>) -> anyhow::Result<()> {
    if database().is_some() {
        return rotate_shared_key(data_dir, new_key_file).await;
    }
    anyhow::ensure!(new_key_file.is_none(), "--new-key-file is for a shared PostgreSQL database (--database); on SQLite the data directory's {} is replaced", registry_host::secrets::KEY_FILE);
    anyhow::ensure!(!serve_holds(data_dir), "a registry-host serve is running on {}; stop it first (it holds the old key), then rotate", data_dir.display());
    let rotation = SecretBox::begin_rotation(data_dir)?;
    let store = Store::open(data_dir, rotation.old.clone())?;
    let count = store.reseal(&rotation.new).await.context("re-sealing the secrets (nothing was changed)")?;
    drop(store);
    rotation.finish()?;
    Store::open(data_dir, SecretBox::load_or_create(data_dir)?)?.audit(&cli_actor(), "secrets.rotate", "secret.key", serde_json::json!({"resealed": count})).await?;
    println!("re-sealed {count} secret(s) with a new key in {}; back it up: the old key opens nothing any more", data_dir.join(registry_host::secrets::KEY_FILE).display());
    Ok(())
}

/// `secrets rotate` on a shared PostgreSQL database: the key is the
/// operator's (usually REGISTRY_HOST_SECRET_KEY on every node), so the new
/// one is written to a file for them to hand out; the secrets are re-sealed
/// and the new key's fingerprint recorded in one transaction, with every
/// node stopped (a node on the old key would then refuse to start, which is
/// what makes the switch all or nothing).
async fn rotate_shared_key(data_dir: &Path, new_key_file: Option<&Path>) -> anyhow::Result<()> {
    let file = new_key_file.context(
        "with --database the new key goes to a file you then give every node as REGISTRY_HOST_SECRET_KEY: add --new-key-file FILE (made mode 0600; an existing one, from a rotation that stopped half way, is used again)",
    )?;
    let new = SecretBox::key_file(file).with_context(|| format!("the new key file {}", file.display()))?;
    let store = match open_store(data_dir).await {
        Ok(store) => store,
        // Stopped after the re-seal committed: the database takes the new key.
        Err(e) if e.chain().any(|c| matches!(c.downcast_ref(), Some(registry_host::store::StoreError::KeyMismatch { .. }))) => {
            open_store_with(data_dir, new.clone()).await.map_err(|_| e)?;
            println!("the database is already sealed with the key in {}: set REGISTRY_HOST_SECRET_KEY to it on every node", file.display());
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    anyhow::ensure!(
        new.fingerprint() != SecretBox::load_shared(data_dir)?.fingerprint(),
        "{} holds the key the database is sealed with now (a finished rotation's file?): give a path for a new key",
        file.display()
    );
    let pg = store.postgres().expect("a --database store is PostgreSQL");
    // Checked again inside the re-seal's transaction, which a starting
    // node's key check waits for.
    let count = pg.reseal_unless_live(&new, Some(NODE_FRESH)).await.map_err(|e| match e {
        registry_host::store::StoreError::Conflict(why) => anyhow::anyhow!(why),
        other => anyhow::Error::new(other).context("re-sealing the secrets (nothing was changed)"),
    })?;
    store.audit(&cli_actor(), "secrets.rotate", "secret.key", serde_json::json!({"resealed": count, "shared": true})).await?;
    println!(
        "re-sealed {count} secret(s) with the new key in {}; set REGISTRY_HOST_SECRET_KEY to its contents on every node, then start them (a node with the old key refuses to start). Keep the file safe, or delete it once the nodes have the key.",
        file.display()
    );
    Ok(())
}

/// `targets list`.
pub async fn list_targets(data_dir: &Path) -> anyhow::Result<()> {
    let store = open_store(data_dir).await?;
    let targets = store.targets().await?;
    if targets.is_empty() {
        println!("no provisioning targets; add one in the web UI under Provisioning Targets");
        return Ok(());
    }
    println!("{:<4} {:<32} {:<12} {:<9} {:<28} QUEUED  FAILED", "ID", "NAME", "PLUGIN", "ENABLED", "OAUTH2 SERVER");
    for t in targets {
        let (queued, failed) = store.job_counts(Some(t.id)).await?;
        println!(
            "{:<4} {:<32} {:<12} {:<9} {:<28} {queued:<7} {failed}",
            t.id,
            t.name,
            t.plugin,
            if t.enabled { "yes" } else { "no" },
            t.server_name
        );
    }
    Ok(())
}

/// The target named `which` (or with that id).
async fn find_target(store: &Store, which: &str) -> anyhow::Result<registry_host::domain::Target> {
    let targets = store.targets().await?;
    let names: Vec<String> = targets.iter().map(|t| format!("{} ({})", t.name, t.id)).collect();
    targets
        .into_iter()
        .find(|t| t.name == which || t.id.to_string() == which)
        .with_context(|| format!("no target '{which}'; targets: {}", if names.is_empty() { "none".into() } else { names.join(", ") }))
}

/// `targets removals NAME|ID [--confirm|--discard]`.
pub async fn removals(data_dir: &Path, which: &str, confirm: bool, discard: bool) -> anyhow::Result<()> {
    let store = open_store(data_dir).await?;
    let target = find_target(&store, which).await?;
    let health = store.target_health(target.id).await?;
    if health.held_removals == 0 {
        println!("'{}' holds no removals (threshold: {} within 24 hours)", target.name, health.removal_threshold);
        return Ok(());
    }
    if confirm {
        let n = store.confirm_removals(target.id).await?;
        wake_nodes(&store).await;
        store.audit(&cli_actor(), "target.removals-confirm", &target.name, serde_json::json!({"removals": n})).await?;
        println!("{n} removal(s) confirmed for '{}'; `registry-host serve` runs them", target.name);
    } else if discard {
        let n = store.discard_removals(target.id, "the command line").await?;
        store.audit(&cli_actor(), "target.removals-discard", &target.name, serde_json::json!({"removals": n})).await?;
        println!("{n} removal(s) discarded for '{}': those records stay, no longer managed", target.name);
    } else {
        println!("'{}' holds {} removal(s) for confirmation (threshold: {} within 24 hours):", target.name, health.held_removals, health.removal_threshold);
        for h in store.held_removals(target.id, 1000).await? {
            println!("  {:<20} {:<40} {}", h.person_id, h.name, h.remote.unwrap_or_default());
        }
        println!("run again with --confirm to remove them, or --discard to leave the records in place");
    }
    Ok(())
}

/// `targets reprovision NAME|ID`: queues everyone in scope, then follows
/// the run while a server works through it.
pub async fn reprovision(data_dir: &Path, which: &str, wait: bool) -> anyhow::Result<()> {
    let store = open_store(data_dir).await?;
    let target = find_target(&store, which).await?;
    let run = store.start_run(target.id).await?;
    wake_nodes(&store).await;
    store.audit(&cli_actor(), "target.reprovision-all", &target.name, serde_json::json!({"run": run.id, "queued": run.total})).await?;
    println!("run {} queued {} people for '{}'", run.id, run.total, target.name);
    if !target.enabled {
        println!("the target is disabled: the jobs wait until it is enabled");
        return Ok(());
    }
    if !wait || run.total == 0 {
        return Ok(());
    }
    if !server_running(&store, data_dir).await {
        println!("no `registry-host serve` is running on {}; the run starts when it does", where_serve(data_dir));
        return Ok(());
    }
    let bar = bar(run.total as u64, "provisioning");
    let mut said = None;
    loop {
        let now = store.run(run.id).await?;
        bar.set_position((now.done + now.failed) as u64);
        if now.finished_at.is_some() {
            bar.finish_and_clear();
            println!("run {} finished: {} provisioned, {} failed", now.id, now.done, now.failed);
            if now.failed > 0 {
                println!("see the failures on the target's page in the web UI");
            }
            return Ok(());
        }
        let why = store.held_because(&store.target(target.id).await?).await;
        if why != said {
            if let Some(why) = &why {
                bar.suspend(|| println!("waiting: {why}"));
            }
            said = why;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = tokio::signal::ctrl_c() => {
                bar.abandon();
                println!("stopped watching; the run goes on in the server");
                return Ok(());
            }
        }
    }
}

/// Reads target settings for `plugin test`: a JSON object of strings, or
/// `name=value` lines (`#` starts a comment).
pub fn read_settings(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if text.trim_start().starts_with('{') {
        let map: std::collections::BTreeMap<String, String> =
            serde_json::from_str(&text).with_context(|| format!("{}: expected a JSON object of strings, e.g. {{\"object\": \"User\"}}", path.display()))?;
        return Ok(map.into_iter().collect());
    }
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line.split_once('=').with_context(|| format!("{}:{}: expected name=value", path.display(), n + 1))?;
        out.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(out)
}
