//! What the guest's 64 MiB memory cap does not count, bounded by the host:
//! header maps and other resources, data copied out of the guest (strings
//! that alias one region), and the texts a plugin hands back. Tables are
//! tested in `limits.rs` with a hand-made core module (Rust cannot emit
//! `table.grow`).

use registry_plugin_runtime::latest::provisioning_target::{ProvisionRequest, TargetContext};
use registry_plugin_runtime::latest::types::{Name, Person, PersonStatus, PluginError, ProvisioningAction, TokenSet};
use registry_plugin_runtime::{Failure, HttpAllowlist, Plugin, Runtime, RuntimeConfig};

async fn hoarder() -> Plugin {
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    runtime.load_file(test_guests::hostile_hoarder()).await.unwrap()
}

fn context() -> TargetContext {
    let tokens = TokenSet { access_token: "a".into(), refresh_token: None, instance_url: None, issued_at: None, expires_at: None, scope: None, token_type: "Bearer".into(), extra: vec![] };
    TargetContext { settings: vec![], tokens }
}

/// A request whose given name tells the hoarder what to hoard.
fn request(how: &str) -> ProvisionRequest {
    let name = Name { honorific: None, given: how.into(), middle: None, family: None, suffix: None };
    let person = Person { id: "P1".into(), status: PersonStatus::Active, name, emails: vec![], identifiers: vec![], roles: vec![] };
    ProvisionRequest { action: ProvisioningAction::PersonAdded, person, current: None }
}

#[tokio::test]
async fn header_maps_stop_at_the_resource_cap() {
    let plugin = hoarder().await;
    let error = plugin.provision(&context(), &request("headers"), &HttpAllowlist::none()).await.unwrap_err();
    let Failure::Limit(why) = &error.failure else { panic!("{error}") };
    // 1,024 resources of at most 16 KiB of headers each: 16 MiB at most
    // (it was 4,096 of 64 KiB, 256 MiB).
    assert!(why.contains("more than 1024 resources"), "{error}");
    let error = plugin.provision(&context(), &request("big-headers"), &HttpAllowlist::none()).await.unwrap_err();
    let Failure::Limit(why) = &error.failure else { panic!("{error}") };
    assert!(why.contains("more than 16 KiB of headers in one header map"), "{error}");
}

#[tokio::test]
async fn aliased_strings_cannot_make_the_host_copy_more_than_the_transfer_cap() {
    let plugin = hoarder().await;
    let requests = vec![request("aliased")];
    let error = plugin.provision_batch(&context(), &requests, &HttpAllowlist::none()).await.unwrap_err();
    // 64 summaries pointing at one 1 MiB string: 64 MiB to copy, refused.
    let Failure::Limit(why) = &error.failure else { panic!("{error}") };
    assert!(why.contains("more than 16 MiB of data"), "{error}");
}

#[tokio::test]
async fn a_plugins_texts_are_cut_and_cleaned_before_anyone_stores_them() {
    let plugin = hoarder().await;
    let outcome = plugin.provision(&context(), &request("long-summary"), &HttpAllowlist::none()).await.unwrap().unwrap();
    assert!(outcome.summary.len() <= 2000 + 6 && outcome.summary.ends_with(" [cut]"), "{} bytes", outcome.summary.len());
    let error = plugin.provision(&context(), &request("long-error"), &HttpAllowlist::none()).await.unwrap().unwrap_err();
    let PluginError::Remote(remote) = error else { panic!("{error:?}") };
    assert!(!remote.code.chars().any(char::is_control) && remote.code.starts_with("CODE\\r\\nINFO"), "{}", remote.code);
    assert!(!remote.message.chars().any(char::is_control) && remote.message.len() <= 2000 + 6, "{} bytes", remote.message.len());
}

/// A plugin whose memory is too big to start says that, not that it "tried
/// to grow", and a load error says its cause once.
#[tokio::test]
async fn a_plugin_too_big_to_start_says_so_once() {
    let runtime = Runtime::new(RuntimeConfig { memory_limit: 256 << 10, ..RuntimeConfig::default() }).unwrap();
    let error = runtime.load_file(test_guests::salesforce_plugin()).await.err().expect("it cannot start in 256 KiB");
    let registry_plugin_runtime::LoadError::Info { call, .. } = &error else { panic!("{error}") };
    assert!(matches!(call.failure, Failure::InitialMemory { limit, .. } if limit == 256 << 10), "{error}");
    let text = format!("{:#}", anyhow::Error::new(error));
    assert_eq!(text.matches("bytes of memory to start").count(), 1, "{text}");
    assert!(!text.contains("grow"), "{text}");
}

#[tokio::test]
async fn a_plugin_that_reads_its_batch_over_and_over_is_stopped() {
    let plugin = hoarder().await;
    let requests: Vec<ProvisionRequest> = (0..10).map(|_| request("reread")).collect();
    let error = plugin.provision_batch(&context(), &requests, &HttpAllowlist::none()).await.unwrap_err();
    let Failure::Limit(why) = &error.failure else { panic!("{error}") };
    assert!(why.contains("read its batch of 10 requests more than 4 times over"), "{error}");
}
