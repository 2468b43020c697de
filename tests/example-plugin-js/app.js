// A minimal, complete provisioning plugin in JavaScript: the same Contact
// provisioner as the Rust example (tests/example-plugin). It gets tokens with
// the OAuth2 client credentials grant and keeps one Salesforce Contact per
// person, upserted by the external-id field `Registry_ID__c`. Everything else
// the contract offers throws `unsupported`, and the capabilities say so.
//
// Build (see docs/writing-a-plugin.md, "JavaScript"):
//
//   npx componentize-js --wit wit/0.2.0 --world-name provisioner \
//       -o example.wasm tests/example-plugin-js/app.js

const API = '/services/data/v62.0';

// Errors of a `result<_, plugin-error>` are thrown as the variant itself,
// `{ tag, val }`; anything else thrown (an Error) is a crash.
const unsupported = (what) => ({ tag: 'unsupported', val: what });

export const pluginInfo = {
  info() {
    return {
      name: 'example-contacts-js',
      version: '0.1.0',
      description: 'Keeps a Salesforce Contact per person, upserted by Registry_ID__c.',
      settings: [
        {
          name: 'send_email',
          label: 'Send email addresses',
          kind: { tag: 'boolean' },
          defaultValue: 'true',
          required: false,
          help: "Copy the person's first email address into the Contact's Email.",
          shownWhen: undefined,
        },
      ],
      // A flags type is an object of booleans.
      capabilities: { clientCredentials: true, provision: true },
      apiHosts: ['*.my.salesforce.com', '*.salesforce.com', '*.force.com'],
      serverForm: {
        serverUrls: [{ label: 'Production', url: 'https://login.salesforce.com', nameLabel: '', apiHosts: [] }],
        help: [['client-id', "The External Client App's Consumer Key."]],
      },
    };
  },
};

export const oauth2Server = {
  authorizationUrl() {
    throw unsupported('only the client credentials grant');
  },
  exchangeCode() {
    throw unsupported('only the client credentials grant');
  },
  refresh() {
    throw unsupported('client credentials tokens are fetched again, not refreshed');
  },
  async clientCredentials(config) {
    const form = new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: config.clientId,
      client_secret: config.clientSecret,
    });
    const url = `${config.serverUrl.replace(/\/+$/, '')}/services/oauth2/token`;
    const { status, body } = await send('POST', url, { 'content-type': 'application/x-www-form-urlencoded' }, form.toString());
    let answer;
    try {
      answer = JSON.parse(body);
    } catch (e) {
      throw { tag: 'transport', val: `the token answer is not JSON: ${e.message}` };
    }
    if (status !== 200) {
      // OAuth errors are the configuration's fault: name the field to fix.
      const field = answer.error === 'invalid_client' ? 'client_secret' : 'client_id';
      const message = answer.error_description || 'the token request was refused';
      throw { tag: 'invalid-config', val: { field, message } };
    }
    return {
      accessToken: answer.access_token ?? '',
      refreshToken: undefined,
      instanceUrl: answer.instance_url,
      // u64 values are BigInts.
      issuedAt: answer.issued_at ? BigInt(answer.issued_at) : undefined,
      expiresAt: undefined,
      scope: answer.scope,
      tokenType: answer.token_type ?? 'Bearer',
      extra: [],
    };
  },
  jwtBearer() {
    throw unsupported('jwt-bearer');
  },
  revoke() {
    throw unsupported('revoke');
  },
  checkConnection() {
    throw unsupported('check-connection');
  },
};

export const provisioningTarget = {
  validateSettings(settings) {
    const errors = settings
      .filter(([name, value]) => name === 'send_email' && value !== 'true' && value !== 'false')
      .map(([name, value]) => ({ field: name, message: `'${value}' is not true or false` }));
    if (errors.length) throw errors;
  },
  checkSettings() {},
  describeRemoval() {
    return 'delete';
  },
  preview() {
    throw unsupported('preview');
  },
  async provision(context, request) {
    const instance = context.tokens.instanceUrl;
    if (!instance) {
      throw { tag: 'invalid-config', val: { field: 'server_url', message: 'the token names no instance URL' } };
    }
    const headers = { authorization: `Bearer ${context.tokens.accessToken}`, 'content-type': 'application/json' };
    const person = request.person;

    if (request.action === 'person-deleted') {
      if (!request.current) return outcome(undefined, 'nothing to delete', true);
      const id = request.current.remoteId;
      const { status, body } = await send('DELETE', `${instance}${API}/sobjects/Contact/${id}`, headers);
      // 404: already gone, which is what was asked.
      if (status === 204 || status === 404) return outcome(undefined, `deleted Contact ${id}`, true);
      throw remoteError(status, body);
    }

    // Salesforce requires LastName: say which attribute to fix, never send it empty.
    const family = (person.name.family ?? '').trim();
    if (!family) {
      throw { tag: 'invalid-person', val: { field: 'name.family', message: 'a Contact needs a family name' } };
    }
    const fields = { FirstName: person.name.given, LastName: family };
    const sendEmail = context.settings.some(([k, v]) => k === 'send_email' && v === 'true');
    if (sendEmail && person.emails.length) fields.Email = person.emails[0].address;
    const url = `${instance}${API}/sobjects/Contact/Registry_ID__c/${encodeURIComponent(person.id)}`;
    const { status, body } = await send('PATCH', url, headers, JSON.stringify(fields));
    if (status !== 200 && status !== 201) throw remoteError(status, body);
    const id = JSON.parse(body).id ?? '';
    const verb = status === 201 ? 'created' : 'updated';
    return outcome({ objectType: 'Contact', remoteId: id }, `${verb} Contact ${id}`, false);
  },
  provisionBatch() {
    throw unsupported('provision-batch');
  },
  provisionGroup() {
    throw unsupported('provision-group');
  },
  batchSize() {
    return undefined;
  },
  pollBatch() {
    throw unsupported('poll-batch');
  },
};

function outcome(remote, summary, removed) {
  return { remote, summary, removed, usage: undefined };
}

/** Salesforce's error answer as the variant that tells the host what to do. */
function remoteError(status, body) {
  let first = {};
  try {
    first = JSON.parse(body)[0] ?? {};
  } catch {}
  const code = first.errorCode ?? 'UNKNOWN';
  const message = first.message ?? 'no message';
  if (status === 401) return { tag: 'unauthorized', val: message };
  if (code === 'REQUEST_LIMIT_EXCEEDED') return { tag: 'rate-limited', val: undefined };
  const retryable = status >= 500 || code === 'UNABLE_TO_LOCK_ROW';
  return { tag: 'remote', val: { code, message, status, retryable } };
}

/** One HTTP exchange through fetch() (wasi:http underneath). A request the
 * host's allowlist refuses rejects, and comes back as a transport error. */
async function send(method, url, headers, body) {
  let response;
  try {
    response = await fetch(url, { method, headers, body });
  } catch (e) {
    throw { tag: 'transport', val: `${method} ${url}: ${e.message}` };
  }
  return { status: response.status, body: await response.text() };
}
