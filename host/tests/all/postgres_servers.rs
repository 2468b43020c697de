//! OAuth2 servers on a real PostgreSQL shared by several nodes: one token
//! renewal at a time across all of them (a rotating refresh token is
//! spent once), and a node with another secret key refuses to start.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use registry_host::domain::{ServerInput, TokenStatus};
use registry_host::secrets::SecretBox;
use registry_host::store::StoreError;
use registry_host::store::postgres::{PgConfig, PgStore};
use registry_plugin_runtime::latest::types::{GrantType, TokenSet};

use crate::pg::{database, node};

fn input(name: &str, grant_type: GrantType) -> ServerInput {
    ServerInput { scope: Some("api refresh_token".into()), ..ServerInput::example(name, "p", grant_type) }
}

fn tokens(access: &str, refresh: Option<&str>) -> TokenSet {
    TokenSet {
        access_token: access.into(),
        refresh_token: refresh.map(str::to_string),
        instance_url: Some("https://na1.example.com".into()),
        issued_at: Some(1),
        expires_at: None,
        scope: None,
        token_type: "Bearer".into(),
        extra: vec![],
    }
}

/// Three nodes find the access token refused at once. One refreshes
/// (spending the rotating refresh token once); the others wait for the
/// row and take what it got. The first client-credentials fetch goes
/// through the same lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_renew_a_token_once() {
    let Some(url) = database().await else { return };
    let (a, b, c) = (node(&url, "a", 120_000).await, node(&url, "b", 120_000).await, node(&url, "c", 120_000).await);
    let id = a.create_server(&input("Org", GrantType::AuthorizationCode)).await.unwrap();
    a.save_tokens(id, &tokens("old", Some("r1"))).await.unwrap();

    let refreshes = Arc::new(AtomicUsize::new(0));
    let renew = |n: PgStore| {
        let refreshes = refreshes.clone();
        async move {
            n.renew_locked(id, Some("old"), Duration::from_secs(10), |held| async move {
                let held = held.expect("tokens are held");
                // A provider with rotation: the refresh token is spent.
                assert_eq!(held.refresh_token.as_deref(), Some("r1"), "a refresh token is used once");
                refreshes.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok::<_, StoreError>(tokens("new", Some("r2")))
            })
            .await
            .unwrap()
        }
    };
    let (x, y, z) = tokio::join!(renew(a.clone()), renew(b.clone()), renew(c.clone()));
    assert_eq!(refreshes.load(Ordering::SeqCst), 1);
    for t in [x, y, z] {
        assert_eq!((t.access_token.as_str(), t.refresh_token.as_deref()), ("new", Some("r2")));
    }
    assert_eq!(c.tokens(id).await.unwrap().unwrap().refresh_token.as_deref(), Some("r2"));
    assert_eq!(b.server(id).await.unwrap().token_status, TokenStatus::Set);

    // The first token of a grant without a browser: one fetch.
    let cc = a.create_server(&input("Service", GrantType::ClientCredentials)).await.unwrap();
    let fetches = Arc::new(AtomicUsize::new(0));
    let first = |n: PgStore| {
        let fetches = fetches.clone();
        async move {
            n.renew_locked(cc, None, Duration::from_secs(10), |held| async move {
                assert!(held.is_none());
                fetches.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok::<_, StoreError>(tokens("cc-1", None))
            })
            .await
            .unwrap()
            .access_token
        }
    };
    let got = tokio::join!(first(a.clone()), first(b.clone()), first(c.clone()));
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    assert_eq!(got, ("cc-1".to_string(), "cc-1".to_string(), "cc-1".to_string()));
}

/// A renewal that fails stores nothing and lets the row go: the next
/// attempt (on any node) tries again with the same tokens.
#[tokio::test]
async fn a_failed_renewal_stores_nothing() {
    let Some(url) = database().await else { return };
    let (a, b) = (node(&url, "a", 120_000).await, node(&url, "b", 120_000).await);
    let id = a.create_server(&input("Org", GrantType::AuthorizationCode)).await.unwrap();
    a.save_tokens(id, &tokens("old", Some("r1"))).await.unwrap();
    let failed = a
        .renew_locked(id, Some("old"), Duration::from_secs(5), |_| async { Err::<TokenSet, _>(StoreError::Conflict("the provider said no".into())) })
        .await;
    assert!(matches!(failed, Err(StoreError::Conflict(_))));
    assert_eq!(b.tokens(id).await.unwrap().unwrap().access_token, "old");
    let renewed = b.renew_locked(id, Some("old"), Duration::from_secs(5), |_| async { Ok::<_, StoreError>(tokens("new", Some("r2"))) }).await.unwrap();
    assert_eq!(renewed.access_token, "new");
    assert_eq!(a.server_config(id).await.unwrap().client_secret, "s3cret", "the secret opens on every node");
    assert!(matches!(a.create_server(&input("Org", GrantType::ClientCredentials)).await, Err(StoreError::Conflict(m)) if m.contains("already exists")));
}

/// Every node must hold the key the database's secrets are sealed with:
/// the first records its fingerprint, and a node with another key refuses
/// to start, saying what to do.
#[tokio::test]
async fn a_node_with_another_secret_key_refuses_to_start() {
    let Some(url) = database().await else { return };
    let first = node(&url, "a", 120_000).await;
    let other = PgStore::connect(&url, "b", SecretBox::new(&[8; 32]), PgConfig::default()).await;
    let Err(e) = other else { panic!("a node with another key started") };
    assert!(matches!(e, StoreError::KeyMismatch { .. }), "{e}");
    assert!(e.to_string().contains("REGISTRY_HOST_SECRET_KEY"), "{e}");
    assert!(first.live_nodes(Duration::from_secs(30)).await.unwrap().iter().all(|n| n.id == "a"), "the refused node never registered");
    node(&url, "c", 120_000).await;
}

/// What one node keeps for a browser works on every node: three nodes
/// starting together make one first admin; a login made on one node is
/// known to the others; a message for the next page is shown once; an
/// OAuth callback that lands on another node completes the sign-in, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logins_and_sign_ins_work_on_any_node() {
    use registry_host::store::PendingOrigin;
    let Some(url) = database().await else { return };
    let (a, b, c) = (node(&url, "a", 120_000).await, node(&url, "b", 120_000).await, node(&url, "c", 120_000).await);
    let made = tokio::join!(a.create_first_admin("admin", "h1"), b.create_first_admin("admin", "h1"), c.create_first_admin("admin", "h1"));
    let made = [made.0.unwrap(), made.1.unwrap(), made.2.unwrap()];
    assert_eq!(made.iter().filter(|m| m.is_some()).count(), 1, "{made:?}");
    assert_eq!(c.admin_count().await.unwrap(), 1);
    let admin = made.iter().flatten().next().copied().unwrap();
    assert!(matches!(b.delete_admin(admin).await, Err(StoreError::Conflict(_))), "the last admin stays");

    a.create_session("cookie-hash", admin, "csrf", 60_000).await.unwrap();
    let s = b.session("cookie-hash").await.unwrap().expect("node b knows the login");
    assert_eq!((s.admin_id, s.username.as_str(), s.csrf_token.as_str()), (admin, "admin", "csrf"));
    a.set_flash("cookie-hash", "Saved.").await.unwrap();
    let shown = tokio::join!(b.take_flash("cookie-hash"), c.take_flash("cookie-hash"));
    let shown = [shown.0.unwrap(), shown.1.unwrap()];
    assert_eq!(shown.iter().flatten().collect::<Vec<_>>(), vec!["Saved."], "shown once: {shown:?}");

    let server = a.create_server(&input("Org", GrantType::AuthorizationCode)).await.unwrap();
    a.put_pending("state-1", server, "verifier", "https://registry.example.com/oauth/callback", PendingOrigin { session: "sess", popup: true, admin: None }, 60_000).await.unwrap();
    let taken = tokio::join!(b.take_pending("state-1"), c.take_pending("state-1"));
    let taken = [taken.0.unwrap(), taken.1.unwrap()];
    let got: Vec<_> = taken.iter().flatten().collect();
    assert_eq!(got.len(), 1, "a callback completes once");
    assert_eq!((got[0].server_id, got[0].code_verifier.as_str(), got[0].session.as_str(), got[0].popup, got[0].expired), (server, "verifier", "sess", true, false));

    b.set_password(admin, "h2", Some("cookie-hash")).await.unwrap();
    a.create_session("other-hash", admin, "csrf2", 60_000).await.unwrap();
    assert_eq!(c.end_sessions(admin, Some("cookie-hash")).await.unwrap(), 1);
    assert_eq!(a.session_count(admin).await.unwrap(), 1);
    let token = a.create_api_token("feed", None).await.unwrap();
    assert_eq!(b.api_token(&token).await.unwrap().as_deref(), Some("feed"));
    assert!(c.revoke_api_token("feed").await.unwrap());
    assert_eq!(a.api_token(&token).await.unwrap(), None);
}

/// The real thing: the Salesforce plugin refreshing against the emulator
/// with refresh-token rotation on. Three nodes find the access token
/// expired at once; the emulator sees one `refresh_token` grant, the token
/// family stays alive (a second use of the old refresh token would have
/// revoked it), and every node carries on with the new token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_with_rotation_make_one_refresh_grant_at_the_emulator() {
    use registry_plugin_testbed::TestBed;
    use salesforce_emulator::RefreshStatus;
    let Some(url) = database().await else { return };
    let bed = Arc::new(TestBed::start(test_guests::salesforce_plugin()).await.unwrap());
    bed.emulator.set_rotation(true);
    let first = bed.authorize().await.unwrap();
    let (a, b, c) = (node(&url, "a", 120_000).await, node(&url, "b", 120_000).await, node(&url, "c", 120_000).await);
    let id = a.create_server(&ServerInput::for_config("Org", "salesforce", &bed.server(GrantType::AuthorizationCode))).await.unwrap();
    a.save_tokens(id, &first).await.unwrap();
    bed.emulator.expire_access_tokens();
    bed.emulator.clear_request_log();

    let refresh = |n: PgStore| {
        let (bed, stale) = (bed.clone(), first.access_token.clone());
        async move {
            let config = n.server_config(id).await.unwrap();
            n.renew_locked(id, Some(&stale), Duration::from_secs(20), |held| async move {
                let held = held.expect("tokens are held");
                let fresh = bed.plugin.refresh(&config, &held, &bed.allowlist(Some(&held))).await?;
                fresh.map_err(|e| anyhow::anyhow!(registry_plugin_runtime::contract::explain(&e)))
            })
            .await
            .unwrap()
        }
    };
    let (x, y, z) = tokio::join!(refresh(a.clone()), refresh(b.clone()), refresh(c.clone()));
    let grants = bed.emulator.request_log().iter().filter(|r| r.path == "/services/oauth2/token").count();
    assert_eq!(grants, 1, "one refresh_token grant for three nodes");
    assert!(x.access_token != first.access_token && x == y && y == z, "every node has the new token");
    let rotated = x.refresh_token.clone().expect("rotation issues a new refresh token");
    assert_ne!(Some(rotated.as_str()), first.refresh_token.as_deref());
    assert_eq!(bed.emulator.refresh_token_status(&rotated), Some(RefreshStatus::Active), "the family lives");
    assert_eq!(bed.emulator.refresh_token_status(first.refresh_token.as_deref().unwrap()), Some(RefreshStatus::RotatedOut));
    assert_eq!(c.server(id).await.unwrap().token_status, TokenStatus::Set);
}

/// The rest of a server's state on PostgreSQL: an edit that changes what
/// the tokens belong to clears them and the admins' own; JWT signing keys
/// switch once when two nodes switch at once; the audit trail and the
/// notification ledger are shared by every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn edits_keys_audit_and_notifications_are_shared_by_the_nodes() {
    use registry_host::store::{AuditFilter, KeyRole, NewSigningKey};
    let Some(url) = database().await else { return };
    let (a, b) = (node(&url, "a", 120_000).await, node(&url, "b", 120_000).await);
    let admin = a.create_admin("ada", "h").await.unwrap();
    let mut config = input("Org", GrantType::JwtBearer);
    let id = a.create_server(&config).await.unwrap();
    a.save_tokens(id, &tokens("at", None)).await.unwrap();
    b.save_admin_tokens(admin, id, &tokens("mine", Some("r")), Some("ada@example.com")).await.unwrap();
    assert_eq!(a.admin_tokens(admin, id).await.unwrap().unwrap().access_token, "mine");
    a.admin_token_checked(admin, id, Err(("revoked", true))).await.unwrap();
    assert!(b.admin_tokens(admin, id).await.unwrap().is_none(), "a dead token is not offered");
    assert_eq!(b.admin_tokens_for_revoke(admin, id).await.unwrap().unwrap().refresh_token.as_deref(), Some("r"));
    let listed = b.admin_token_list(admin).await.unwrap();
    assert_eq!((listed[0].login.as_deref(), listed[0].usable, listed[0].last_error.as_deref()), (Some("ada@example.com"), false, Some("revoked")));

    config.description = "renamed only".into();
    config.client_secret = None;
    assert!(!b.update_server(id, &config).await.unwrap().tokens_cleared, "a description keeps the tokens");
    config.client_secret = Some("new secret".into());
    assert!(b.update_server(id, &config).await.unwrap().tokens_cleared);
    assert_eq!(a.server(id).await.unwrap().token_status, TokenStatus::NotSet);
    assert!(a.admin_token_list(admin).await.unwrap().is_empty(), "the admins' own tokens went too");
    assert_eq!(a.server_config(id).await.unwrap().client_secret, "new secret");

    let key = |pem| NewSigningKey { private_key_pem: pem, certificate: "CERT", fingerprint: "AA:BB", not_after: 1 };
    a.put_signing_key(id, KeyRole::Current, &key("old pem")).await.unwrap();
    let next = b.put_signing_key(id, KeyRole::Next, &key("next pem")).await.unwrap();
    let switched = tokio::join!(a.promote_next_key(id, next), b.promote_next_key(id, next));
    assert_eq!([switched.0.unwrap(), switched.1.unwrap()].iter().filter(|s| **s).count(), 1, "one switch");
    let (current, pem) = a.signing_key_private(id, KeyRole::Current).await.unwrap().unwrap();
    assert_eq!((current.id, pem.as_str()), (next, "next pem"));
    assert!(b.signing_key_private(id, KeyRole::Next).await.unwrap().is_none());

    a.audit("ada", "server.update", "Org", serde_json::json!({"client_secret": "x", "name": "Org"})).await.unwrap();
    b.audit("cli:root", "target.create", "T", serde_json::json!({})).await.unwrap();
    let servers = b.audit_entries(&AuditFilter { action: Some("server.".into()), ..Default::default() }, 10).await.unwrap();
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0].detail["client_secret"], "[redacted]");
    assert_eq!(a.audit_entries(&AuditFilter::default(), 10).await.unwrap()[0].actor, "cli:root", "newest first");

    let sent = tokio::join!(a.claim_notification("quarantine:1", 60_000), b.claim_notification("quarantine:1", 60_000));
    assert_eq!([sent.0.unwrap(), sent.1.unwrap()].iter().filter(|s| **s).count(), 1, "one node sends it");
    a.delete_server(id).await.unwrap();
    assert!(matches!(b.server(id).await, Err(StoreError::NotFound(_))));
}

/// Rotating the shared key re-seals every secret and records the new
/// key's fingerprint: a node with the new key starts and opens them; one
/// still holding the old key is refused.
#[tokio::test]
async fn a_key_rotation_moves_every_node_to_the_new_key() {
    let Some(url) = database().await else { return };
    let a = node(&url, "a", 120_000).await;
    let id = a.create_server(&input("Org", GrantType::AuthorizationCode)).await.unwrap();
    a.save_tokens(id, &tokens("at", Some("rt"))).await.unwrap();
    let new = SecretBox::new(&[9; 32]);
    assert_eq!(a.reseal(&new).await.unwrap(), 3, "the secret and both tokens");
    let b = PgStore::connect(&url, "b", new, PgConfig::default()).await.expect("the new key is the database's");
    assert_eq!(b.server_config(id).await.unwrap().client_secret, "s3cret");
    assert_eq!(b.tokens(id).await.unwrap().unwrap().refresh_token.as_deref(), Some("rt"));
    assert!(matches!(PgStore::connect(&url, "c", SecretBox::new(&[7; 32]), PgConfig::default()).await, Err(StoreError::KeyMismatch { .. })));
    assert_eq!(b.migrate().await.unwrap(), 0, "the schema was left as it was");
}

/// The app's own renewal (`OAuth::renew`) on a shared database: three
/// nodes, each with its own OAuth and store, find the access token
/// refused at once; the Salesforce emulator with rotation on sees one
/// refresh grant and every node gets the new token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_apps_renewal_is_one_across_nodes() {
    use registry_host::oauth::OAuth;
    use registry_host::store::Store;
    use registry_plugin_testbed::TestBed;
    use std::collections::HashMap;
    let Some(url) = database().await else { return };
    let bed = TestBed::start(test_guests::salesforce_plugin()).await.unwrap();
    bed.emulator.set_rotation(true);
    let first = bed.authorize().await.unwrap();
    let plugins = Arc::new(HashMap::from([("salesforce".to_string(), bed.plugin.clone())]));
    let mut nodes = Vec::new();
    for n in ["a", "b", "c"] {
        let store = Arc::new(Store::from(node(&url, n, 120_000).await));
        nodes.push((store.clone(), OAuth::new(store, plugins.clone(), "http://127.0.0.1:9", true)));
    }
    let mut input = ServerInput::for_config("Org", "salesforce", &bed.server(GrantType::AuthorizationCode));
    input.api_hosts = vec![registry_plugin_runtime::HostPattern::exact(&registry_plugin_runtime::Origin::of_url(&bed.emulator.instance_url()).unwrap()).to_string()];
    let id = nodes[0].0.create_server(&input).await.unwrap();
    nodes[0].0.save_tokens(id, &first).await.unwrap();
    bed.emulator.expire_access_tokens();
    bed.emulator.clear_request_log();
    let stale = first.access_token.clone();
    let (x, y, z) = tokio::join!(nodes[0].1.renew(id, Some(&stale)), nodes[1].1.renew(id, Some(&stale)), nodes[2].1.renew(id, Some(&stale)));
    let (x, y, z) = (x.unwrap(), y.unwrap(), z.unwrap());
    assert_eq!(bed.emulator.request_log().iter().filter(|r| r.path == "/services/oauth2/token").count(), 1);
    assert!(x == y && y == z && x.access_token != stale);
    assert_eq!(nodes[2].0.server(id).await.unwrap().token_status, TokenStatus::Set);
    // A dead refresh token: the server needs an admin, said once the lock is gone.
    bed.emulator.revoke_refresh_token(x.refresh_token.as_deref().unwrap()).unwrap();
    bed.emulator.expire_access_tokens();
    assert!(nodes[1].1.renew(id, Some(&x.access_token)).await.is_err());
    assert_eq!(nodes[0].0.server(id).await.unwrap().token_status, TokenStatus::NeedsReauthorization);

    // An admin's own token, refused on three nodes at once: one refresh
    // grant too (their row is locked as the server's is), every node gets
    // the new token, the family lives.
    let admin = nodes[0].0.create_admin("ada", "hash").await.unwrap();
    let own = bed.authorize().await.unwrap();
    nodes[0].0.save_admin_tokens(admin, id, &own, Some("ada@example.org")).await.unwrap();
    bed.emulator.expire_access_tokens();
    bed.emulator.clear_request_log();
    let stale = own.access_token.clone();
    let (x, y, z) = tokio::join!(
        nodes[0].1.refresh_personal(id, admin, &stale),
        nodes[1].1.refresh_personal(id, admin, &stale),
        nodes[2].1.refresh_personal(id, admin, &stale)
    );
    let (x, y, z) = (x.unwrap(), y.unwrap(), z.unwrap());
    assert_eq!(bed.emulator.request_log().iter().filter(|r| r.path == "/services/oauth2/token").count(), 1, "one refresh grant for an admin's token on three nodes");
    assert!(x == y && y == z && x.access_token != stale);
    assert_eq!(bed.emulator.refresh_token_status(x.refresh_token.as_deref().unwrap()), Some(salesforce_emulator::RefreshStatus::Active));
    assert_eq!(nodes[1].0.admin_tokens(admin, id).await.unwrap(), Some(x));
}
