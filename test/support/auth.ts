import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import type { RunningServer } from '../../src/server.js';

export interface BackendClient {
  clientId: string;
  privateKey: KeyObject;
  kid: string;
  alg: 'ES384' | 'RS384';
}

/** Registers a SMART Backend Services client (private_key_jwt) with a fresh key pair. */
export async function registerBackendClient(running: RunningServer, allowedScopes: string, alg: 'ES384' | 'RS384' = 'ES384'): Promise<BackendClient> {
  const { privateKey, publicKey } = alg === 'ES384' ? generateKeyPairSync('ec', { namedCurve: 'P-384' }) : generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = randomUUID();
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
  const client = await running.auth.registerClient({ kind: 'backend', jwks: { keys: [jwk] }, allowed_scopes: allowedScopes, client_name: 'test backend' });
  return { clientId: client.client_id as string, privateKey, kid, alg };
}

/** A client assertion (RFC 7523) as SMART Backend Services asks for; `claims` overrides for negative tests. */
export async function clientAssertion(c: BackendClient, tokenUrl: string, claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ iss: c.clientId, sub: c.clientId, aud: tokenUrl, exp: now + 240, jti: randomUUID(), ...claims })
    .setProtectedHeader({ alg: c.alg, kid: c.kid, typ: 'JWT', ...header })
    .sign(c.privateKey);
}

export async function tokenRequest(tokenUrl: string, form: Record<string, string>): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(tokenUrl, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

/** A backend-services access token for `scope`. */
export async function backendToken(running: RunningServer, c: BackendClient, scope: string): Promise<{ access_token: string; expires_in: number; scope: string }> {
  const tokenUrl = `${running.auth.issuer}/token`;
  const res = await tokenRequest(tokenUrl, {
    grant_type: 'client_credentials',
    scope,
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: await clientAssertion(c, tokenUrl),
  });
  if (res.status !== 200) throw new Error(`token request failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/**
 * The token every test request sends unless it says otherwise: a backend client with full system access,
 * so tests that are not about authorization still go through it (there is no anonymous mode to test).
 */
export async function systemTokenSource(running: RunningServer): Promise<() => Promise<string>> {
  const client = await registerBackendClient(running, 'system/*.cruds');
  let token = '';
  let expiresAt = 0;
  return async () => {
    if (Date.now() > expiresAt - 30_000) {
      const t = await backendToken(running, client, 'system/*.cruds');
      token = t.access_token;
      expiresAt = Date.now() + t.expires_in * 1000;
    }
    return token;
  };
}
