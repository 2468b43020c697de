//! The CLI on a shared PostgreSQL database: `secrets rotate` with every
//! node stopped writes the new key to a file for the operator, re-seals
//! every secret and records the new key, so a node with the old key is
//! refused; a live node stops it first.

use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use registry_host::domain::{Scope, ServerInput, TargetInput};
use registry_host::secrets::SecretBox;
use registry_host::store::StoreError;
use registry_host::store::Store;
use registry_host::store::postgres::{PgConfig, PgStore, Topic};
use registry_plugin_runtime::latest::types::GrantType;

use crate::pg::database;

/// `registry-host --database URL ARGS` with the key `key`: (ok, stdout + stderr).
fn cli(url: &str, key: &[u8; 32], dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_registry-host"))
        .arg("--data-dir")
        .arg(dir)
        .args(["--database", url])
        .args(args)
        .env("REGISTRY_HOST_SECRET_KEY", base64::engine::general_purpose::STANDARD.encode(key))
        .env_remove("REGISTRY_HOST_LOG")
        .output()
        .expect("registry-host runs");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

async fn open(url: &str, key: &[u8; 32], register: bool) -> Result<PgStore, StoreError> {
    PgStore::connect(url, "web-1", SecretBox::new(key), PgConfig { register, lease: Duration::from_secs(60), ..PgConfig::default() }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_rotate_reseals_a_shared_database_once_every_node_is_stopped() {
    let Some(url) = database().await else { return };
    let old = [1u8; 32];
    let dir = tempfile::tempdir().unwrap();
    let node = open(&url, &old, true).await.unwrap();
    let server = node
        .create_server(&ServerInput { client_secret: Some("client secret".into()), ..ServerInput::example("Org", "p", GrantType::ClientCredentials) })
        .await
        .unwrap();
    // Without the shared key a command stops, and makes none of its own
    // (one it made would become an empty database's key unseen).
    let bare = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_registry-host"))
        .arg("--data-dir")
        .arg(bare.path())
        .args(["--database", &url, "nodes"])
        .env_remove("REGISTRY_HOST_SECRET_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("REGISTRY_HOST_SECRET_KEY"), "{out:?}");
    assert!(!bare.path().join(registry_host::secrets::KEY_FILE).exists(), "no key file was made");

    let file = dir.path().join("next.key");
    let file_arg = file.to_str().unwrap();

    let (ok, out) = cli(&url, &old, dir.path(), &["secrets", "rotate"]);
    assert!(!ok && out.contains("--new-key-file"), "{out}");
    let (ok, out) = cli(&url, &old, dir.path(), &["secrets", "rotate", "--new-key-file", file_arg]);
    assert!(!ok && out.contains("stop every node first") && out.contains("web-1"), "a live node is named: {out}");
    assert_eq!(node.server_config(server).await.unwrap().client_secret, "client secret", "nothing changed");
    node.stop().await.unwrap();
    // A file holding the key in use (a finished rotation's, say): refused,
    // rather than "rotating" to the same key.
    let same = dir.path().join("same.key");
    std::fs::write(&same, base64::engine::general_purpose::STANDARD.encode(old)).unwrap();
    #[cfg(unix)]
    std::fs::set_permissions(&same, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let (ok, out) = cli(&url, &old, dir.path(), &["secrets", "rotate", "--new-key-file", same.to_str().unwrap()]);
    assert!(!ok && out.contains("sealed with now"), "{out}");

    let (ok, out) = cli(&url, &old, dir.path(), &["secrets", "rotate", "--new-key-file", file_arg]);
    assert!(ok && out.contains("REGISTRY_HOST_SECRET_KEY"), "{out}");
    let text = std::fs::read_to_string(&file).unwrap();
    let new: [u8; 32] = base64::engine::general_purpose::STANDARD.decode(text.trim()).unwrap().try_into().unwrap();
    assert_ne!(new, old);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600, "the key file is the operator's alone");
    }
    assert!(matches!(open(&url, &old, true).await, Err(StoreError::KeyMismatch { .. })), "a node with the old key is refused");
    let renewed = open(&url, &new, true).await.expect("a node with the new key starts");
    assert_eq!(renewed.server_config(server).await.unwrap().client_secret, "client secret", "the secret opens under the new key");
    renewed.stop().await.unwrap();

    // Run again (as after a stop before the message): nothing more to do.
    let (ok, out) = cli(&url, &old, dir.path(), &["secrets", "rotate", "--new-key-file", file_arg]);
    assert!(ok && out.contains("already sealed"), "{out}");
}

/// Work a command queues on a shared database (an import, a reprovision)
/// wakes the serving nodes at once with a NOTIFY, not at their next poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commands_queued_work_wakes_the_serving_nodes() {
    let Some(url) = database().await else { return };
    let key = [2u8; 32];
    let dir = tempfile::tempdir().unwrap();
    let node = open(&url, &key, true).await.unwrap();
    let wakeups = node.start_wakeups(&url).await.unwrap();
    let store = Store::from(node.clone());
    let server = store.create_server(&ServerInput::example("Org", "p", GrantType::ClientCredentials)).await.unwrap();
    let target = TargetInput { name: "Contacts".into(), plugin: "p".into(), server_id: server, settings: vec![], enabled: true, scope: Scope::default() };
    store.create_target(&target).await.unwrap();
    let file = dir.path().join("people.csv");
    std::fs::write(&file, "id,given,family,emails\nW1,Ada,Lovelace,official:ada@example.org\nW2,Alan,Turing,official:alan@example.org\n").unwrap();
    let jobs = wakeups.woken(Topic::Jobs);
    for args in [vec!["people", "import", file.to_str().unwrap()], vec!["targets", "reprovision", "Contacts", "--no-wait"]] {
        let woken = jobs.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let (url, dir_path, args2) = (url.clone(), dir.path().to_path_buf(), args.iter().map(|a| a.to_string()).collect::<Vec<_>>());
        let (ok, out) = tokio::task::spawn_blocking(move || cli(&url, &key, &dir_path, &args2.iter().map(String::as_str).collect::<Vec<_>>())).await.unwrap();
        assert!(ok, "{args:?}: {out}");
        tokio::time::timeout(Duration::from_secs(5), woken).await.unwrap_or_else(|_| panic!("{args:?} woke the node"));
    }
    assert_eq!(node.job_counts(None).await.unwrap(), (2, 0), "each person queued once: the run took over the import's jobs");
}
