import { generateKeyPairSync, randomBytes } from 'node:crypto';
import type { Db } from 'mongodb';
import Provider, { errors as oidcErrors, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import type { Logger } from '../infra/logger.js';
import { mongoAdapterFactory } from './oidc-adapter.js';
import { CONTEXT_SCOPES, parseResourceScope, scopeWithin } from './smart-scopes.js';
import type { LaunchContexts } from './launch-contexts.js';
import type { AccountDirectory } from './accounts-port.js';
import { PAYOR_REFERENCE } from './payor-binding.js';
import { smartRefusals, smartTokens } from '../infra/metrics.js';

export interface ProviderOptions {
  issuer: string;
  fhirBase: string;
  db: Db;
  launches: LaunchContexts;
  accounts: AccountDirectory;
  logger: Logger;
  /** Tests run client JWKS servers on loopback, which oidc-provider's SSRF guard blocks by default. */
  allowLoopbackFetch: boolean;
  /** Style sheet for EHR launches (`smart_style_url`). */
  styleUrl: string;
}

/** Keys shared by every process: created once in the database, read by all after (like the cursor secret). */
async function sharedSecrets(db: Db): Promise<{ jwk: Record<string, unknown>; cookieKey: string }> {
  const settings = db.collection<{ _id: string; value: unknown }>('server_settings');
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: `rs256-${randomBytes(6).toString('hex')}`, use: 'sig', alg: 'RS256' };
  await settings.updateOne({ _id: 'oidc-signing-key' }, { $setOnInsert: { value: jwk } }, { upsert: true });
  await settings.updateOne({ _id: 'oidc-cookie-key' }, { $setOnInsert: { value: randomBytes(32).toString('base64url') } }, { upsert: true });
  const [key, cookie] = await Promise.all([settings.findOne({ _id: 'oidc-signing-key' }), settings.findOne({ _id: 'oidc-cookie-key' })]);
  return { jwk: key!.value as Record<string, unknown>, cookieKey: cookie!.value as string };
}

/** Scopes asked for in this request: authorization, or the code/refresh token being exchanged (P-2). */
function requestedScopes(ctx: KoaContextWithOIDC): string[] {
  const o = ctx.oidc as any;
  return [o.params?.scope, o.entities?.AuthorizationCode?.scope, o.entities?.RefreshToken?.scope]
    .filter((s): s is string => typeof s === 'string')
    .join(' ')
    .split(/\s+/)
    .filter(Boolean);
}

/**
 * The SMART authorization server: oidc-provider configured per the SMART App Launch 2 and Backend Services
 * requirements (../shared/reference/smart-on-fhir.md), with the pitfalls it lists handled: resource
 * indicators so SMART scopes are not dropped (P-1/P-2), PKCE S256 required for every client (P-14),
 * RS384/ES384 client assertions (P-13), a 5-minute assertion `exp` limit and `sub`/`jku` checks, a fresh
 * consent per launch so context never goes stale (P-5), opaque tokens (introspectable and revocable, P-9).
 */
export async function createProvider(o: ProviderOptions): Promise<{ provider: Provider; cookieKeys: string[] }> {
  const { jwk, cookieKey } = await sharedSecrets(o.db);
  const allowedScopes = (client: any): string[] => String(client?.['allowed_scopes'] ?? '').split(/\s+/).filter(Boolean);
  const config: Configuration = {
    adapter: mongoAdapterFactory(o.db),
    jwks: { keys: [jwk as any] },
    cookies: { keys: [cookieKey], long: { signed: true }, short: { signed: true } },
    responseTypes: ['code'],
    pkce: { required: () => true },
    scopes: CONTEXT_SCOPES,
    claims: { openid: ['sub'], fhirUser: ['fhirUser'], profile: ['name'] },
    clientAuthMethods: ['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt'],
    enabledJWA: { clientAuthSigningAlgValues: ['RS384', 'ES384', 'RS256', 'ES256', 'PS384'] },
    extraClientMetadata: {
      properties: ['allowed_scopes', 'launch_uri', 'rate_limit', 'payor_organization'],
      validator(_ctx, key, value) {
        if (key === 'payor_organization' && value !== undefined && (typeof value !== 'string' || !PAYOR_REFERENCE.test(value))) throw new oidcErrors.InvalidClientMetadata('payor_organization must be Organization/[id]');
        if (key === 'allowed_scopes' && value !== undefined && typeof value !== 'string') throw new oidcErrors.InvalidClientMetadata('allowed_scopes must be a space-separated string');
      },
    },
    routes: { authorization: '/authorize', token: '/token', introspection: '/introspect', revocation: '/revoke', jwks: '/jwks', userinfo: '/userinfo' },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      // A client may introspect its own tokens; a confidential client (a resource server, a backend) any.
      introspection: { enabled: true, allowedPolicy: async (_ctx: any, client: any, token: any) => client.clientAuthMethod !== 'none' || token.clientId === client.clientId },
      // Only the client a token was issued to may revoke it.
      revocation: { enabled: true, allowedPolicy: async (_ctx: any, client: any, token: any) => token.clientId === client.clientId },
      dPoP: { enabled: false },
      rpInitiatedLogout: { enabled: false },
      userinfo: { enabled: true },
      resourceIndicators: {
        enabled: true,
        useGrantedResource: async () => true,
        // SMART apps send `aud`; backend services send nothing: both mean this FHIR server.
        defaultResource: async (ctx: any, _client: any, oneOf?: string | string[]) => oneOf ?? ctx.oidc.params?.aud ?? o.fhirBase,
        getResourceServerInfo: async (ctx: any, resource: string, client: any) => {
          if (resource !== o.fhirBase) throw new oidcErrors.InvalidTarget(`The only resource here is ${o.fhirBase}`);
          const allowed = allowedScopes(client);
          const scope = requestedScopes(ctx).filter((s) => (parseResourceScope(s) || CONTEXT_SCOPES.includes(s)) && scopeWithin(s, allowed)).join(' ');
          const backend = ctx.oidc.params?.grant_type === 'client_credentials';
          return { scope, audience: o.fhirBase, accessTokenFormat: 'opaque', accessTokenTTL: backend ? 300 : 3600 };
        },
      },
    },
    extraParams: {
      aud(ctx: any, value: unknown) {
        if (ctx.oidc.route !== 'authorization') return;
        if (value === undefined && ctx.oidc.params.resource === o.fhirBase) return;
        if (value === undefined) throw new oidcErrors.InvalidRequest('aud is required: the FHIR base URL of this server');
        if (value !== o.fhirBase) throw new oidcErrors.InvalidTarget(`aud must be ${o.fhirBase}`);
      },
      async launch(ctx: any, value: unknown) {
        if (ctx.oidc.route !== 'authorization' || value === undefined) return;
        if (typeof value !== 'string' || !(await o.launches.find(value))) throw new oidcErrors.InvalidRequest('launch is unknown or expired');
      },
    } as any,
    // A new launch (EHR `launch` or a `launch/…` scope) always goes through consent, so its context is fresh (P-5).
    async loadExistingGrant(ctx: any) {
      const p = ctx.oidc.params ?? {};
      const resultGrant = ctx.oidc.result?.consent?.grantId;
      if ((p.launch || /(^|\s)launch\//.test(p.scope ?? '')) && !resultGrant) return undefined;
      const id = resultGrant || ctx.oidc.session?.grantIdFor(ctx.oidc.client.clientId);
      return id ? ctx.oidc.provider.Grant.find(id) : undefined;
    },
    async issueRefreshToken(_ctx: any, client: any, code: any) {
      return client.grantTypeAllowed('refresh_token') && (code.scopes.has('offline_access') || code.scopes.has('online_access'));
    },
    async extraTokenClaims(_ctx: any, token: any) {
      return token.grantId ? await o.launches.contextOf(token.grantId) : undefined;
    },
    async assertJwtClientAuthClaimsAndHeader(_ctx: any, claims: any, header: any, client: any) {
      if (typeof claims.exp !== 'number' || claims.exp - Math.floor(Date.now() / 1000) > 300) throw new oidcErrors.InvalidClientAuth('the assertion exp must be at most 5 minutes ahead');
      if (claims.sub !== client.clientId) throw new oidcErrors.InvalidClientAuth('the assertion sub must be the client_id');
      if (header.jku && header.jku !== client.jwksUri) throw new oidcErrors.InvalidClientAuth('jku is not the registered jwks_uri');
    },
    async findAccount(_ctx: any, sub: string) {
      const account = await o.accounts.findById(sub);
      if (!account) return undefined;
      return { accountId: sub, claims: async () => ({ sub, ...(account.fhirUser ? { fhirUser: account.fhirUser } : {}), name: account.name }) };
    },
    interactions: { url: (_ctx: any, interaction: any) => `/auth/interaction/${interaction.uid}` },
    clientBasedCORS(_ctx: any, origin: string, client: any) {
      return (client.redirectUris ?? []).some((u: string) => new URL(u).origin === origin);
    },
    ttl: {
      AccessToken: 3600, AuthorizationCode: 60, ClientCredentials: 300, IdToken: 3600, Interaction: 600,
      Grant: 14 * 86400, Session: 14 * 86400, RefreshToken: 30 * 86400,
    },
    async renderError(ctx: any, out: any) {
      ctx.type = 'html';
      ctx.body = `<!doctype html><meta charset="utf-8"><title>Authorization error</title><h1>Authorization error</h1><p>${escapeHtml(String(out.error))}: ${escapeHtml(String(out.error_description ?? ''))}</p>`;
    },
    ...(o.allowLoopbackFetch ? { fetch: (url: string | URL, options: any) => fetch(url, { ...options, dispatcher: undefined }) } : {}),
  } as Configuration;
  const provider = new Provider(o.issuer, config);
  provider.proxy = true;

  provider.use(async (ctx, next) => {
    // P-4: OIDC keeps offline_access only with prompt=consent, which SMART apps do not send; our consent
    // page runs for every new grant anyway, so ask for it on their behalf.
    if (ctx.path === '/authorize' && ctx.method === 'GET' && /(^|\s)offline_access(\s|$)/.test(String(ctx.query.scope ?? '')) && !ctx.query.prompt) {
      ctx.query = { ...ctx.query, prompt: 'consent' };
    }
    await next();
    const oidc = (ctx as KoaContextWithOIDC).oidc as any;
    if (oidc?.route === 'token') {
      ctx.set('Pragma', 'no-cache'); // P-8
      const at = oidc.entities?.AccessToken;
      if (ctx.status === 200 && at?.extra && ctx.body && typeof ctx.body === 'object') {
        const { fhirUser: _f, role: _r, organization: _o, ...launch } = at.extra as Record<string, unknown>;
        Object.assign(ctx.body as object, launch);
      }
    }
  });
  provider.on('server_error', (_ctx, err) => o.logger.error({ err }, 'authorization server error'));
  // Token issuance and refusals for /metrics (opaque tokens are stored, so their event is `saved`, once each).
  provider.on('access_token.saved', (token: any) => smartTokens.inc({ grant_type: String(token.gty ?? 'authorization_code').split(' ').pop() }));
  provider.on('client_credentials.saved', () => smartTokens.inc({ grant_type: 'client_credentials' }));
  provider.on('grant.error', (_ctx, err: any) => smartRefusals.inc({ endpoint: 'token', error: String(err?.error ?? 'server_error') }));
  provider.on('authorization.error', (_ctx, err: any) => smartRefusals.inc({ endpoint: 'authorization', error: String(err?.error ?? 'server_error') }));
  return { provider, cookieKeys: [cookieKey] };
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}
