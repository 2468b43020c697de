//! `registry-host plugin test`: the conformance run a plugin author uses
//! before a registry loads their component. Every check talks to the
//! component through the registry's own sandbox and to the bundled
//! Salesforce emulator; a check that needs a capability the plugin does not
//! claim is skipped, not failed.

use serde::Serialize;

use registry_plugin_runtime::contract::explain;
use registry_plugin_runtime::latest::oauth2_server::AuthorizationRequest;
use registry_plugin_runtime::latest::plugin_info::Capabilities;
use registry_plugin_runtime::latest::provisioning_target::{BatchAnswer, ProvisionOutcome, TargetContext};
use registry_plugin_runtime::latest::types::{self, GrantType, PluginError, ProvisioningAction, RemoteRef, RemovalEffect, TokenSet};
use registry_plugin_runtime::contract::ContractVersion;
use registry_plugin_runtime::{CallError, Failure};

use crate::{REDIRECT_URI, TestBed, person, query};

mod declarations;
use declarations::{field_errors, plugin_info, settings_validation};

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// It held.
    Pass,
    /// It did not; the detail says why.
    Fail,
    /// It did not apply (a capability the plugin does not claim).
    Skip,
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Short name, e.g. `provision.create`.
    pub name: &'static str,
    /// Outcome.
    pub status: Status,
    /// What was seen: the reason for a failure (with the plugin's own
    /// error text) or a skip.
    pub detail: String,
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The plugin's name and version.
    pub plugin: String,
    /// The contract version the component targets.
    pub contract: String,
    /// Every check, in order.
    pub checks: Vec<Check>,
    /// Counts.
    pub passed: usize,
    /// Counts.
    pub failed: usize,
    /// Counts.
    pub skipped: usize,
}

impl Report {
    /// One line per check and a summary, for people.
    pub fn to_text(&self) -> String {
        let mut out = format!("conformance run for {} ({})\n", self.plugin, self.contract);
        for c in &self.checks {
            let tag = match c.status {
                Status::Pass => "pass",
                Status::Fail => "FAIL",
                Status::Skip => "skip",
            };
            // A detail of several lines (a guest's traceback) stays in its column.
            let detail = c.detail.replace('\n', &format!("\n{:35}", ""));
            out.push_str(&format!("{tag}  {:<28} {detail}\n", c.name));
        }
        out.push_str(&format!("\n{} passed, {} failed, {} skipped\n", self.passed, self.failed, self.skipped));
        out
    }
}

struct Run<'a> {
    bed: &'a TestBed,
    settings: Vec<(String, String)>,
    checks: Vec<Check>,
    /// Sandbox failures seen in any call, for the allowlist and deadline checks.
    denied: Vec<String>,
    timeouts: Vec<String>,
}

impl Run<'_> {
    fn record(&mut self, name: &'static str, status: Status, detail: impl Into<String>) {
        self.checks.push(Check { name, status, detail: detail.into() });
    }

    fn pass(&mut self, name: &'static str, detail: impl Into<String>) {
        self.record(name, Status::Pass, detail);
    }

    fn fail(&mut self, name: &'static str, detail: impl Into<String>) {
        self.record(name, Status::Fail, detail);
    }

    fn claims(&self, c: Capabilities) -> bool {
        self.bed.plugin.metadata().capabilities.contains(c)
    }

    fn skip_unless(&mut self, name: &'static str, c: Capabilities, flag: &str) -> bool {
        if self.claims(c) {
            return false;
        }
        self.record(name, Status::Skip, format!("the plugin does not claim '{flag}'"));
        true
    }

    /// Unwraps a call, noting sandbox failures; `None` (with the check
    /// failed) when the call did not complete.
    fn call<T>(&mut self, name: &'static str, r: Result<T, CallError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                match &e.failure {
                    Failure::HttpDenied(d) => self.denied.push(format!("{} in {}", d.request, e.export)),
                    Failure::Timeout(_) => self.timeouts.push(e.export.to_string()),
                    _ => {}
                }
                self.fail(name, e.to_string());
                None
            }
        }
    }

    fn context(&self, tokens: &TokenSet) -> TargetContext {
        TargetContext { settings: self.settings.clone(), tokens: tokens.clone() }
    }
}

/// The checks that need a token and the `provision` capability.
const PROVISIONING_CHECKS: [&str; 11] = [
    "settings.remote-check",
    "provision.preview",
    "provision.create",
    "provision.repeat",
    "provision.update",
    "provision.group",
    "provision.delete",
    "provision.batch",
    "errors.unauthorized",
    "errors.rate-limited",
    "errors.invalid-person",
];

/// Runs every check. `settings` are the target settings for the
/// provisioning checks (the plugin's defaults fill the rest).
pub async fn run(bed: &TestBed, settings: &[(String, String)]) -> Report {
    let meta = bed.plugin.metadata().clone();
    let values = bed.plugin.settings_with_defaults(settings);
    let mut run = Run { bed, settings: values, checks: Vec::new(), denied: Vec::new(), timeouts: Vec::new() };

    plugin_info(&mut run);
    settings_validation(&mut run).await;
    removal_effect(&mut run).await;
    authorization_url(&mut run).await;
    let tokens = oauth(&mut run).await;
    match tokens {
        Some(tokens) => provisioning(&mut run, tokens).await,
        None => {
            for name in PROVISIONING_CHECKS {
                let why = if run.claims(Capabilities::PROVISION) { "no token could be obtained (see above)" } else { "the plugin does not claim 'provision'" };
                run.record(name, Status::Skip, why);
            }
        }
    }

    if run.denied.is_empty() {
        run.pass("sandbox.allowlist", "every request went to the OAuth2 server or the instance its tokens name");
    } else {
        let d = format!("requests outside the allowlist: {}", run.denied.join("; "));
        run.fail("sandbox.allowlist", d);
    }
    if run.timeouts.is_empty() {
        run.pass("sandbox.deadline", format!("every call finished within {:?}", bed.plugin_deadline()));
    } else {
        let mut calls = run.timeouts.clone();
        calls.sort();
        calls.dedup();
        let d = format!("ran past the {:?} deadline in: {}", bed.plugin_deadline(), calls.join(", "));
        run.fail("sandbox.deadline", d);
    }

    let count = |s| run.checks.iter().filter(|c| c.status == s).count();
    Report { plugin: format!("{} {}", meta.name, meta.version), contract: bed.plugin.contract().to_string(), passed: count(Status::Pass), failed: count(Status::Fail), skipped: count(Status::Skip), checks: run.checks }
}

async fn authorization_url(run: &mut Run<'_>) {
    const NAME: &str = "oauth.authorization-url";
    if run.skip_unless(NAME, Capabilities::AUTHORIZATION_CODE, "authorization-code") {
        return;
    }
    let request = AuthorizationRequest {
        state: "conformance-state-1".into(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        redirect_uri: REDIRECT_URI.into(),
        prompt: None,
    };
    let config = run.bed.server(GrantType::AuthorizationCode);
    let Some(result) = run.call(NAME, run.bed.plugin.authorization_url(&config, &request).await) else { return };
    let url = match result {
        Ok(u) => u,
        Err(e) => return run.fail(NAME, format!("the plugin refused: {}", explain(&e))),
    };
    let mut missing = Vec::new();
    for (param, want) in [
        ("client_id", config.client_id.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("state", "conformance-state-1"),
        ("code_challenge", request.code_challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("response_type", "code"),
    ] {
        if query(&url, param).as_deref() != Some(want) {
            missing.push(format!("{param}={want}"));
        }
    }
    if !url.starts_with(&config.server_url) {
        missing.push(format!("a URL at the Server URL {}", config.server_url));
    }
    if missing.is_empty() {
        run.pass(NAME, "carries client_id, redirect_uri, state and the S256 PKCE challenge");
    } else {
        run.fail(NAME, format!("{url} lacks {}", missing.join(", ")));
    }
}

/// The OAuth checks; returns tokens for the provisioning checks.
async fn oauth(run: &mut Run<'_>) -> Option<TokenSet> {
    let bed = run.bed;
    let mut tokens = None;
    if !run.skip_unless("oauth.code-exchange", Capabilities::AUTHORIZATION_CODE, "authorization-code") {
        match bed.authorize().await {
            Ok(t) if !t.access_token.is_empty() => {
                run.pass("oauth.code-exchange", format!("tokens obtained{}", if t.refresh_token.is_some() { ", with a refresh token" } else { "" }));
                tokens = Some(t);
            }
            Ok(_) => run.fail("oauth.code-exchange", "the token set has an empty access token"),
            Err(e) => {
                note_sandbox(run, &e);
                run.fail("oauth.code-exchange", format!("{e:#}"));
            }
        }
    }
    if !run.skip_unless("oauth.refresh", Capabilities::REFRESH, "refresh") {
        match &tokens {
            Some(t) if t.refresh_token.is_some() => {
                let config = bed.server(GrantType::AuthorizationCode);
                if let Some(r) = run.call("oauth.refresh", bed.plugin.refresh(&config, t, &bed.allowlist(None)).await) {
                    match r {
                        Ok(fresh) if fresh.access_token != t.access_token => {
                            run.pass("oauth.refresh", "a new access token");
                            tokens = Some(fresh);
                        }
                        Ok(_) => run.fail("oauth.refresh", "the refresh returned the old access token"),
                        Err(e) => run.fail("oauth.refresh", format!("the plugin refused: {}", explain(&e))),
                    }
                }
            }
            _ => run.record("oauth.refresh", Status::Skip, "no refresh token from the code exchange"),
        }
    }
    if !run.skip_unless("oauth.client-credentials", Capabilities::CLIENT_CREDENTIALS, "client-credentials") {
        match bed.client_credentials().await {
            Ok(t) if bed.asks_token_url() => {
                // The emulator stood in for the service's authorization
                // server: its token is not one the service takes.
                run.pass("oauth.client-credentials", format!("a token from the authorization server at the Token URL, for {}", t.instance_url.as_deref().unwrap_or("(no instance)")));
            }
            Ok(t) => {
                run.pass("oauth.client-credentials", "tokens obtained");
                tokens.get_or_insert(t);
            }
            Err(e) => {
                note_sandbox(run, &e);
                run.fail("oauth.client-credentials", format!("{e:#}"));
            }
        }
    }
    if !run.skip_unless("oauth.jwt-bearer", Capabilities::JWT_BEARER, "jwt-bearer") {
        // First with a key the app does not hold: refused, no token.
        match bed.jwt_bearer(false).await {
            Ok(_) => run.fail("oauth.jwt-bearer", "a token came back for an assertion signed with a key the app does not hold"),
            Err(e) => {
                note_sandbox(run, &e);
                match bed.jwt_bearer(true).await {
                    Ok(t) if t.access_token.is_empty() => run.fail("oauth.jwt-bearer", "the token set has an empty access token"),
                    Ok(t) if t.refresh_token.is_some() => run.fail("oauth.jwt-bearer", "a refresh token from the JWT bearer grant, which has none"),
                    Ok(t) => {
                        run.pass("oauth.jwt-bearer", "tokens obtained with a signed assertion; one signed with an unknown key was refused");
                        tokens.get_or_insert(t);
                    }
                    Err(e) => run.fail("oauth.jwt-bearer", format!("{e:#}")),
                }
            }
        }
    }
    if !run.skip_unless("oauth.static-bearer", Capabilities::STATIC_BEARER, "static-bearer") {
        match bed.static_bearer() {
            Some(t) => {
                run.pass("oauth.static-bearer", format!("the SCIM service's token, for {}", bed.scim().map_or("", |s| s.url.as_str())));
                tokens.get_or_insert(t);
            }
            None => run.record("oauth.static-bearer", Status::Skip, "no service to take a pasted token: give one (plugin test --scim-url URL --scim-token TOKEN)"),
        }
    }
    if !run.skip_unless("oauth.check-connection", Capabilities::CHECK_CONNECTION, "check-connection") {
        match &tokens {
            Some(t) => {
                let config = bed.server(GrantType::AuthorizationCode);
                if let Some(r) = run.call("oauth.check-connection", bed.plugin.check_connection(&config, t, &bed.allowlist(Some(t))).await) {
                    match r {
                        Ok(info) => run.pass("oauth.check-connection", format!("connected as {}", info.user.as_deref().unwrap_or("(unnamed)"))),
                        Err(e) => run.fail("oauth.check-connection", format!("the plugin refused: {}", explain(&e))),
                    }
                }
            }
            None => run.record("oauth.check-connection", Status::Skip, "no token could be obtained"),
        }
    }
    if !run.skip_unless("oauth.revoke", Capabilities::REVOKE, "revoke") {
        // Its own tokens, so the ones kept for provisioning stay valid.
        match bed.authorize().await {
            Ok(t) => {
                let config = bed.server(GrantType::AuthorizationCode);
                if let Some(r) = run.call("oauth.revoke", bed.plugin.revoke(&config, &t, &bed.allowlist(Some(&t))).await) {
                    let revoked = t.refresh_token.as_deref().and_then(|r| bed.emulator.refresh_token_status(r));
                    match r {
                        Err(e) => run.fail("oauth.revoke", format!("the plugin refused: {}", explain(&e))),
                        Ok(()) if t.refresh_token.is_none() => run.record("oauth.revoke", Status::Skip, "the code exchange gave no refresh token to revoke"),
                        Ok(()) if revoked == Some(salesforce_emulator::RefreshStatus::Revoked) => run.pass("oauth.revoke", "the emulator shows the token revoked"),
                        Ok(()) => run.fail("oauth.revoke", format!("the refresh token is still {revoked:?} at the emulator")),
                    }
                }
            }
            Err(e) => run.record("oauth.revoke", Status::Skip, format!("no token to revoke: {e:#}")),
        }
    }
    tokens
}

fn note_sandbox(run: &mut Run<'_>, e: &anyhow::Error) {
    if let Some(c) = e.downcast_ref::<CallError>() {
        match &c.failure {
            Failure::HttpDenied(d) => run.denied.push(format!("{} in {}", d.request, c.export)),
            Failure::Timeout(_) => run.timeouts.push(c.export.to_string()),
            _ => {}
        }
    }
}

/// The remote record's object type and how many live records of it exist.
async fn live(run: &Run<'_>, r: &RemoteRef) -> Vec<serde_json::Value> {
    run.bed.live_records(&r.object_type).await.unwrap_or_default()
}

/// What a removal does, as the plugin says (the delete check expects it).
async fn removal_effect(run: &mut Run<'_>) {
    let settings = run.settings.clone();
    if let Some(effect) = run.call("removal.effect", run.bed.plugin.removal_effect(&settings).await) {
        let said = match (run.bed.plugin.contract(), effect) {
            (ContractVersion::V0_1_0, _) => "not declared (contract 0.1.0): hosts count removals as deletions".to_string(),
            (_, e) => format!("a removal {}", effect_words(e)),
        };
        run.pass("removal.effect", said);
    }
}

fn effect_words(e: RemovalEffect) -> &'static str {
    match e {
        RemovalEffect::Keep => "keeps the record, no longer managed",
        RemovalEffect::Mark => "marks the record and keeps it",
        RemovalEffect::Deactivate => "deactivates the record",
        RemovalEffect::Delete => "deletes the record",
    }
}

/// The settings checked against the remote system with real tokens.
async fn remote_check(run: &mut Run<'_>, tokens: &TokenSet) {
    const NAME: &str = "settings.remote-check";
    if run.bed.plugin.contract() == ContractVersion::V0_1_0 {
        return run.record(NAME, Status::Skip, "contract 0.1.0 has no check-settings");
    }
    let ctx = run.context(tokens);
    let allow = run.bed.allowlist(Some(tokens));
    if let Some(result) = run.call(NAME, run.bed.plugin.check_settings(&ctx, &allow).await) {
        match result {
            Ok(()) => run.pass(NAME, "the remote system accepts the settings"),
            Err(errors) => {
                let d = format!("good settings were refused by the remote check: {}", field_errors(&errors));
                run.fail(NAME, d)
            }
        }
    }
}

/// A preview of a new person's provisioning: steps come back, and nothing
/// was written (the host lets only reads out; a write shows as denied).
async fn preview(run: &mut Run<'_>, tokens: &TokenSet) {
    const NAME: &str = "provision.preview";
    if run.bed.plugin.contract() == ContractVersion::V0_1_0 {
        return run.record(NAME, Status::Skip, "contract 0.1.0 has no preview");
    }
    let ctx = run.context(tokens);
    let allow = run.bed.allowlist(Some(tokens));
    let request = run.bed.added(person("CONF-PREVIEW", "Grace", "Hopper"));
    let before = run.bed.requests().len();
    let result = run.bed.plugin.preview(&ctx, &request, &allow).await;
    let writes: Vec<String> = run.bed.requests()[before..].iter().filter(|r| r.method != "GET" && r.method != "HEAD").map(|r| format!("{} {}", r.method, r.path)).collect();
    let Some(result) = run.call(NAME, result) else { return };
    match result {
        Err(PluginError::Unsupported(_)) => run.record(NAME, Status::Skip, "the plugin answers unsupported"),
        Err(e) => run.fail(NAME, format!("the preview failed: {}", explain(&e))),
        Ok(_) if !writes.is_empty() => run.fail(NAME, format!("a preview wrote: {}", writes.join(", "))),
        Ok(steps) if steps.is_empty() => run.fail(NAME, "the preview has no steps"),
        Ok(steps) => {
            let last = steps.last().map(|s| s.description.clone()).unwrap_or_default();
            run.pass(NAME, format!("{} step(s), nothing written; last: {last}", steps.len()))
        }
    }
}

async fn provisioning(run: &mut Run<'_>, tokens: TokenSet) {
    const CREATE: &str = "provision.create";
    remote_check(run, &tokens).await;
    preview(run, &tokens).await;
    if run.skip_unless(CREATE, Capabilities::PROVISION, "provision") {
        for name in PROVISIONING_CHECKS.iter().filter(|n| **n != CREATE && **n != "provision.batch" && **n != "settings.remote-check" && **n != "provision.preview") {
            run.record(name, Status::Skip, "the plugin does not claim 'provision'");
        }
        batch(run, &tokens).await;
        return;
    }
    let bed = run.bed;
    let ctx = run.context(&tokens);
    let ada = person("CONF-1", "Ada", "Lovelace");

    let Some(created) = provision(run, CREATE, &ctx, ProvisioningAction::PersonAdded, ada.clone(), None).await else {
        for name in ["provision.repeat", "provision.update", "provision.delete"] {
            run.record(name, Status::Skip, "create failed");
        }
        // The batch export is checked on its own: a plugin may batch well
        // and fail one by one, and the report says so either way.
        batch(run, &tokens).await;
        return errors(run, &tokens).await;
    };
    let Some(remote) = created.remote.clone() else {
        run.fail(CREATE, "the outcome names no remote record");
        batch(run, &tokens).await;
        return errors(run, &tokens).await;
    };
    let count = live(run, &remote).await.iter().filter(|r| r["Id"] == remote.remote_id.as_str()).count();
    if count == 1 {
        run.pass(CREATE, format!("{} {} exists: {}", remote.object_type, remote.remote_id, created.summary));
    } else {
        run.fail(CREATE, format!("the emulator has no live {} {}", remote.object_type, remote.remote_id));
    }

    // The host retries with the record it stored: that must update it, not
    // make a second one. (Idempotence after a lost answer, when the host has
    // no record to pass, depends on the plugin's settings, e.g. an external
    // id field for the Salesforce plugin, and is the plugin's own to test.)
    let before = live(run, &remote).await.len();
    if let Some(again) = provision(run, "provision.repeat", &ctx, ProvisioningAction::PersonAdded, ada.clone(), Some(remote.clone())).await {
        let after = live(run, &remote).await.len();
        match again.remote {
            Some(r) if r.remote_id == remote.remote_id && after == before => run.pass("provision.repeat", "repeated with the stored record: the same record, no duplicate"),
            other => run.fail("provision.repeat", format!("repeating made {} records (from {before}), remote {other:?}", after)),
        }
    }

    let mut king = ada.clone();
    king.name.family = Some("King-Noel".into());
    if let Some(updated) = provision(run, "provision.update", &ctx, ProvisioningAction::PersonUpdated, king.clone(), Some(remote.clone())).await {
        let record = live(run, &remote).await.into_iter().find(|r| r["Id"] == remote.remote_id.as_str());
        let shows = record.as_ref().is_some_and(|r| r.as_object().is_some_and(|o| o.values().any(|v| v == "King-Noel")));
        match (updated.remote, shows) {
            (Some(r), true) if r.remote_id == remote.remote_id => run.pass("provision.update", "the record shows the new family name"),
            (r, shows) => run.fail("provision.update", format!("remote {r:?}, new name in the record: {shows}")),
        }
    }

    group_check(run, &ctx, &remote).await;

    // As the plugin said: deleted or deactivated (gone), or kept or marked
    // (still there) and no longer managed.
    let is_gone = |records: Vec<serde_json::Value>| !records.iter().any(|r| r["Id"] == remote.remote_id.as_str() && r["IsActive"] != false);
    let effect = bed.plugin.removal_effect(&run.settings).await.unwrap_or(RemovalEffect::Delete);
    if let Some(deleted) = provision(run, "provision.delete", &ctx, ProvisioningAction::PersonDeleted, king.clone(), Some(remote.clone())).await {
        let kept = deleted.remote.is_some() && !deleted.removed;
        let gone = is_gone(live(run, &remote).await);
        let as_said = match effect {
            RemovalEffect::Keep | RemovalEffect::Mark => !gone && deleted.removed,
            RemovalEffect::Deactivate | RemovalEffect::Delete => gone && !kept,
        };
        if as_said {
            // Deleting again must be harmless.
            let still = deleted.remote.clone().or(Some(remote.clone()));
            if provision(run, "provision.delete", &ctx, ProvisioningAction::PersonDeleted, king, still).await.is_some() {
                run.pass("provision.delete", format!("removed ({}), and removing again is harmless", deleted.summary));
            }
        } else {
            run.fail("provision.delete", format!("the plugin said a removal {}, but: {} (outcome: {})", effect_words(effect), if gone { "the record is gone" } else { "the record is still live" }, deleted.summary));
        }
    }
    batch(run, &tokens).await;
    errors(run, &tokens).await;
}

/// A group with the created person as its member (where the plugin
/// provisions groups), read back, then deleted.
async fn group_check(run: &mut Run<'_>, ctx: &TargetContext, member: &RemoteRef) {
    use registry_plugin_runtime::latest::provisioning_target::GroupRequest;
    use registry_plugin_runtime::latest::types::{Group, GroupAction, GroupMember};
    const NAME: &str = "provision.group";
    if run.skip_unless(NAME, Capabilities::GROUPS, "groups") {
        return;
    }
    let bed = run.bed;
    let m = GroupMember { person_id: "CONF-1".into(), remote: member.clone() };
    let group = Group { id: "CONF-G1".into(), name: "Conformance group".into(), description: None, members: vec![m.clone()] };
    let request = GroupRequest { action: GroupAction::GroupAdded, group: group.clone(), added: vec![m], removed: vec![], current: None };
    let allow = bed.allowlist(Some(&ctx.tokens));
    let made = match run.call(NAME, bed.plugin.provision_group(ctx, &request, &allow).await) {
        Some(Ok(o)) => o,
        Some(Err(e)) => return run.fail(NAME, format!("the plugin refused: {}", explain(&e))),
        None => return,
    };
    let Some(remote) = made.remote.clone() else {
        return run.pass(NAME, format!("not provisioned under these settings: {}", made.summary));
    };
    let found = live(run, &remote).await.into_iter().find(|r| r["Id"] == remote.remote_id.as_str());
    match &found {
        None => return run.fail(NAME, format!("no live {} {} after: {}", remote.object_type, remote.remote_id, made.summary)),
        // Where the group's record names its members (SCIM), the member is there.
        Some(r) if r.as_object().is_some_and(|o| o.keys().any(|k| k.starts_with("members."))) && !r.as_object().is_some_and(|o| o.values().any(|v| v == member.remote_id.as_str())) => {
            return run.fail(NAME, format!("{} {} lacks its member {}", remote.object_type, remote.remote_id, member.remote_id));
        }
        Some(_) => {}
    }
    let delete = GroupRequest { action: GroupAction::GroupDeleted, group: Group { members: vec![], ..group }, added: vec![], removed: vec![], current: Some(remote.clone()) };
    match run.call(NAME, bed.plugin.provision_group(ctx, &delete, &allow).await) {
        Some(Ok(o)) if o.removed && !live(run, &remote).await.iter().any(|r| r["Id"] == remote.remote_id.as_str()) => run.pass(NAME, format!("{}; then deleted", made.summary)),
        Some(Ok(o)) => run.fail(NAME, format!("deleting the group left it: {}", o.summary)),
        Some(Err(e)) => run.fail(NAME, format!("deleting the group was refused: {}", explain(&e))),
        None => {}
    }
}

/// One provision call; the check fails (and `None`) unless it succeeded.
async fn provision(
    run: &mut Run<'_>,
    name: &'static str,
    ctx: &TargetContext,
    action: ProvisioningAction,
    person: types::Person,
    current: Option<RemoteRef>,
) -> Option<ProvisionOutcome> {
    let request = run.bed.request(action, person, current);
    match run.call(name, run.bed.provision(ctx, &request).await)? {
        Ok(o) => Some(o),
        Err(e) => {
            run.fail(name, format!("the plugin refused: {}", explain(&e)));
            None
        }
    }
}

async fn batch(run: &mut Run<'_>, tokens: &TokenSet) {
    const NAME: &str = "provision.batch";
    if run.skip_unless(NAME, Capabilities::PROVISION_BATCH, "provision-batch") {
        return;
    }
    let bed = run.bed;
    let ctx = run.context(tokens);
    let requests: Vec<_> = (1..=3).map(|i| bed.added(person(&format!("CONF-B{i}"), &format!("Batch{i}"), "Person"))).collect();
    let Some(mut answer) = run.call(NAME, bed.plugin.provision_batch(&ctx, &requests, &bed.allowlist(Some(tokens))).await) else { return };
    // Work submitted to a background bulk API: poll it to the end, moving
    // the emulator's clock as the plugin asks.
    for _ in 0..20 {
        let Ok(BatchAnswer::Submitted(s)) = &answer else { break };
        bed.emulator.advance_clock(std::time::Duration::from_millis(s.poll_after_ms as u64));
        let reference = s.reference.clone();
        let Some(next) = run.call(NAME, bed.plugin.poll_batch(&ctx, &requests, &reference, &bed.allowlist(Some(tokens))).await) else { return };
        answer = next;
    }
    let result = match answer {
        Ok(BatchAnswer::Done(results)) => Ok(results),
        Ok(BatchAnswer::Submitted(_)) => return run.fail(NAME, "the submitted batch was still not done after 20 polls"),
        Err(e) => Err(e),
    };
    match result {
        Err(e) => run.fail(NAME, format!("the plugin refused the batch: {}", explain(&e))),
        Ok(results) if results.len() != requests.len() => run.fail(NAME, format!("{} results for {} requests", results.len(), requests.len())),
        Ok(results) => {
            let failed: Vec<String> = results.iter().filter_map(|r| r.as_ref().err().map(explain)).collect();
            if failed.is_empty() {
                run.pass(NAME, "3 people in one call, one result each");
            } else {
                run.fail(NAME, failed.join("; "));
            }
        }
    }
}

/// Whether a call's result is the expected plugin error.
async fn expect_error(run: &mut Run<'_>, name: &'static str, ctx: &TargetContext, p: types::Person, want: &str, ok: fn(&PluginError) -> bool) {
    let request = run.bed.added(p);
    let Some(result) = run.call(name, run.bed.provision(ctx, &request).await) else { return };
    match result {
        Err(e) if ok(&e) => run.pass(name, format!("{want}: {}", explain(&e))),
        Err(e) => run.fail(name, format!("expected {want}, got: {}", explain(&e))),
        Ok(o) => run.fail(name, format!("expected {want}, but the call succeeded: {}", o.summary)),
    }
}

async fn errors(run: &mut Run<'_>, tokens: &TokenSet) {
    let bed = run.bed;
    let ctx = run.context(tokens);

    if bed.scim().is_some() {
        run.record("errors.rate-limited", Status::Skip, "a SCIM service cannot be made to throttle from here");
    } else {
        bed.emulator.throttle(Some(0));
        expect_error(run, "errors.rate-limited", &ctx, person("CONF-T", "Throttled", "Person"), "rate-limited", |e| matches!(e, PluginError::RateLimited(_))).await;
        bed.emulator.throttle(None);
    }

    let mut nameless = person("CONF-N", "", "");
    nameless.name.family = None;
    nameless.name.given = String::new();
    expect_error(run, "errors.invalid-person", &ctx, nameless, "invalid-person naming a field", |e| matches!(e, PluginError::InvalidPerson(f) if !f.field.is_empty())).await;

    // Last: every token the emulator issued stops working (a SCIM service
    // gets a token it never issued).
    let ctx = if bed.scim().is_some() {
        let mut wrong = tokens.clone();
        wrong.access_token = "conformance-a-token-never-issued".into();
        run.context(&wrong)
    } else {
        bed.emulator.expire_access_tokens();
        ctx
    };
    expect_error(run, "errors.unauthorized", &ctx, person("CONF-U", "Expired", "Token"), "unauthorized", |e| matches!(e, PluginError::Unauthorized(_))).await;
}
