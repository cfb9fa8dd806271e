import type Provider from 'oidc-provider';
import { errors } from '../fhir/outcomes.js';
import type { AccessContext } from './access-policy.js';
import type { AccountDirectory } from './accounts-port.js';
import { parseScopes } from './smart-scopes.js';

/**
 * Turns `Authorization: Bearer …` into who is asking. Tokens are opaque and looked up in the shared store,
 * so a revoked or expired token fails at once in every process (RFC 6750: 401 with `WWW-Authenticate`).
 */
export async function accessContextOf(
  authorization: string | undefined,
  provider: Provider,
  accounts: AccountDirectory,
  fhirBase: string,
): Promise<AccessContext> {
  return (await resolveAccessToken(authorization, provider, accounts, fhirBase)).access;
}

/** An access token's caller, with what a cache needs to know when to forget it. */
export interface ResolvedToken {
  access: AccessContext;
  /** The token value (opaque: it is the token's id). */
  token: string;
  grantId?: string;
  /** When the token expires (ms since epoch). */
  expiresAt: number;
}

export async function resolveAccessToken(
  authorization: string | undefined,
  provider: Provider,
  accounts: AccountDirectory,
  fhirBase: string,
): Promise<ResolvedToken> {
  if (!authorization) throw errors.unauthorized('This request needs an access token (Authorization: Bearer …)');
  const m = /^Bearer\s+([A-Za-z0-9\-._~+/]+=*)\s*$/i.exec(authorization);
  if (!m) throw errors.unauthorized('The Authorization header is not a Bearer token', 'invalid_token');
  const value = m[1]!;
  const token: any = (await provider.AccessToken.find(value)) ?? (await provider.ClientCredentials.find(value));
  if (!token || token.isExpired) throw errors.unauthorized('The access token is unknown, expired or revoked', 'invalid_token');
  const audiences = Array.isArray(token.aud) ? token.aud : [token.aud];
  if (!audiences.includes(fhirBase)) throw errors.unauthorized(`The access token is not for ${fhirBase}`, 'invalid_token');
  if (token.grantId && token.kind === 'AccessToken') {
    // A token of a revoked grant (e.g. a refresh token reused) must stop working too.
    const grant = await provider.Grant.find(token.grantId);
    if (!grant) throw errors.unauthorized('The access token was revoked', 'invalid_token');
  }
  const extra = (token.extra ?? {}) as { patient?: string; fhirUser?: string };
  const account = token.accountId ? await accounts.findById(token.accountId) : undefined;
  if (token.accountId && !account) throw errors.unauthorized('The account of this token no longer exists', 'invalid_token');
  const access: AccessContext = {
    clientId: token.clientId,
    accountId: token.accountId,
    scopes: parseScopes(token.scope),
    granted: String(token.scope ?? '').split(/\s+/).filter(Boolean),
    patient: extra.patient,
    fhirUser: account?.fhirUser,
    role: account?.kind,
    organization: account?.organization,
  };
  // A backend client registered for an insurer sees only that payor's insurance records (payor-binding.ts).
  if (!token.accountId) {
    const client = await provider.Client.find(token.clientId);
    const payor = (client as unknown as { payor_organization?: unknown } | undefined)?.payor_organization;
    if (typeof payor === 'string') access.payor = payor;
  }
  return { access, token: value, grantId: token.grantId, expiresAt: (token.exp ?? 0) * 1000 };
}

/** The token value of an `Authorization: Bearer` header, or undefined when it has none. */
export function bearerToken(authorization: string | undefined): string | undefined {
  return authorization ? /^Bearer\s+([A-Za-z0-9\-._~+/]+=*)\s*$/i.exec(authorization)?.[1] : undefined;
}
