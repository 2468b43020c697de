//! Components of every contract version load side by side in one runtime and
//! answer through the latest types.

use registry_plugin_runtime::latest::plugin_info::Capabilities;
use registry_plugin_runtime::{ContractVersion, HttpAllowlist, LoadError, Runtime, RuntimeConfig};

#[tokio::test]
async fn a_0_1_0_and_a_0_2_0_component_load_in_one_runtime() {
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let old = runtime.load_file(test_guests::example_plugin_v0_1_0()).await.unwrap();
    let new = runtime.load_file(test_guests::example_plugin()).await.unwrap();
    assert_eq!(old.contract(), ContractVersion::V0_1_0);
    assert_eq!(new.contract(), ContractVersion::V0_2_0);
    assert_eq!(old.contract().to_string(), "registry:provisioning@0.1.0");
    assert_ne!(old.digest(), new.digest(), "two different components");

    // The old component's metadata comes up into the latest types intact;
    // 0.1.0 cannot declare API hosts or its server form.
    assert!(old.metadata().api_hosts.is_empty());
    assert!(old.metadata().server_form.server_urls.is_empty() && old.metadata().server_form.help.is_empty());
    assert_eq!(new.metadata().api_hosts, ["*.my.salesforce.com", "*.salesforce.com", "*.force.com"]);
    assert_eq!(new.metadata().server_form.server_urls[0].url, "https://login.salesforce.com");
    let mut old_meta = old.metadata().clone();
    old_meta.api_hosts = new.metadata().api_hosts.clone();
    old_meta.server_form = new.metadata().server_form.clone();
    assert_eq!(&old_meta, new.metadata());
    assert!(old.metadata().capabilities.contains(Capabilities::CLIENT_CREDENTIALS | Capabilities::PROVISION));

    // Its typed errors come up too: a bad setting is refused by both,
    // naming the same field.
    for plugin in [&old, &new] {
        let bad = plugin.validate_settings(&[("send_email".into(), "maybe".into())], &HttpAllowlist::none()).await.unwrap();
        let problems = bad.expect_err("a non-boolean is refused");
        assert_eq!(problems[0].field, "send_email", "{}", plugin.contract());
        assert_eq!(problems[0].message, "'maybe' is not true or false");
        assert_eq!(plugin.validate_settings(&[], &HttpAllowlist::none()).await.unwrap(), Ok(()));
    }
    let summary = registry_plugin_runtime::inspect::PluginSummary::of(&old);
    assert!(summary.to_table().contains("Contract      registry:provisioning@0.1.0"), "{}", summary.to_table());
}

#[tokio::test]
async fn a_component_of_no_known_contract_is_refused_by_name() {
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let empty_component = b"\0asm\x0d\0\x01\0";
    let error = runtime.load("empty", empty_component).await.err().expect("refused");
    assert!(matches!(error, LoadError::Contract { contract: None, .. }), "{error}");
    let text = error.to_string();
    assert!(text.contains("exports no registry:provisioning interface"), "{text}");
    assert!(text.contains("@0.1.0 and @0.2.0"), "{text}");
}
