// A real OAuth2 authorization server for the tests: oauth2-mock-server
// (npm, by AXA), on a loopback port, for the client credentials grant.
//
//   node server.js --client-id ID --client-secret SECRET --token TOKEN --log FILE
//
// It checks the client's credentials (HTTP Basic, or client_id and
// client_secret in the body), answering 401 invalid_client otherwise. The
// token it answers is TOKEN instead of the JWT it signs: the SCIM server
// the tests use takes static bearer tokens only. Every token request is a
// JSON line in FILE. The first line on stdout is `listening PORT`.
import { appendFileSync } from 'node:fs';
import { OAuth2Server } from 'oauth2-mock-server';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith('--') ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []),
);
for (const name of ['client-id', 'client-secret', 'token', 'log']) {
  if (!args[name]) {
    console.error(`missing --${name}`);
    process.exit(2);
  }
}

function credentials(req) {
  const header = req.headers.authorization ?? '';
  if (header.toLowerCase().startsWith('basic ')) {
    const decoded = Buffer.from(header.slice(6), 'base64').toString();
    const colon = decoded.indexOf(':');
    // RFC 6749 §2.3.1: each part is form-encoded inside Basic.
    const part = (s) => decodeURIComponent(s.replace(/\+/g, ' '));
    return { how: 'basic', id: part(decoded.slice(0, colon)), secret: part(decoded.slice(colon + 1)) };
  }
  return { how: 'body', id: req.body.client_id, secret: req.body.client_secret };
}

const server = new OAuth2Server();
await server.issuer.keys.generate('RS256');
server.service.on('beforeResponse', (response, req) => {
  const client = credentials(req);
  const ok = client.id === args['client-id'] && client.secret === args['client-secret'];
  appendFileSync(
    args.log,
    JSON.stringify({ grant_type: req.body.grant_type, scope: req.body.scope ?? null, client_id: client.id ?? null, auth: client.how, ok }) + '\n',
  );
  if (!ok) {
    response.statusCode = 401;
    response.body = { error: 'invalid_client', error_description: 'Client authentication failed' };
  } else if (req.body.grant_type === 'client_credentials') {
    response.body.access_token = args.token;
  }
});
await server.start(0, '127.0.0.1');
console.log(`listening ${server.address().port}`);
