//! The admin UI of hosts sharing a PostgreSQL database: the Nodes page
//! lists every live node and marks the one answering; a single host on
//! SQLite says how several are run instead.

use std::path::PathBuf;
use std::time::Duration;

use registry_host::serve::{ServeConfig, Shared};
use registry_plugin_runtime::RuntimeConfig;

use crate::pg::database;
use crate::web::Harness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nodes_page_lists_every_live_node_and_marks_this_one() {
    let Some(url) = database().await else { return };
    // One data directory for both: its key file is the key they share
    // (a node never makes one for a shared database).
    let dir = tempfile::tempdir().unwrap();
    registry_host::secrets::SecretBox::key_file(&dir.path().join(registry_host::secrets::KEY_FILE)).unwrap();
    let start = |node: &str| {
        registry_host::serve::start(ServeConfig {
            data_dir: dir.path().to_path_buf(),
            listen: "127.0.0.1:0".parse().unwrap(),
            public_url: None,
            plugins: vec![PathBuf::from(test_guests::salesforce_plugin())],
            runtime: RuntimeConfig::default(),
            demo: false,
            engine: crate::common::fast_engine(),
            web: Default::default(),
            database: Some(Shared { url: url.clone(), node: node.into(), lease: Duration::from_secs(60) }),
        })
    };
    let a = start("web-a").await.unwrap();
    let b = start("web-b").await.unwrap();
    registry_host::auth::create_admin(&b.store, "ada", "correct horse battery staple").await.unwrap();
    let h = Harness::with((a, tempfile::tempdir().unwrap()));
    let (status, _, _) = h.get("/nodes").await;
    assert_eq!(status, 303, "admins only");
    assert_eq!(h.submit_login("ada", "correct horse battery staple").await.0, 303);
    let (status, page, _) = h.get("/nodes").await;
    assert_eq!(status, 200);
    assert!(page.contains("id=\"nav-nodes\""), "the Nodes link is in the menu");
    let row = |id: &str| page.split(&format!("data-node=\"{id}\"")).nth(1).and_then(|r| r.split("</tr>").next()).map(str::to_string);
    let this = row("web-a").expect("node a is listed");
    let other = row("web-b").expect("node b is listed");
    assert!(this.contains("this node") && !other.contains("this node"), "{this}\n{other}");
    assert!(other.contains(&std::process::id().to_string()), "its process: {other}");
    drop(b);
}

#[tokio::test]
async fn a_single_host_on_sqlite_has_no_nodes_to_list() {
    let h = Harness::start().await;
    h.login().await;
    let (status, page, _) = h.get("/nodes").await;
    assert_eq!(status, 200);
    assert!(page.contains("id=\"single-node\"") && page.contains("--database"), "{page}");
    assert!(!h.get("/servers").await.1.contains("nav-nodes"), "no Nodes link in the menu");
}
