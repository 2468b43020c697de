// Drives the emulator with jsforce the way its users do: OAuth2 web server
// flow, CRUD, upsert, collections, query with autoFetch, describe, limits,
// automatic refresh on an expired session, client credentials, logout.
// Only the login URL points at the emulator. Prints one JSON line of facts
// for the Rust test to check, and exits non-zero on any failed assertion.
'use strict';
const assert = require('node:assert/strict');
const jsforce = require('jsforce');

const [loginUrl, clientId, clientSecret, redirectUri, username, password, orgId] = process.argv.slice(2);

// The browser's part: log in and click Allow on the emulator's pages.
async function browserApprove(authorizeUrl) {
  const txOf = (html) => /name="tx" value="([^"]+)"/.exec(html)[1];
  let r = await fetch(authorizeUrl, { redirect: 'manual' });
  assert.equal(r.status, 200);
  let html = await r.text();
  r = await fetch(`${loginUrl}/services/oauth2/authorize/login`, {
    method: 'POST', redirect: 'manual',
    body: new URLSearchParams({ tx: txOf(html), username, pw: password }),
  });
  html = await r.text();
  r = await fetch(`${loginUrl}/services/oauth2/authorize/consent`, {
    method: 'POST', redirect: 'manual',
    body: new URLSearchParams({ tx: txOf(html), decision: 'allow' }),
  });
  assert.equal(r.status, 302);
  const location = new URL(r.headers.get('location'));
  assert.equal(location.searchParams.get('state'), 'js-state');
  return location.searchParams.get('code');
}

async function fault(body) {
  const r = await fetch(`${loginUrl}/_emulator/faults`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
  });
  assert.equal(r.status, 200);
}

async function main() {
  const facts = {};
  const oauth2 = new jsforce.OAuth2({ loginUrl, clientId, clientSecret, redirectUri });
  const code = await browserApprove(oauth2.getAuthorizationUrl({ scope: 'api refresh_token', state: 'js-state' }));

  const conn = new jsforce.Connection({ oauth2, version: '62.0' });
  let refreshes = 0;
  conn.on('refresh', () => { refreshes += 1; });
  const userInfo = await conn.authorize(code);
  assert.equal(userInfo.organizationId, orgId);
  assert.match(userInfo.id, /^005/);
  assert.ok(conn.refreshToken);
  facts.instanceUrl = conn.instanceUrl;

  const identity = await conn.identity();
  assert.equal(identity.username, username);
  assert.equal(identity.organization_id, orgId);

  const Contact = conn.sobject('Contact');
  const created = await Contact.create({ FirstName: 'Js', LastName: 'Force', Email: 'js@example.com' });
  assert.equal(created.success, true);
  const got = await Contact.retrieve(created.id);
  assert.equal(got.Name, 'Js Force');
  const updated = await Contact.update({ Id: created.id, Title: 'Client' });
  assert.equal(updated.success, true);
  assert.equal((await Contact.retrieve(created.id)).Title, 'Client');

  const up1 = await Contact.upsert({ Registry_ID__c: 'js-2', LastName: 'Upserted' }, 'Registry_ID__c');
  assert.equal(up1.success, true);
  assert.equal(up1.created, true);
  const up2 = await Contact.upsert({ Registry_ID__c: 'js-2', LastName: 'Again' }, 'Registry_ID__c');
  assert.equal(up2.success, true);
  assert.equal(up2.created, false);

  try {
    await Contact.create({ FirstName: 'NoLast' });
    assert.fail('create without LastName must fail');
  } catch (e) {
    assert.equal(e.errorCode, 'REQUIRED_FIELD_MISSING');
    assert.equal(e.message, 'Required fields are missing: [LastName]');
  }

  // Collections: 2,100 contacts in 200-record calls, then a paged query.
  let batchCalls = 0;
  for (let start = 0; start < 2100; start += 200) {
    const batch = [];
    for (let i = start; i < Math.min(start + 200, 2100); i++) batch.push({ LastName: `Bulk ${i}` });
    const results = await Contact.create(batch, { allOrNone: true });
    assert.equal(results.length, batch.length);
    assert.ok(results.every((r) => r.success));
    batchCalls += 1;
  }
  const all = await conn.query("SELECT Id, LastName FROM Contact WHERE LastName LIKE 'Bulk%'", { autoFetch: true, maxFetch: 10000 });
  assert.equal(all.totalSize, 2100);
  assert.equal(all.records.length, 2100);
  const upserts = await Contact.upsert([
    { Registry_ID__c: 'js-3', LastName: 'Three' },
    { Registry_ID__c: 'js-2', LastName: 'Two' },
  ], 'Registry_ID__c');
  assert.deepEqual(upserts.map((r) => r.created), [true, false]);
  const retrieved = await Contact.retrieve([created.id, up1.id], { fields: ['LastName'] });
  assert.deepEqual(retrieved.map((r) => r.LastName), ['Force', 'Two']);

  const describe = await conn.describe('Contact');
  assert.ok(describe.fields.some((f) => f.name === 'Registry_ID__c' && f.externalId));
  const global = await conn.describeGlobal();
  assert.ok(global.sobjects.some((o) => o.name === 'User'));
  const limits = await conn.limits();
  assert.ok(limits.DailyApiRequests.Remaining < limits.DailyApiRequests.Max);
  assert.ok(conn.limitInfo.apiUsage.used > 0);

  // An expired session: jsforce refreshes once and retries.
  await fault({ fault: 'expire_access_tokens' });
  const count = await conn.query('SELECT COUNT() FROM Contact');
  assert.equal(count.totalSize, 2103);
  assert.equal(refreshes, 1);

  await Contact.destroy(created.id);
  try {
    await Contact.retrieve(created.id);
    assert.fail('a deleted record cannot be read');
  } catch (e) {
    assert.equal(e.errorCode, 'ENTITY_IS_DELETED');
  }
  const destroyed = await Contact.destroy([up1.id, 'bogus']);
  assert.equal(destroyed[0].success, true);
  assert.equal(destroyed[1].errors[0].statusCode, 'MALFORMED_ID');

  // Client credentials, as jsforce 3 users call it.
  const cc = new jsforce.Connection({ oauth2: { loginUrl, clientId, clientSecret }, version: '62.0' });
  await cc.authorize({ grant_type: 'client_credentials' });
  assert.equal((await cc.query('SELECT COUNT() FROM Contact')).totalSize, 2101);

  // Logout revokes the session at the login host.
  const token = conn.accessToken;
  await conn.logout();
  const after = await fetch(`${facts.instanceUrl}/services/data/v62.0/limits`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(after.status, 401);

  facts.refreshes = refreshes;
  facts.batchCalls = batchCalls;
  facts.queried = all.records.length;
  console.log(JSON.stringify(facts));
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
