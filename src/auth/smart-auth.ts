import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import Router from '@koa/router';
import { koaBody } from 'koa-body';
import mount from 'koa-mount';
import type { Db } from 'mongodb';
import type { Middleware } from 'koa';
import type Provider from 'oidc-provider';
import type { Logger } from '../infra/logger.js';
import { errors } from '../fhir/outcomes.js';
import type { Indexer } from '../fhir/search/index-entry.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import type { LinkCache } from './link-cache.js';
import { AccessPolicy, type AccessContext } from './access-policy.js';
import { bearerToken, resolveAccessToken } from './access-tokens.js';
import type { AccessContextCache } from './access-context-cache.js';
import type { AccountDirectory } from './accounts-port.js';
import { interactionRoutes } from './interactions.js';
import { LaunchContexts } from './launch-contexts.js';
import { createProvider } from './provider.js';
import { ScopedRepository, type WriteRules } from './scoped-repository.js';
import { smartConfiguration } from './smart-configuration.js';
import { isGrantableScope } from './smart-scopes.js';
import { PAYOR_REFERENCE } from './payor-binding.js';
import { parseClientRateLimit, type ClientRateLimit } from '../http/client-rate-limit.js';

export interface SmartAuthOptions {
  db: Db;
  /** The unscoped repository (the access policy reads links such as a practitioner's appointments through it). */
  repo: FhirRepository;
  indexer: Indexer;
  accounts: AccountDirectory;
  logger: Logger;
  allowLoopbackFetch: boolean;
}

export interface ClientRegistration {
  client_id?: string;
  client_name?: string;
  /** public: PKCE only; confidential-symmetric: client secret; backend: private_key_jwt with client_credentials. */
  kind: 'public' | 'confidential' | 'backend';
  redirect_uris?: string[];
  jwks?: { keys: Record<string, unknown>[] };
  jwks_uri?: string;
  allowed_scopes: string;
  launch_uri?: string;
  /** This client's request limit (http/rate-limit.ts); absent: the server's RATE_LIMIT_* defaults. */
  rate_limit?: ClientRateLimit;
  /** Backend clients of an insurer: `Organization/[id]` of the payor whose Coverage alone they reach (payor-binding.ts). */
  payor_organization?: string;
}

/**
 * The SMART-on-FHIR authorization server mounted in the same Koa process: discovery, the oidc-provider
 * endpoints under /auth, the sign-in/consent pages, EHR launch creation, client registration, and the
 * turning of an access token into the scoped repository a FHIR request uses.
 */
export class SmartAuth {
  readonly launches: LaunchContexts;
  private provider?: Provider;
  private mounted?: Middleware;
  issuer = '';
  fhirBase = '';

  constructor(private readonly o: SmartAuthOptions) {
    this.launches = new LaunchContexts(o.db);
  }

  /** Creates the provider once the public base URL is known (it is the issuer). */
  /** Returns the cookie keys: the Koa app the provider is mounted in signs its cookies with them. */
  async start(publicBase: string, fhirMount: string): Promise<string[]> {
    this.issuer = `${publicBase}/auth`;
    this.fhirBase = `${publicBase}${fhirMount}`;
    const { provider, cookieKeys } = await createProvider({
      issuer: this.issuer, fhirBase: this.fhirBase, db: this.o.db, launches: this.launches, accounts: this.o.accounts,
      logger: this.o.logger, allowLoopbackFetch: this.o.allowLoopbackFetch, styleUrl: `${publicBase}/auth/smart-style.json`,
    });
    this.provider = provider;
    // Revocations evict cached callers here and, through the cache's broadcast, in every other process.
    const forget = (r: { token?: string; grantId?: string }) => void this.accessCache?.revoked(r);
    provider.on('access_token.destroyed', (t: { jti: string; grantId?: string }) => forget({ token: t.jti, grantId: t.grantId }));
    provider.on('client_credentials.destroyed', (t: { jti: string }) => forget({ token: t.jti }));
    provider.on('grant.revoked', (_ctx: unknown, grantId: string) => forget({ grantId }));
    provider.on('grant.destroyed', (g: { jti: string }) => forget({ grantId: g.jti }));
    this.mounted = mount('/auth', provider as unknown as Middleware);
    return cookieKeys;
  }

  get oidc(): Provider {
    if (!this.provider) throw errors.unavailable('The authorization server is starting');
    return this.provider;
  }

  /** Koa middleware for everything under /auth and the SMART discovery document. */
  routes(fhirMount: string): Middleware[] {
    const router = new Router();
    const discovery: Middleware = (ctx) => {
      ctx.set('Access-Control-Allow-Origin', '*');
      ctx.type = 'application/json';
      ctx.body = smartConfiguration(this.issuer);
    };
    router.get(`${fhirMount}/.well-known/smart-configuration`, discovery);
    router.get('/.well-known/smart-configuration', discovery);
    router.get('/auth/smart-style.json', (ctx) => {
      ctx.body = { color_background: '#edeae3', color_error: '#9e2d2d', color_highlight: '#69b5ce', color_modal_backdrop: '', color_success: '#498e49', color_text: '#303030', dim_border_radius: '6px', dim_font_size: '13px', dim_spacing_size: '20px', font_family_body: 'system-ui', font_family_heading: 'system-ui' };
    });
    const json = koaBody({ json: true, urlencoded: false, text: false, multipart: false, jsonLimit: '64kb' });
    // EHR launch: a signed-in clinician's session (its token) opens an app with a patient in context.
    router.post('/auth/launch', json, async (ctx) => {
      const access = await this.accessContext(ctx.get('authorization'));
      if (!access.fhirUser && access.role !== 'system-admin') throw errors.forbidden('Only a signed-in user can start an EHR launch');
      const body = (ctx.request as { body?: Record<string, unknown> }).body ?? {};
      const patient = typeof body.patient === 'string' ? body.patient : undefined;
      const encounter = typeof body.encounter === 'string' ? body.encounter : undefined;
      if (patient) await this.repositoryFor(access).read('Patient', patient);
      const launch = await this.launches.create({ patient, encounter, createdBy: access.fhirUser ?? access.clientId, clientId: typeof body.client_id === 'string' ? body.client_id : undefined });
      ctx.status = 201;
      ctx.body = { launch, iss: this.fhirBase };
    });
    // Client registration by system administrators (how an insurer or lab is onboarded over the API).
    router.post('/auth/admin/clients', json, async (ctx) => {
      const access = await this.accessContext(ctx.get('authorization'));
      if (access.role !== 'system-admin') throw errors.forbidden('Only system administrators register clients');
      ctx.status = 201;
      ctx.body = await this.registerClient((ctx.request as { body?: ClientRegistration }).body as ClientRegistration);
    });
    // SMART lets public clients refresh with grant_type and refresh_token alone (fhirclient does so by default);
    // oidc-provider wants client_id for them, so name the refresh token's client when it is a public one.
    router.post('/auth/token', async (ctx, next) => {
      if (ctx.is('application/x-www-form-urlencoded') && !ctx.get('authorization')) {
        const text = await peekBody(ctx.req, 56 * 1024);
        const form = text === undefined ? undefined : new URLSearchParams(text);
        if (form?.get('grant_type') === 'refresh_token' && form.get('refresh_token') && !form.has('client_id') && !form.has('client_assertion')) {
          const rt = await this.oidc.RefreshToken.find(form.get('refresh_token')!);
          const client = rt?.clientId ? await this.oidc.Client.find(rt.clientId) : undefined;
          if (client?.clientAuthMethod === 'none') replaceBody(ctx.req, `${text}&client_id=${encodeURIComponent(client.clientId)}`);
        }
      }
      await next();
    });
    const interactions = interactionRoutes({
      provider: () => this.oidc, accounts: this.o.accounts, launches: this.launches, repo: this.o.repo, indexer: this.o.indexer,
      styleUrl: () => `${this.issuer}/smart-style.json`,
    });
    const provider: Middleware = (ctx, next) => (this.mounted ? this.mounted(ctx, next) : next());
    return [router.routes() as Middleware, interactions.routes() as Middleware, provider];
  }

  async accessContext(authorization: string | undefined): Promise<AccessContext> {
    const token = bearerToken(authorization);
    const cached = token ? this.accessCache?.get(token) : undefined;
    if (cached) return cached;
    const resolved = await resolveAccessToken(authorization, this.oidc, this.o.accounts, this.fhirBase);
    this.accessCache?.put(resolved);
    return resolved.access;
  }

  /** Remembers callers of tokens briefly (set by the composition root; see access-context-cache.ts). */
  accessCache?: AccessContextCache;

  /** Remembers account–patient links briefly (set by the composition root; see link-cache.ts). */
  linkCache?: LinkCache;

  /** The repository for one request: every interaction goes through the caller's access policy. */
  repositoryFor(access: AccessContext, base: FhirRepository = this.o.repo): FhirRepository {
    const scoped = new ScopedRepository(base, new AccessPolicy(access, this.o.repo, this.o.indexer, this.linkCache), this.writeRules(access));
    return this.decorate ? this.decorate(scoped, access) : scoped;
  }

  /** Domain write rules that need more than WriteRules offers (e.g. asynchronous checks), around the scoped repository. */
  decorate?: (repo: FhirRepository, access: AccessContext) => FhirRepository;

  /** Workflow rules on plain writes (set by the composition root). */
  writeRules: (access: AccessContext) => WriteRules = () => ({});

  /** Registers (or replaces) a client; returns its metadata with the generated id and secret. */
  async registerClient(r: ClientRegistration): Promise<Record<string, unknown>> {
    if (!r || !['public', 'confidential', 'backend'].includes(r.kind)) throw errors.badRequest("kind must be 'public', 'confidential' or 'backend'");
    const scopes = String(r.allowed_scopes ?? '').split(/\s+/).filter(Boolean);
    const bad = scopes.filter((s) => !isGrantableScope(s));
    if (!scopes.length || bad.length) throw errors.badRequest(`allowed_scopes must list SMART scopes${bad.length ? `; not valid: ${bad.join(' ')}` : ''}`);
    const clientId = r.client_id ?? `mvy-${randomBytes(9).toString('base64url')}`;
    const metadata: Record<string, unknown> = { client_id: clientId, allowed_scopes: scopes.join(' '), ...(r.client_name ? { client_name: r.client_name } : {}) };
    if (r.rate_limit !== undefined) metadata.rate_limit = parseClientRateLimit(r.rate_limit);
    if (r.payor_organization !== undefined) {
      if (r.kind !== 'backend') throw errors.badRequest('payor_organization binds backend services clients only');
      if (typeof r.payor_organization !== 'string' || !PAYOR_REFERENCE.test(r.payor_organization)) throw errors.badRequest('payor_organization must be Organization/[id]');
      const [, id] = r.payor_organization.split('/');
      await this.o.repo.read('Organization', id!).catch((err) => {
        if ((err as { status?: number }).status === 404 || (err as { status?: number }).status === 410) throw errors.badRequest(`payor_organization ${r.payor_organization} is not a known Organization`);
        throw err;
      });
      metadata.payor_organization = r.payor_organization;
    }
    if (r.kind === 'backend') {
      if (scopes.some((s) => /^(patient|user)\//.test(s))) throw errors.badRequest('backend services clients take system/ scopes');
      Object.assign(metadata, { token_endpoint_auth_method: 'private_key_jwt', grant_types: ['client_credentials'], response_types: [], redirect_uris: [] });
      if (r.jwks) metadata.jwks = r.jwks;
      else if (r.jwks_uri) metadata.jwks_uri = r.jwks_uri;
      else throw errors.badRequest('backend services clients need jwks or jwks_uri');
    } else {
      if (!r.redirect_uris?.length) throw errors.badRequest('redirect_uris are required');
      Object.assign(metadata, {
        redirect_uris: r.redirect_uris, grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'],
        token_endpoint_auth_method: r.kind === 'public' ? 'none' : r.jwks || r.jwks_uri ? 'private_key_jwt' : 'client_secret_basic',
        ...(r.kind === 'confidential' && !r.jwks && !r.jwks_uri ? { client_secret: randomBytes(24).toString('base64url') } : {}),
        ...(r.jwks ? { jwks: r.jwks } : {}), ...(r.jwks_uri ? { jwks_uri: r.jwks_uri } : {}), ...(r.launch_uri ? { launch_uri: r.launch_uri } : {}),
      });
    }
    // Validate with oidc-provider's own client schema before storing, so a bad registration fails here.
    try {
      await (this.oidc.Client as any).validate(metadata);
    } catch (err) {
      throw errors.badRequest(`Invalid client: ${(err as { error_description?: string; message: string }).error_description ?? (err as Error).message}`);
    }
    await this.o.db.collection<{ _id: string }>('oidc_Client').replaceOne({ _id: clientId }, { payload: JSON.stringify(metadata) }, { upsert: true });
    return metadata;
  }
}

/**
 * Reads a small body with a Content-Length and puts it back, so that the next reader (oidc-provider, which
 * parses its own bodies) still finds it in the stream; undefined when it cannot peek (chunked, too large).
 */
async function peekBody(req: IncomingMessage, limit: number): Promise<string | undefined> {
  const length = Number(req.headers['content-length']);
  if (!Number.isInteger(length) || length <= 0 || length > limit) return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  while (size < length) {
    const chunk = req.read() as Buffer | null;
    if (chunk) {
      chunks.push(chunk);
      size += chunk.length;
      continue;
    }
    if (req.readableEnded || req.destroyed) break;
    await new Promise<void>((resolve) => {
      const done = () => (req.off('readable', done), req.off('end', done), req.off('close', done), resolve());
      req.on('readable', done).on('end', done).on('close', done);
    });
  }
  const body = Buffer.concat(chunks);
  if (body.length) req.unshift(body);
  return body.toString('utf8');
}

/** Swaps a peeked (still unread) body for another, keeping Content-Length true. */
function replaceBody(req: IncomingMessage, text: string): void {
  req.read(); // takes the peeked body back out of the stream's buffer
  const body = Buffer.from(text, 'utf8');
  req.unshift(body);
  req.headers['content-length'] = String(body.length);
}
