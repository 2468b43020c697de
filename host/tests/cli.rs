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
    assert!(stdout.contains("Capabilities  authorization-code, refresh, client-credentials, revoke, check-connection, provision, provision-batch\n"), "{stdout}");
    assert!(stdout.contains("Settings (15)"), "{stdout}");
    assert!(stdout.contains("\nobject "), "{stdout}");
    assert!(stdout.contains("Choices: Contact, User."), "{stdout}");

    // The compiled component was cached under the data dir.
    let cached: Vec<_> = walk(&data.path().join("cache/components"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
}

#[test]
fn inspect_json_is_machine_readable() {
    let data = tempfile::tempdir().unwrap();
    let plugin = test_guests::salesforce_plugin().to_str().unwrap();
    let out = registry_host(&["plugin", "inspect", plugin, "--json"], data.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(json["name"], "salesforce");
    assert_eq!(json["capabilities"], serde_json::json!(["authorization-code", "refresh", "client-credentials", "revoke", "check-connection", "provision", "provision-batch"]));
    let settings = json["settings"].as_array().unwrap();
    let names: Vec<&str> = settings.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "object", "api_version", "external_id_field", "email_type", "provision_middle_name",
            "account_id", "inactive_action", "field_mappings", "profile_id", "username_template",
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
