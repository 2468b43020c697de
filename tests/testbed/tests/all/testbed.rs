//! The test bed used as a plugin author would, in a plain test; and
//! components of both contract versions provisioning through it.

use registry_plugin_runtime::ContractVersion;
use registry_plugin_runtime::latest::types::ProvisioningAction;
use registry_plugin_testbed::{TestBed, person};

#[tokio::test]
async fn the_test_bed_in_an_authors_own_test() {
    let bed = TestBed::start(test_guests::salesforce_plugin()).await.unwrap();
    let tokens = bed.authorize().await.unwrap();
    let ctx = bed.context(&[("external_id_field", "Registry_ID__c"), ("on_remove", "delete")], &tokens);
    bed.emulator.clear_request_log();
    let outcome = bed.provision(&ctx, &bed.added(person("T-1", "Ada", "Lovelace"))).await.unwrap().unwrap();
    let remote = outcome.remote.unwrap();
    let records = bed.records("Contact");
    let ada = records.iter().find(|r| r["Registry_ID__c"] == "T-1").unwrap();
    assert_eq!((ada["Id"].as_str(), ada["LastName"].as_str()), (Some(remote.remote_id.as_str()), Some("Lovelace")));
    let requests = bed.requests();
    assert_eq!(requests.len(), 1, "one upsert, nothing else: {requests:?}");
    assert_eq!((requests[0].method.as_str(), requests[0].path.as_str()), ("PATCH", "/services/data/v62.0/sobjects/Contact/Registry_ID__c/T-1"));

    let deleted = bed.provision(&ctx, &bed.request(ProvisioningAction::PersonDeleted, person("T-1", "Ada", "Lovelace"), Some(remote))).await.unwrap().unwrap();
    assert!(deleted.removed && deleted.remote.is_none());
    assert!(bed.records("Contact").iter().all(|r| r["Registry_ID__c"] != "T-1"));
}

/// The same plugin built for the frozen 0.1.0 and for the latest contract
/// provisions the same way: create, update, delete, each seen in the org.
#[tokio::test]
async fn a_0_1_0_and_a_0_2_0_component_both_provision() {
    for (wasm, contract, id) in [
        (test_guests::example_plugin_v0_1_0(), ContractVersion::V0_1_0, "OLD-1"),
        (test_guests::example_plugin(), ContractVersion::V0_2_0, "NEW-1"),
    ] {
        let bed = TestBed::start(wasm).await.unwrap();
        assert_eq!(bed.plugin.contract(), contract);
        let tokens = bed.client_credentials().await.unwrap();
        let ctx = bed.context(&[], &tokens);
        let outcome = bed.provision(&ctx, &bed.added(person(id, "Grace", "Hopper"))).await.unwrap().unwrap();
        let remote = outcome.remote.expect("a Contact was made");
        assert_eq!(remote.object_type, "Contact", "{contract}");
        let mut renamed = person(id, "Grace", "Murray");
        renamed.emails[0].address = "grace@navy.example".into();
        bed.provision(&ctx, &bed.request(ProvisioningAction::PersonUpdated, renamed, Some(remote.clone()))).await.unwrap().unwrap();
        let records = bed.records("Contact");
        let grace = records.iter().find(|r| r["Registry_ID__c"] == id).unwrap_or_else(|| panic!("{contract}: {records:?}"));
        assert_eq!((grace["LastName"].as_str(), grace["Email"].as_str()), (Some("Murray"), Some("grace@navy.example")), "{contract}");
        let gone = bed.provision(&ctx, &bed.request(ProvisioningAction::PersonDeleted, person(id, "Grace", "Murray"), Some(remote))).await.unwrap().unwrap();
        assert!(gone.removed, "{contract}");
        assert!(bed.records("Contact").iter().all(|r| r["Registry_ID__c"] != id), "{contract}");
    }
}
