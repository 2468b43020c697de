//! The Salesforce plugin's `oauth2-server` exports, run in the sandbox
//! against the emulator: every HTTP request goes through wasi:http and the
//! host's allowlist.

use base64::Engine as _;
use registry_plugin_runtime::latest::oauth2_server::AuthorizationRequest;
use registry_plugin_runtime::latest::types::{GrantType, Oauth2ServerConfig, PluginError, TokenSet};
use registry_plugin_runtime::{Failure, HttpAllowlist, Plugin, Runtime, RuntimeConfig};
use salesforce_emulator::seed::{DEMO_CONSUMER_KEY, DEMO_CONSUMER_SECRET, DEMO_USERNAME};
use salesforce_emulator::{Emulator, Seed};
use sha2::{Digest, Sha256};

const CALLBACK: &str = "http://127.0.0.1:9/oauth2/callback/1";

async fn plugin() -> Plugin {
    let runtime = Runtime::new(RuntimeConfig { insecure_loopback: true, ..RuntimeConfig::default() }).unwrap();
    runtime.load_file(std::path::Path::new(test_guests::salesforce_plugin())).await.unwrap()
}

fn config(emu: &Emulator, secret: &str) -> Oauth2ServerConfig {
    Oauth2ServerConfig {
        server_url: format!("{}/services/oauth2", emu.login_url()),
        client_id: DEMO_CONSUMER_KEY.into(),
        client_secret: secret.into(),
        grant_type: GrantType::AuthorizationCode,
        scope: Some("api refresh_token".into()),
        token_url: None,
    }
}

fn allow(urls: &[&str]) -> HttpAllowlist {
    urls.iter().fold(HttpAllowlist::none(), |a, u| a.allow_url(u).unwrap())
}

async fn obtain(plugin: &Plugin, emu: &Emulator) -> TokenSet {
    let verifier = "a-verifier-of-at-least-forty-three-characters-0123456789";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier));
    let req = AuthorizationRequest { state: "state-1".into(), code_challenge: challenge.clone(), redirect_uri: CALLBACK.into(), prompt: Some("login".into()) };
    let url = plugin.authorization_url(&config(emu, DEMO_CONSUMER_SECRET), &req).await.unwrap().unwrap();
    assert!(url.starts_with(&format!("{}/services/oauth2/authorize?response_type=code&client_id=", emu.login_url())), "{url}");
    assert!(url.contains(&format!("code_challenge={challenge}")) && url.contains("code_challenge_method=S256") && url.contains("prompt=login"));
    let callback = url::Url::parse(&registry_plugin_testbed::consent_at(&url, &emu.login_url(), true).await.unwrap()).unwrap();
    let get = |k: &str| callback.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned()).unwrap();
    let (code, state) = (get("code"), get("state"));
    assert_eq!(state, "state-1");
    plugin
        .exchange_code(&config(emu, DEMO_CONSUMER_SECRET), &code, CALLBACK, Some(verifier), &allow(&[&emu.login_url()]))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn obtain_check_refresh_rotate_and_revoke_through_the_sandbox() {
    let emu = Emulator::start(Seed::demo(vec![CALLBACK.into()])).unwrap();
    let plugin = plugin().await;
    let cfg = config(&emu, DEMO_CONSUMER_SECRET);
    let tokens = obtain(&plugin, &emu).await;
    assert_eq!(tokens.instance_url.as_deref(), Some(emu.instance_url().as_str()));
    assert!(tokens.refresh_token.is_some());
    assert_eq!(tokens.token_type, "Bearer");
    assert!(tokens.extra.iter().any(|(k, v)| k == "id" && v.starts_with(&emu.login_url())));
    let both = allow(&[&emu.login_url(), &emu.instance_url()]);

    let info = plugin.check_connection(&cfg, &tokens, &both).await.unwrap().unwrap();
    assert_eq!(info.user.as_deref(), Some(DEMO_USERNAME));
    assert_eq!(info.organization.as_deref(), Some(emu.orgs()[0].id.as_str()));
    let usage = info.api_usage.unwrap();
    assert_eq!((usage.used, usage.limit), (1, 15_000));

    // Without the instance host on the allowlist the check is stopped.
    let err = plugin.check_connection(&cfg, &tokens, &allow(&[&emu.login_url()])).await.unwrap_err();
    assert!(matches!(err.failure, Failure::HttpDenied(_)), "{err}");

    emu.expire_access_tokens();
    let refused = plugin.check_connection(&cfg, &tokens, &both).await.unwrap();
    assert!(matches!(refused, Err(PluginError::Unauthorized(_))), "{refused:?}");
    let fresh = plugin.refresh(&cfg, &tokens, &allow(&[&emu.login_url()])).await.unwrap().unwrap();
    assert_ne!(fresh.access_token, tokens.access_token);
    assert_eq!(fresh.refresh_token, tokens.refresh_token, "no rotation: the old refresh token is kept");
    plugin.check_connection(&cfg, &fresh, &both).await.unwrap().unwrap();

    emu.set_rotation(true);
    let rotated = plugin.refresh(&cfg, &fresh, &allow(&[&emu.login_url()])).await.unwrap().unwrap();
    assert_ne!(rotated.refresh_token, fresh.refresh_token, "a rotated refresh token is kept");

    plugin.revoke(&cfg, &rotated, &allow(&[&emu.login_url()])).await.unwrap().unwrap();
    let dead = plugin.refresh(&cfg, &rotated, &allow(&[&emu.login_url()])).await.unwrap();
    assert!(matches!(dead, Err(PluginError::ReauthorizationRequired(_))), "{dead:?}");
    // Revoking again: the provider no longer knows it, which counts as revoked.
    plugin.revoke(&cfg, &rotated, &allow(&[&emu.login_url()])).await.unwrap().unwrap();
}

#[tokio::test]
async fn migration_is_followed_through_refresh() {
    let emu = Emulator::start(Seed::demo(vec![CALLBACK.into()])).unwrap();
    let plugin = plugin().await;
    let cfg = config(&emu, DEMO_CONSUMER_SECRET);
    let tokens = obtain(&plugin, &emu).await;
    let old = tokens.instance_url.clone().unwrap();
    let new = emu.migrate().unwrap();
    let refused = plugin.check_connection(&cfg, &tokens, &allow(&[&emu.login_url(), &old])).await.unwrap();
    assert!(matches!(refused, Err(PluginError::Unauthorized(_))));
    let fresh = plugin.refresh(&cfg, &tokens, &allow(&[&emu.login_url()])).await.unwrap().unwrap();
    assert_eq!(fresh.instance_url.as_deref(), Some(new.as_str()));
    plugin.check_connection(&cfg, &fresh, &allow(&[&emu.login_url(), &new])).await.unwrap().unwrap();
}

#[tokio::test]
async fn client_credentials_and_configuration_errors() {
    let emu = Emulator::start(Seed::demo(vec![CALLBACK.into()])).unwrap();
    let plugin = plugin().await;
    let login = allow(&[&emu.login_url()]);
    let t = plugin.client_credentials(&config(&emu, DEMO_CONSUMER_SECRET), &login).await.unwrap().unwrap();
    assert!(t.refresh_token.is_none());
    assert_eq!(t.instance_url.as_deref(), Some(emu.instance_url().as_str()));

    let wrong = plugin.client_credentials(&config(&emu, "wrong-secret"), &login).await.unwrap();
    assert!(matches!(&wrong, Err(PluginError::InvalidConfig(f)) if f.field == "client_secret"), "{wrong:?}");
    let mut bad_id = config(&emu, DEMO_CONSUMER_SECRET);
    bad_id.client_id = "3MVG9unknown".into();
    let r = plugin.client_credentials(&bad_id, &login).await.unwrap();
    assert!(matches!(&r, Err(PluginError::InvalidConfig(f)) if f.field == "client_id"), "{r:?}");
    let mut bad_url = config(&emu, DEMO_CONSUMER_SECRET);
    bad_url.server_url = "http://login.salesforce.com".into();
    let r = plugin.client_credentials(&bad_url, &login).await.unwrap();
    assert!(matches!(&r, Err(PluginError::InvalidConfig(f)) if f.field == "server_url"), "{r:?}");
    // A server the allowlist does not name is never reached.
    let err = plugin.client_credentials(&config(&emu, DEMO_CONSUMER_SECRET), &HttpAllowlist::none()).await.unwrap_err();
    assert!(matches!(err.failure, Failure::HttpDenied(_)));
}
