//! `registry-host plugin test` as plugin authors run it: the Salesforce
//! plugin passes every check, the example plugin passes what it claims, and
//! each hostile fixture fails with its real cause named. (The test bed used
//! as an author would is tested in `tests/testbed`.)

use std::path::Path;
use std::process::{Command, Output};


fn plugin_test(plugin: &Path, extra: &[&str]) -> Output {
    let data = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_registry-host"))
        .arg("--data-dir")
        .arg(data.path())
        .args(["--plugin-timeout-ms", "1000", "plugin", "test"])
        .arg(plugin)
        .args(extra)
        .env_remove("REGISTRY_HOST_LOG")
        .output()
        .expect("registry-host runs")
}

/// `plugin test` with a data dir kept between runs (under the target dir),
/// as an author's own is: the second run of a large component uses the
/// precompiled cache instead of compiling it again.
fn plugin_test_kept(plugin: &Path, extra: &[&str]) -> Output {
    let data = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-test-languages");
    Command::new(env!("CARGO_BIN_EXE_registry-host"))
        .arg("--data-dir")
        .arg(&data)
        .args(["plugin", "test"])
        .arg(plugin)
        .args(extra)
        .env_remove("REGISTRY_HOST_LOG")
        .env_remove("REGISTRY_HOST_SECRET_KEY")
        .output()
        .expect("registry-host runs")
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no check {name}"))
}

#[test]
fn the_salesforce_plugin_passes_every_check() {
    let out = plugin_test(test_guests::salesforce_plugin(), &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("conformance run for salesforce 0.1.0 (registry:provisioning@0.2.0)\n"), "{stdout}");
    assert!(stdout.contains("\npass  provision.repeat "), "{stdout}");
    let line = |name: &str| stdout.lines().find(|l| l.split_whitespace().nth(1) == Some(name)).unwrap_or_default().to_string();
    assert!(line("removal.effect").starts_with("pass ") && line("removal.effect").ends_with("a removal keeps the record, no longer managed"), "{stdout}");
    assert!(line("settings.remote-check").starts_with("pass "), "{stdout}");
    assert!(line("provision.delete").contains("kept Contact"), "{stdout}");
    assert!(line("provision.preview").starts_with("pass ") && line("provision.preview").contains("nothing written"), "{stdout}");
    assert!(line("oauth.jwt-bearer").starts_with("pass ") && line("oauth.jwt-bearer").contains("unknown key was refused"), "{stdout}");
    assert!(stdout.contains("24 passed, 0 failed, 1 skipped"), "{stdout}");

    // User mode, from a settings file, passes too.
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("user.conf");
    std::fs::write(&settings, "# User mode\nobject = User\nprofile_id = 00e5g0000000002AAA\n").unwrap();
    let out = plugin_test(test_guests::salesforce_plugin(), &["--settings", settings.to_str().unwrap(), "--json"]);
    let report = json(&out);
    assert_eq!(report["failed"], 0, "{report:#}");
    assert!(check(&report, "provision.create")["detail"].as_str().unwrap().starts_with("User "), "{report:#}");
    assert!(check(&report, "provision.delete")["detail"].as_str().unwrap().contains("deactivated User"), "{report:#}");

    // A create that fails (a mapping to a field the org lacks) still reports
    // the batch check, failed with its reason, rather than leaving it out.
    std::fs::write(&settings, "field_mappings = Missing__c={id}\n").unwrap();
    let out = plugin_test(test_guests::salesforce_plugin(), &["--settings", settings.to_str().unwrap(), "--json"]);
    let report = json(&out);
    assert_eq!(check(&report, "provision.create")["status"], "fail", "{report:#}");
    assert_eq!(check(&report, "provision.batch")["status"], "fail", "{report:#}");
    assert!(check(&report, "provision.batch")["detail"].as_str().unwrap().contains("Missing__c"), "{report:#}");

    // Settings the plugin refuses fail the run, with the plugin's words.
    std::fs::write(&settings, r#"{"object": "User"}"#).unwrap();
    let out = plugin_test(test_guests::salesforce_plugin(), &["--settings", settings.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    let detail = check(&report, "settings.valid-accepted")["detail"].as_str().unwrap().to_string();
    assert!(detail.starts_with("good settings were refused: profile_id:"), "{detail}");
}

#[test]
fn hostile_fixtures_fail_with_the_real_cause() {
    let cases = [
        (test_guests::hostile_loop(), "sandbox.deadline", "ran past the 1s deadline in: provisioning-target.validate-settings"),
        (test_guests::hostile_alloc(), "settings.valid-accepted", "beyond its limit of 67108864 bytes"),
        (test_guests::hostile_http(), "sandbox.allowlist", "GET https://exfiltrate.example.com/steal"),
        (test_guests::hostile_panic(), "settings.valid-accepted", "it panicked: hostile fixture panicked on purpose"),
    ];
    for (plugin, failing, cause) in cases {
        let out = plugin_test(plugin, &["--json"]);
        assert_eq!(out.status.code(), Some(1), "{}", plugin.display());
        let report = json(&out);
        let c = check(&report, failing);
        assert_eq!(c["status"], "fail", "{report:#}");
        assert!(c["detail"].as_str().unwrap().contains(cause), "{report:#}");
        if failing == "sandbox.deadline" {
            let calls: Vec<&str> = c["detail"].as_str().unwrap().split("in: ").nth(1).unwrap().split(", ").collect();
            let mut unique = calls.clone();
            unique.dedup();
            assert_eq!(calls, unique, "each call named once");
        }
        // They claim nothing, so the capability checks are skipped, not failed.
        assert_eq!(check(&report, "oauth.code-exchange")["status"], "skip");
        assert_eq!(check(&report, "provision.create")["detail"], "the plugin does not claim 'provision'");
    }
}

#[test]
fn the_example_plugin_passes_what_it_claims() {
    let out = plugin_test(test_guests::example_plugin(), &["--json"]);
    let report = json(&out);
    assert!(out.status.success(), "{report:#}");
    assert_eq!(check(&report, "oauth.client-credentials")["status"], "pass");
    assert_eq!(check(&report, "provision.repeat")["status"], "pass");
    assert_eq!(check(&report, "oauth.code-exchange")["status"], "skip");
    assert_eq!(check(&report, "oauth.jwt-bearer")["detail"], "the plugin does not claim 'jwt-bearer'", "skipped for a plugin that does not claim it");
    assert_eq!(report["failed"], 0);
}


/// `plugin test --json` is the interface for other languages' test
/// runners: its output has what docs/plugin-test-report.schema.json says.
#[test]
fn the_json_report_follows_its_documented_schema() {
    let schema: serde_json::Value = serde_json::from_str(include_str!("../../../docs/plugin-test-report.schema.json")).unwrap();
    let report = json(&plugin_test(test_guests::example_plugin(), &["--json"]));
    let required = |v: &serde_json::Value| v["required"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect::<Vec<_>>();
    for key in required(&schema) {
        assert!(report.get(&key).is_some(), "{key} missing: {report:#}");
    }
    let statuses: Vec<&str> = schema["properties"]["checks"]["items"]["properties"]["status"]["enum"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    let item = &schema["properties"]["checks"]["items"];
    for check in report["checks"].as_array().unwrap() {
        for key in required(item) {
            assert!(check[&key].is_string(), "{key} in {check}");
        }
        assert!(statuses.contains(&check["status"].as_str().unwrap()), "{check}");
    }
    let counted = |s: &str| report["checks"].as_array().unwrap().iter().filter(|c| c["status"] == s).count() as u64;
    assert_eq!((report["passed"].as_u64(), report["failed"].as_u64(), report["skipped"].as_u64()), (Some(counted("pass")), Some(counted("fail")), Some(counted("skip"))));
}

/// The same Contact provisioner in Python (componentize-py) and JavaScript
/// (componentize-js, HTTP through `fetch()`), built as the guide says,
/// passes what it claims, as the Rust one does.
#[test]
fn the_python_example_passes_what_it_claims() {
    passes_what_the_example_claims(&test_guests::languages::python_example(), "example-contacts-python");
}

#[test]
fn the_javascript_example_passes_what_it_claims() {
    passes_what_the_example_claims(&test_guests::languages::js_example(), "example-contacts-js");
}

fn passes_what_the_example_claims(plugin: &Path, name: &str) {
    let out = plugin_test_kept(plugin, &["--json"]);
    let report = json(&out);
    assert!(out.status.success(), "{report:#}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(report["plugin"].as_str().unwrap().starts_with(&format!("{name} ")), "{report:#}");
    assert_eq!(report["contract"], "registry:provisioning@0.2.0", "{report:#}");
    for passing in ["oauth.client-credentials", "provision.create", "provision.update", "provision.repeat", "provision.delete", "settings.bad-refused", "errors.invalid-person", "sandbox.allowlist"] {
        assert_eq!(check(&report, passing)["status"], "pass", "{passing}: {report:#}");
    }
    assert_eq!(check(&report, "oauth.code-exchange")["status"], "skip");
    assert_eq!(report["failed"], 0);
}

/// An uncaught exception shows the author their own language's error: the
/// Python traceback, the JavaScript exception, on the FAIL line.
#[test]
fn a_broken_python_plugin_fails_with_its_traceback() {
    let out = plugin_test_kept(&test_guests::languages::python_broken(), &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let fail = stdout.split("\nFAIL  settings.valid-accepted").nth(1).unwrap_or_else(|| panic!("{stdout}"));
    let fail = fail.split("\npass ").next().unwrap();
    assert!(fail.contains("it panicked: Python function threw an unexpected exception"), "{fail}");
    assert!(fail.contains("  | Traceback (most recent call last):"), "{fail}");
    assert!(fail.contains("broken_app.py"), "the author's file and line: {fail}");
    assert!(fail.contains("  | KeyError: 'region'"), "{fail}");
}

#[test]
fn a_broken_javascript_plugin_fails_with_its_exception() {
    let out = plugin_test_kept(&test_guests::languages::js_broken(), &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    let detail = check(&report, "provision.create")["detail"].as_str().unwrap().to_string();
    assert!(detail.contains("it crashed: "), "{detail}");
    assert!(detail.contains("  | invalid variant tag value `undefined` (received `TypeError: can't access property 1, context.settings.find(...) is undefined`)"), "the exception as JavaScript names it: {detail}");
    assert!(detail.contains("  |   export_provisioningTarget_0_2_0$provision@"), "and its stack: {detail}");
}
