// A real OpenID Connect provider for Termin's authorization tests (npm oidc-provider).
// It listens on 127.0.0.1 at a free port, prints `issuer <url>` once it answers, and issues
// RS256 JWT access tokens for the resource server `termin-api` by the client-credentials
// grant. Clients and scopes come as JSON in the first argument:
//   {"clients": [{"client_id": "...", "client_secret": "...", "scope": "system/*.rs ..."}]}
// A client's `scope` is all it may be granted; a token request asks for a subset.
import Provider from 'oidc-provider';
import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';

// The resource indicator must be an absolute URI; the audience is what Termin checks.
const RESOURCE = 'urn:termin:fhir';
const AUDIENCE = 'termin-api';
const settings = JSON.parse(process.argv[2] ?? '{"clients": []}');

// A fresh signing key per run: the test must find it through discovery and the JWKS endpoint.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'oidc-test-rs256', alg: 'RS256', use: 'sig' };

const allScopes = [...new Set(settings.clients.flatMap((c) => c.scope.split(' ')))];

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: settings.clients.map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: c.scope,
    })),
    jwks: { keys: [signingKey] },
    scopes: allScopes,
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resource) => {
          if (resource !== RESOURCE) throw new Error(`unknown resource ${resource}`);
          return { scope: allScopes.join(' '), audience: AUDIENCE, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
        },
      },
    },
  });
  provider.proxy = false;
  server.on('request', provider.callback());
  console.log(`issuer ${issuer}`);
});
