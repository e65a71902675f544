// A real OpenID Connect provider for Termin's authorization tests (npm oidc-provider).
// It listens on 127.0.0.1 at a free port, prints `issuer <url>` once it answers, and issues
// RS256 JWT access tokens for the resource server `termin-api` by the client-credentials
// grant. Clients and scopes come as JSON in the first argument:
//   {"clients": [{"client_id": "...", "client_secret": "...", "scope": "system/*.rs ..."}],
//    "interactive": [{"client_id": "termin-web", "redirect_uris": ["http://.../staff"], "scope": "openid user/*.cruds"}],
//    "users": {"verena": "PractitionerRole/seed-role-0"}}
// A client's `scope` is all it may be granted; a token request asks for a subset. Interactive
// clients are public (no secret, PKCE) and use the authorization code grant; people sign in on
// the provider's development login pages (any login name and password, then "Continue"); a
// login named in `users` gets that `fhirUser` claim in its access tokens.
// A redirect URI on 127.0.0.1 matches on any port (as RFC 8252 allows for loopback addresses):
// the test starts the provider before Termin, whose port the system picks.
import Provider from 'oidc-provider';
import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';

// The resource indicator must be an absolute URI; the audience is what Termin checks.
const RESOURCE = 'urn:termin:fhir';
const AUDIENCE = 'termin-api';
const settings = JSON.parse(process.argv[2] ?? '{"clients": []}');
const interactive = settings.interactive ?? [];

// A fresh signing key per run: the test must find it through discovery and the JWKS endpoint.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'oidc-test-rs256', alg: 'RS256', use: 'sig' };

const allScopes = [...new Set([...settings.clients, ...interactive].flatMap((c) => c.scope.split(' ')))];

const parse = (text) => { try { return new URL(text); } catch { return null; } };

/** `uri` is the registered loopback redirect URI on another port. */
function loopbackMatch(registered, uri) {
  const [a, b] = [parse(registered), parse(uri)];
  return Boolean(a && b && a.hostname === '127.0.0.1' && b.hostname === a.hostname
    && a.protocol === b.protocol && a.pathname === b.pathname && a.search === b.search);
}

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
    })).concat(interactive.map((c) => ({
      client_id: c.client_id,
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: c.redirect_uris,
      scope: c.scope,
    }))),
    jwks: { keys: [signingKey] },
    extraTokenClaims: (_ctx, token) => {
      const fhirUser = settings.users?.[token.accountId];
      return fhirUser ? { fhirUser } : undefined;
    },
    // The page exchanging the code runs on Termin's origin, one of its redirect URIs' origins.
    clientBasedCORS: (_ctx, origin, client) => client.clientAuthMethod === 'none'
      && client.redirectUris.some((uri) => loopbackMatch(uri, `${origin}${parse(uri)?.pathname ?? ''}`)),
    scopes: allScopes,
    features: {
      devInteractions: { enabled: interactive.length > 0 },
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
  const registeredOnly = provider.Client.prototype.redirectUriAllowed;
  provider.Client.prototype.redirectUriAllowed = function redirectUriAllowed(uri) {
    return registeredOnly.call(this, uri) || this.redirectUris.some((registered) => loopbackMatch(registered, uri));
  };
  server.on('request', provider.callback());
  console.log(`issuer ${issuer}`);
});
