//! A batch's requests read by the plugin a page at a time (contract
//! 0.2.0's `batch-requests`): the host answers at most a page per read,
//! in order, and a source that cannot read stops the call.

use std::sync::{Arc, Mutex};

use registry_plugin_runtime::batch::{MAX_PAGE, ReadFuture};
use registry_plugin_runtime::latest::provisioning_target::{BatchAnswer, ProvisionRequest, TargetContext};
use registry_plugin_runtime::latest::types::{Name, Person, PersonStatus, ProvisioningAction, TokenSet};
use registry_plugin_runtime::{Failure, HttpAllowlist, RequestSource, Runtime, RuntimeConfig};

fn context() -> TargetContext {
    let tokens = TokenSet { access_token: "a".into(), refresh_token: None, instance_url: None, issued_at: None, expires_at: None, scope: None, token_type: "Bearer".into(), extra: vec![] };
    TargetContext { settings: vec![], tokens }
}

fn request(i: usize) -> ProvisionRequest {
    let name = Name { honorific: None, given: "Ada".into(), middle: None, family: Some(format!("Person {i}")), suffix: None };
    let person = Person { id: format!("P{i:05}"), status: PersonStatus::Active, name, emails: vec![], identifiers: vec![], roles: vec![] };
    ProvisionRequest { action: ProvisioningAction::ReprovisionRequested, person, current: None }
}

/// Makes each request when it is read, and records each read's size.
struct Counting {
    len: usize,
    reads: Arc<Mutex<Vec<(usize, usize)>>>,
    fail_from: Option<usize>,
}

impl RequestSource for Counting {
    fn len(&self) -> usize {
        self.len
    }

    fn read(&mut self, start: usize, max: usize) -> ReadFuture<'_> {
        self.reads.lock().unwrap().push((start, max));
        let failing = self.fail_from.is_some_and(|f| start + max > f);
        let page: Vec<_> = (start..(start + max).min(self.len)).map(request).collect();
        Box::pin(async move { if failing { Err(anyhow::anyhow!("the database went away")) } else { Ok(page) } })
    }
}

#[tokio::test]
async fn a_plugin_reads_a_large_batch_a_page_at_a_time_in_order() {
    // The poison-person fixture reads every request, 1,000 asked at a time,
    // and answers one outcome per request.
    let plugin = Runtime::new(RuntimeConfig::default()).unwrap().load_file(test_guests::hostile_poison()).await.unwrap();
    let reads = Arc::new(Mutex::new(Vec::new()));
    let source = Counting { len: 2_500, reads: reads.clone(), fail_from: None };
    let answer = plugin.provision_batch_from(&context(), source, &HttpAllowlist::none()).await.unwrap().unwrap();
    let BatchAnswer::Done(results) = answer else { panic!("done") };
    assert_eq!(results.len(), 2_500);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.as_ref().unwrap().summary, format!("provisioned P{i:05}"), "in order");
    }
    let reads = reads.lock().unwrap().clone();
    assert_eq!(reads, vec![(0, 1_000), (1_000, 1_000), (2_000, 500)], "a page at a time, never past the end");
    assert!(reads.iter().all(|(_, n)| *n <= MAX_PAGE));
}

#[tokio::test]
async fn a_source_that_cannot_read_stops_the_call_and_says_why() {
    let plugin = Runtime::new(RuntimeConfig::default()).unwrap().load_file(test_guests::hostile_poison()).await.unwrap();
    let source = Counting { len: 2_500, reads: Arc::default(), fail_from: Some(1_500) };
    let error = plugin.provision_batch_from(&context(), source, &HttpAllowlist::none()).await.unwrap_err();
    let Failure::Source(why) = &error.failure else { panic!("{error}") };
    assert_eq!(why, "the database went away");
    assert!(error.to_string().contains("the host could not read the batch's requests for it: the database went away"), "{error}");
}
