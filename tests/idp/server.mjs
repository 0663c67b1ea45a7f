// A local OpenID provider for the flask-federation test suite, built on
// oidc-provider 9 (https://github.com/panva/node-oidc-provider).
//
// Usage:
//   node server.mjs --port PORT --keys PRIVATE_JWKS.json \
//     [--redirect-uri URI ...] [--post-logout-redirect-uri URI ...]
//
// The issuer is http://127.0.0.1:PORT and the server listens on 127.0.0.1
// only. It prints READY on stdout once it accepts connections. Redirect URIs
// can also come from the space-separated environment variables
// IDP_REDIRECT_URIS and IDP_POST_LOGOUT_REDIRECT_URIS.
//
// This server is for tests only: the login form accepts any password, and a
// client-credentials token request may name the provider_id and developer_id
// that the token carries.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

const DEFAULT_REDIRECT_URIS = [
  'http://127.0.0.1:5000/federation/oidc/provider/callback',
  'http://127.0.0.1:5000/federation/oidc/developer/callback',
];
const DEFAULT_POST_LOGOUT_REDIRECT_URIS = [
  'http://127.0.0.1:5000/federation/oidc/provider/logged-out',
  'http://127.0.0.1:5000/federation/oidc/developer/logged-out',
];

// Resource servers per RFC 8707. The two audiences sign with different
// algorithms, so the tests cover both RSA and EC keys from a real provider.
const RESOURCE_SERVERS = {
  'urn:federation:provider': {
    audience: 'urn:federation:provider',
    scope: 'tenants:read tenants:write audit:read',
    accessTokenFormat: 'jwt',
    accessTokenTTL: 600,
    jwt: { sign: { alg: 'RS256' } },
  },
  'urn:federation:developer': {
    audience: 'urn:federation:developer',
    scope: 'diagnostics:read audit:read',
    accessTokenFormat: 'jwt',
    accessTokenTTL: 600,
    jwt: { sign: { alg: 'ES256' } },
  },
};

// Fixed test accounts. The login form takes the account id as the login name.
const ACCOUNTS = {
  alice: { name: 'Alice Provider', provider_id: 'prv_alice' },
  bob: { name: 'Bob Provider', provider_id: 'prv_bob' },
  dave: { name: 'Dave Developer', developer_id: 'dev_dave' },
  erin: { name: 'Erin Developer', developer_id: 'dev_erin' },
  unmapped: { name: 'Account mapped to no principal' },
};

const PRINCIPAL_CLAIMS = ['provider_id', 'developer_id'];

function parseCommandLine() {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      keys: { type: 'string' },
      'redirect-uri': { type: 'string', multiple: true },
      'post-logout-redirect-uri': { type: 'string', multiple: true },
    },
    strict: true,
  });

  const port = Number.parseInt(values.port ?? '', 10);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new Error('--port must be a TCP port number between 1 and 65535');
  }
  if (!values.keys) {
    throw new Error('--keys must name a JSON file with a private JWKS ({"keys": [...]})');
  }

  const fromEnvironment = (name) => (process.env[name] ?? '').split(/\s+/).filter(Boolean);
  const redirectUris = values['redirect-uri'] ?? fromEnvironment('IDP_REDIRECT_URIS');
  const postLogoutRedirectUris = values['post-logout-redirect-uri']
    ?? fromEnvironment('IDP_POST_LOGOUT_REDIRECT_URIS');

  return {
    port,
    keysPath: values.keys,
    redirectUris: redirectUris.length ? redirectUris : DEFAULT_REDIRECT_URIS,
    postLogoutRedirectUris: postLogoutRedirectUris.length
      ? postLogoutRedirectUris
      : DEFAULT_POST_LOGOUT_REDIRECT_URIS,
  };
}

function principalClaims(source) {
  const claims = {};
  for (const name of PRINCIPAL_CLAIMS) {
    if (typeof source?.[name] === 'string' && source[name]) {
      claims[name] = source[name];
    }
  }
  return claims;
}

function lookUpAccount(accountId) {
  return Object.hasOwn(ACCOUNTS, accountId) ? ACCOUNTS[accountId] : undefined;
}

async function findAccount(_ctx, accountId) {
  const account = lookUpAccount(accountId);
  if (!account) {
    return undefined;
  }
  return {
    accountId,
    async claims() {
      return {
        sub: accountId,
        name: account.name,
        preferred_username: accountId,
        ...principalClaims(account),
      };
    },
  };
}

// Adds provider_id / developer_id to JWT access tokens. Client-credentials
// tokens take them from the token request's form parameters of the same
// names; tokens from the login flow take them from the signed-in account.
async function extraTokenClaims(ctx, token) {
  if (token.kind === 'ClientCredentials') {
    return principalClaims(ctx?.oidc?.body);
  }
  if (token.accountId) {
    return principalClaims(lookUpAccount(token.accountId));
  }
  return undefined;
}

async function readFormBody(request) {
  const chunks = [];
  let size = 0;
  for await (const chunk of request) {
    size += chunk.length;
    if (size > 64 * 1024) {
      throw new Error('the login form body is larger than 64 KiB');
    }
    chunks.push(chunk);
  }
  return Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
}

// Rejects unknown login names on the dev-interaction login form with HTTP 400.
// Without this check oidc-provider accepts any name, and findAccount's
// undefined result then fails the resumed authorization with HTTP 500.
// oidc-provider reads the form from ctx.request.body once this has consumed
// the request stream, and logs a one-time warning about it.
async function rejectUnknownLogins(ctx, next) {
  if (
    ctx.method === 'POST'
    && /^\/interaction\/[^/]+$/.test(ctx.path)
    && ctx.is('application/x-www-form-urlencoded')
  ) {
    const form = await readFormBody(ctx.req);
    if (form.prompt === 'login' && !lookUpAccount(form.login)) {
      ctx.status = 400;
      ctx.type = 'text/plain';
      ctx.body = `unknown test account ${JSON.stringify(form.login)}; `
        + `known accounts: ${Object.keys(ACCOUNTS).join(', ')}\n`;
      return;
    }
    ctx.request.body = form;
  }
  await next();
}

function buildConfiguration({ keys, redirectUris, postLogoutRedirectUris }) {
  return {
    jwks: keys,
    clients: [
      {
        client_id: 'federation-test',
        client_secret: 'federation-test-secret',
        grant_types: ['client_credentials', 'authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: redirectUris,
        post_logout_redirect_uris: postLogoutRedirectUris,
        // oidc-provider also accepts client_secret_post from a client that is
        // registered with client_secret_basic.
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    findAccount,
    extraTokenClaims,
    claims: {
      openid: ['sub', ...PRINCIPAL_CLAIMS],
      profile: ['name', 'preferred_username'],
    },
    // Puts the scope claims into the ID token too, so that a relying party
    // can read provider_id / developer_id without a userinfo call.
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    cookies: { keys: ['flask-federation-test-idp-cookie-key'] },
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      ClientCredentials: 600,
      IdToken: 600,
      Interaction: 600,
      Grant: 3600,
      Session: 3600,
      RefreshToken: 3600,
    },
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // Lets the token request omit "resource" in the authorization code
        // flow: the token is then issued for the resource that was granted.
        useGrantedResource: () => true,
        getResourceServerInfo(_ctx, resourceIndicator) {
          const info = RESOURCE_SERVERS[resourceIndicator];
          if (!info) {
            throw new errors.InvalidTarget(`unknown resource indicator ${resourceIndicator}`);
          }
          return info;
        },
      },
    },
  };
}

function main() {
  const options = parseCommandLine();
  const keys = JSON.parse(readFileSync(options.keysPath, 'utf8'));
  const issuer = `http://127.0.0.1:${options.port}`;
  const provider = new Provider(issuer, buildConfiguration({ ...options, keys }));

  provider.use(rejectUnknownLogins);
  provider.on('server_error', (_ctx, error) => {
    console.error('server_error:', error);
  });

  const server = provider.listen(options.port, '127.0.0.1', () => {
    process.stdout.write('READY\n');
  });
  server.on('error', (error) => {
    console.error(`listening on 127.0.0.1:${options.port} failed: ${error.message}`);
    process.exit(1);
  });

  const shutdown = () => server.close(() => process.exit(0));
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

main();
