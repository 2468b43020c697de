//! `registry-host plugin inspect` as a user runs it.

use std::process::{Command, Output};

fn registry_host(args: &[&str], data_dir: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_registry-host"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("REGISTRY_HOST_LOG")
        .output()
        .expect("registry-host runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn inspect_prints_the_plugin_and_its_settings() {
    let data = tempfile::tempdir().unwrap();
    let plugin = test_guests::salesforce_plugin().to_str().unwrap();
    let out = registry_host(&["plugin", "inspect", plugin], data.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("Plugin        salesforce 0.1.0\n"), "{stdout}");
    assert!(stdout.contains("Capabilities  authorization-code, refresh, client-credentials, revoke, check-connection, provision, provision-batch, jwt-bearer, background-batch, groups\n"), "{stdout}");
    assert!(stdout.contains("Settings (22)"), "{stdout}");
    assert!(stdout.contains("\nobject "), "{stdout}");
    assert!(stdout.contains("Choices: Contact, User."), "{stdout}");

    // The compiled component was cached under the data dir.
    let cached: Vec<_> = walk(&data.path().join("cache/components"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    let out = registry_host(&["plugin", "cache", "list"], data.path());
    let listed = text(&out.stdout);
    assert!(listed.contains("last used") && listed.contains("1 plugin(s)") && listed.contains("of 1024 MiB allowed"), "{listed}");
    let out = registry_host(&["plugin", "cache", "prune", "--all"], data.path());
    assert!(text(&out.stdout).starts_with("removed 1 cached plugin(s)"), "{}", text(&out.stdout));
    assert!(text(&registry_host(&["plugin", "cache", "list"], data.path()).stdout).contains("0 plugin(s)"));
}

#[test]
fn inspect_json_is_machine_readable() {
    let data = tempfile::tempdir().unwrap();
    let plugin = test_guests::salesforce_plugin().to_str().unwrap();
    let out = registry_host(&["plugin", "inspect", plugin, "--json"], data.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(json["name"], "salesforce");
    assert_eq!(json["capabilities"], serde_json::json!(["authorization-code", "refresh", "client-credentials", "revoke", "check-connection", "provision", "provision-batch", "jwt-bearer", "background-batch", "groups"]));
    let settings = json["settings"].as_array().unwrap();
    let names: Vec<&str> = settings.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "object", "api_version", "bulk_threshold", "external_id_field", "email_type", "provision_middle_name",
            "account_id", "inactive_action", "match_by", "match_field", "match_template", "on_remove", "groups", "mark_fields", "field_mappings", "profile_id", "username_template",
            "federation_identifier_type", "time_zone", "locale", "email_encoding", "language"
        ]
    );
    let object = &settings[0];
    assert_eq!(object["kind"], "choice");
    assert_eq!(object["choices"], serde_json::json!(["Contact", "User"]));
    assert_eq!(object["default"], "Contact");
    assert_eq!(object["required"], true);
    assert_eq!(json["size_bytes"].as_u64().unwrap(), std::fs::metadata(plugin).unwrap().len());
}

#[test]
fn inspect_explains_bad_input() {
    let data = tempfile::tempdir().unwrap();
    let out = registry_host(&["plugin", "inspect", "/nonexistent/plugin.wasm"], data.path());
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("error: cannot read plugin /nonexistent/plugin.wasm"), "{stderr}");

    let plugin = test_guests::salesforce_plugin().to_str().unwrap();
    let out = registry_host(&["--plugin-memory-mib", "0", "plugin", "inspect", plugin], data.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--plugin-memory-mib must be at least 1"), "{}", text(&out.stderr));

    // A plugin whose own memory needs exceed the cap is refused, by name.
    let out = registry_host(&["--plugin-memory-mib", "1", "plugin", "inspect", plugin], data.path());
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("could not describe itself") && stderr.contains("limit of 1048576 bytes"), "{stderr}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[tokio::test]
async fn people_import_checks_every_row_first_and_shows_what_it_did() {
    let data = tempfile::tempdir().unwrap();
    let bad = data.path().join("bad.csv");
    std::fs::write(&bad, "id,status,given,family,emails\nR1,active,Ada,Lovelace,official:ada@example.org\nR2,zombie,,Hopper,grace-at-example\n").unwrap();
    let out = registry_host(&["people", "import", bad.to_str().unwrap()], data.path());
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("row 3: status: 'zombie' is not one of"), "{stderr}");
    assert!(stderr.contains("row 3: name.given: a given name is required"), "{stderr}");
    assert!(stderr.contains("row 3: emails[0].address: 'grace-at-example' is not an email address"), "{stderr}");
    assert!(stderr.contains("3 problem(s) in") && stderr.contains("nothing was imported"), "{stderr}");

    let good = data.path().join("people.csv");
    std::fs::write(&good, "id,status,given,family,emails,identifiers,affiliation\nR1,active,Ada,Lovelace,official:ada@example.org,eppn:ada@example.org,staff\nR2,expired,Grace,Hopper,official:grace@example.org,,faculty\n").unwrap();
    let out = registry_host(&["people", "import", good.to_str().unwrap()], data.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("2 added, 0 updated, 0 unchanged"), "{}", text(&out.stdout));
    // The first row was the one in the bad file: it was not imported then.
    let store = registry_host::store::Store::open(data.path(), registry_host::secrets::SecretBox::load_or_create(data.path()).unwrap()).unwrap();
    let ada = store.person("R1").await.unwrap();
    assert_eq!((ada.name.family.as_deref(), ada.identifiers[0].value.as_str()), (Some("Lovelace"), "ada@example.org"));
    assert_eq!(store.person("R2").await.unwrap().status, registry_host::domain::Status::Expired);

    let json = data.path().join("people.json");
    std::fs::write(&json, r#"[{"id": "R1", "name": {"given": "Ada", "family": "King"}, "emails": [{"address": "ada@example.org"}]}]"#).unwrap();
    let out = registry_host(&["people", "import", json.to_str().unwrap()], data.path());
    assert!(text(&out.stdout).contains("0 added, 1 updated, 0 unchanged"), "{}", text(&out.stdout));
    assert_eq!(store.person("R1").await.unwrap().name.family.as_deref(), Some("King"));

    store.delete_person("R2").await.unwrap();
    let out = registry_host(&["people", "import", good.to_str().unwrap()], data.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("R2 belonged to deleted people"), "{}", text(&out.stderr));
    assert_eq!(store.person("R1").await.unwrap().name.family.as_deref(), Some("King"), "nothing was imported");
}

#[tokio::test]
async fn targets_and_api_tokens_from_the_command_line() {
    let data = tempfile::tempdir().unwrap();
    let out = registry_host(&["targets", "list"], data.path());
    assert!(text(&out.stdout).contains("no provisioning targets"), "{}", text(&out.stdout));
    let out = registry_host(&["targets", "reprovision", "Contacts"], data.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no target 'Contacts'; targets: none"), "{}", text(&out.stderr));

    let store = registry_host::store::Store::open(data.path(), registry_host::secrets::SecretBox::load_or_create(data.path()).unwrap()).unwrap();
    let server = store
        .create_server(&registry_host::domain::ServerInput::example("SF", "salesforce", registry_plugin_runtime::latest::types::GrantType::AuthorizationCode)).await
        .unwrap();
    store
        .create_target(&registry_host::domain::TargetInput {
            name: "Contacts".into(),
            plugin: "salesforce".into(),
            server_id: server,
            settings: vec![],
            enabled: true,
            scope: Default::default(),
        }).await
        .unwrap();
    let mut p = registry_host::domain::Person::default();
    p.name.given = "Ada".into();
    store.create_person(p).await.unwrap();
    let out = registry_host(&["targets", "list"], data.path());
    let stdout = text(&out.stdout);
    assert!(stdout.lines().nth(1).is_some_and(|l| l.contains("Contacts") && l.contains("salesforce") && l.contains("SF")), "{stdout}");
    let out = registry_host(&["targets", "reprovision", "Contacts"], data.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("queued 1 people for 'Contacts'") && stdout.contains("no `registry-host serve` is running"), "{stdout}");

    let out = registry_host(&["api-token", "create", "hr-feed"], data.path());
    let token = text(&out.stdout).trim().to_string();
    assert!(token.starts_with("rh_") && token.len() > 30, "{token}");
    assert_eq!(store.api_token(&token).await.unwrap().as_deref(), Some("hr-feed"));
    let out = registry_host(&["api-token", "create", "hr-feed"], data.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("already exists"));
}

/// API tokens are listed (never shown again), revoked, and expire.
#[tokio::test]
async fn api_tokens_are_listed_revoked_and_expire_from_the_cli() {
    let data = tempfile::tempdir().unwrap();
    let out = registry_host(&["api-token", "create", "hr-feed", "--expires-in-days", "30"], data.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout).trim().to_string();
    assert!(text(&out.stderr).contains("valid for 30 day(s)"));
    let out = registry_host(&["api-token", "create", "forever"], data.path());
    let forever = text(&out.stdout).trim().to_string();
    let out = registry_host(&["api-token", "create", "bad", "--expires-in-days", "0"], data.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("expires after: use 1 to 3650 days"), "{}", text(&out.stderr));

    let list = text(&registry_host(&["api-token", "list"], data.path()).stdout);
    let row = |name: &str| list.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} in {list}")).to_string();
    assert!(row("hr-feed").contains("active") && row("hr-feed").contains("never"), "{list}");
    assert!(row("forever").split_whitespace().last() == Some("never"), "{list}");
    assert!(!list.contains(&token) && !list.contains(&forever), "the list never shows a token");

    let out = registry_host(&["api-token", "revoke", "hr-feed"], data.path());
    assert!(out.status.success() && text(&out.stdout).contains("401"), "{}", text(&out.stderr));
    let store = registry_host::store::Store::open(data.path(), registry_host::secrets::SecretBox::load_or_create(data.path()).unwrap()).unwrap();
    assert_eq!(store.api_token(&token).await.unwrap(), None, "a revoked token opens nothing");
    assert_eq!(store.api_token(&forever).await.unwrap().as_deref(), Some("forever"));
    let out = registry_host(&["api-token", "revoke", "hr-feed"], data.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no active API token named 'hr-feed'"));
    assert!(text(&registry_host(&["api-token", "list"], data.path()).stdout).lines().any(|l| l.starts_with("hr-feed") && l.contains("revoked")));

    // Expired: refused, and listed as such.
    let stale = store.create_api_token("stale", Some(registry_host::store::now_ms() - 1)).await.unwrap();
    assert_eq!(store.api_token(&stale).await.unwrap(), None);
    assert!(text(&registry_host(&["api-token", "list"], data.path()).stdout).lines().any(|l| l.starts_with("stale") && l.contains("expired")));
}

/// `secrets rotate` re-seals every secret with a new key; the old key
/// opens nothing afterwards, and a running `serve` blocks it.
#[tokio::test]
async fn secrets_rotate_reseals_everything_with_a_new_key() {
    use registry_host::secrets::{KEY_FILE, SecretBox};
    let data = tempfile::tempdir().unwrap();
    let old_key = SecretBox::load_or_create(data.path()).unwrap();
    let store = registry_host::store::Store::open(data.path(), old_key.clone()).unwrap();
    let input = registry_host::domain::ServerInput { client_secret: Some("the client secret".into()), ..registry_host::domain::ServerInput::example("SF", "salesforce", registry_plugin_runtime::latest::types::GrantType::AuthorizationCode) };
    let server = store.create_server(&input).await.unwrap();
    drop(store);
    let before = std::fs::read_to_string(data.path().join(KEY_FILE)).unwrap();

    let out = registry_host(&["secrets", "rotate"], data.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("re-sealed 1 secret(s)"), "{}", text(&out.stdout));
    assert_ne!(std::fs::read_to_string(data.path().join(KEY_FILE)).unwrap(), before);
    let new_key = SecretBox::load_or_create(data.path()).unwrap();
    let store = registry_host::store::Store::open(data.path(), new_key).unwrap();
    assert_eq!(store.server_config(server).await.unwrap().client_secret, "the client secret");
    drop(store);
    let stale = registry_host::store::Store::open(data.path(), old_key).unwrap();
    assert!(stale.server_config(server).await.is_err(), "the old key opens nothing any more");

    // While a serve holds the data directory, rotation is refused.
    let lock = std::fs::File::create(data.path().join(registry_host::serve::LOCK_FILE)).unwrap();
    lock.lock().unwrap();
    let out = registry_host(&["secrets", "rotate"], data.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("stop it first"), "{}", text(&out.stderr));
}

/// The pool is on by default; `--plugin-pool 0` turns it off, and a pool of
/// one still serves (its waiting is tested in host/runtime's sandbox tests).
#[test]
fn the_plugin_pool_is_on_by_default_and_can_be_turned_off_or_sized() {
    let data = tempfile::tempdir().unwrap();
    let plugin = test_guests::salesforce_plugin().to_str().unwrap();
    for pool in [None, Some("0"), Some("1")] {
        let mut args = vec![];
        if let Some(n) = pool {
            args.extend(["--plugin-pool", n]);
        }
        args.extend(["plugin", "inspect", plugin]);
        let out = registry_host(&args, data.path());
        assert!(out.status.success(), "{pool:?}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("Plugin        salesforce"), "{pool:?}");
    }
}

/// A plugin gets client secrets and tokens, so `serve` loads only what it is
/// told to: `--plugin` paths and `<data dir>/plugins`, never a component
/// that happens to sit under the working directory.
#[test]
fn serve_loads_plugins_only_from_explicit_paths_and_the_data_dir() {
    use std::io::{BufRead, BufReader};
    let data = tempfile::tempdir().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let planted = cwd.path().join("target/wasm32-wasip2/release");
    std::fs::create_dir_all(&planted).unwrap();
    std::fs::copy(test_guests::hostile_http(), planted.join("salesforce_provisioner.wasm")).unwrap();
    let serve = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_registry-host"))
            .current_dir(cwd.path())
            .arg("--data-dir")
            .arg(data.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("REGISTRY_HOST_ADMIN_PASSWORD", "a-long-enough-password")
            .env_remove("REGISTRY_HOST_LOG")
            .env_remove("CARGO_TARGET_DIR")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let refused = serve(&[]).wait_with_output().unwrap();
    assert!(!refused.status.success());
    let stderr = text(&refused.stderr);
    assert!(stderr.contains("no plugin to load: pass --plugin PATH"), "{stderr}");
    assert!(!stderr.contains("hostile"), "{stderr}");

    std::fs::create_dir_all(data.path().join("plugins")).unwrap();
    std::fs::copy(test_guests::salesforce_plugin(), data.path().join("plugins/salesforce.wasm")).unwrap();
    let mut running = serve(&[]);
    let mut lines = BufReader::new(running.stdout.take().unwrap()).lines();
    let plugins = lines.by_ref().map_while(Result::ok).find(|l| l.trim_start().starts_with("plugins:"));
    running.kill().unwrap();
    running.wait().unwrap();
    assert_eq!(plugins.as_deref().map(str::trim), Some("plugins:     salesforce (registry:provisioning@0.2.0)"));

    // Both plugins side by side in one serve.
    std::fs::copy(test_guests::scim_plugin(), data.path().join("plugins/scim.wasm")).unwrap();
    let mut running = serve(&[]);
    let mut lines = BufReader::new(running.stdout.take().unwrap()).lines();
    let plugins = lines.by_ref().map_while(Result::ok).find(|l| l.trim_start().starts_with("plugins:"));
    running.kill().unwrap();
    running.wait().unwrap();
    assert_eq!(plugins.as_deref().map(str::trim), Some("plugins:     salesforce (registry:provisioning@0.2.0), scim (registry:provisioning@0.2.0)"));
}

/// A retry horizon no retry fits in is refused at start, by its flag.
#[test]
fn serve_refuses_workers_it_cannot_run() {
    let data = tempfile::tempdir().unwrap();
    let plugin = test_guests::salesforce_plugin().to_str().unwrap();
    for workers in ["0", "1000"] {
        let out = Command::new(env!("CARGO_BIN_EXE_registry-host"))
            .arg("--data-dir")
            .arg(data.path())
            .args(["serve", "--listen", "127.0.0.1:0", "--plugin", plugin, "--workers", workers])
            .env_remove("REGISTRY_HOST_LOG")
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(text(&out.stderr).contains("--workers must be 1 to 256"), "{}", text(&out.stderr));
    }
}

#[test]
fn serve_refuses_a_retry_horizon_shorter_than_the_first_retry() {
    let data = tempfile::tempdir().unwrap();
    let plugin = test_guests::salesforce_plugin().to_str().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_registry-host"))
        .arg("--data-dir")
        .arg(data.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--plugin", plugin, "--retry-horizon-hours", "0"])
        .env("REGISTRY_HOST_ADMIN_PASSWORD", "a-long-enough-password")
        .env_remove("REGISTRY_HOST_LOG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("--retry-horizon-hours") && stderr.contains("no job would ever be retried"), "{stderr}");
}

/// The provisioning log and the audit trail come out as CSV or JSON, and
/// CLI actions are in the trail under the OS user.
#[test]
fn log_and_audit_export() {
    let data = tempfile::tempdir().unwrap();
    let out = registry_host(&["api-token", "create", "exporter"], data.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = registry_host(&["audit", "export"], data.path());
    let csv = text(&out.stdout);
    assert!(csv.starts_with("id,at,actor,action,subject,detail\n"), "{csv}");
    assert!(csv.lines().any(|l| l.contains(",cli:") && l.contains(",api-token.create,exporter,")), "{csv}");
    let out = registry_host(&["audit", "export", "--format", "json"], data.path());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["action"], "api-token.create");
    let out = registry_host(&["log", "export"], data.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "id,at,person_id,person,target,action,outcome,remote,duration_ms,message");
    let out = registry_host(&["log", "export", "--target", "nope"], data.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no target 'nope'"));
}

/// CI must run the command the README gives users, not a private variant.
#[test]
fn ci_runs_the_readme_test_command() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = readme
        .split("\n## Test it\n")
        .nth(1)
        .expect("README has a \"## Test it\" section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("\"## Test it\" starts with a sh code block");
    let readme_commands: Vec<&str> = block.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(readme_commands.len(), 1, "one test command in the README: {block}");

    let ci = std::fs::read_to_string(root.join(".ci/run")).unwrap();
    let ci_commands: Vec<&str> = ci
        .lines()
        .map(str::trim)
        // Nothing but the command: no setup or environment of its own, so
        // CI runs what a developer runs.
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(ci_commands, readme_commands, ".ci/run runs exactly the README's test command");
    assert!(root.join("tests/run").is_file());
}
