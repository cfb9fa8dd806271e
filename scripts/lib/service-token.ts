import { generateKeyPairSync, randomUUID } from 'node:crypto';
import type { Db } from 'mongodb';
import { SignJWT } from 'jose';

/**
 * An access token source for operator scripts and benchmarks: registers a SMART Backend Services client
 * (private_key_jwt, `system/*.cruds`) straight in the server's database — the same record
 * `npm run register-client` writes — and fetches short-lived tokens from the server's token endpoint,
 * renewing them before they expire.
 */
export async function serviceTokenSource(db: Db, serverUrl: string, scope = 'system/*.cruds'): Promise<() => Promise<string>> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const kid = randomUUID();
  const clientId = `script-${randomUUID()}`;
  const metadata = {
    client_id: clientId, client_name: 'operator script', allowed_scopes: scope, token_endpoint_auth_method: 'private_key_jwt',
    grant_types: ['client_credentials'], response_types: [], redirect_uris: [], jwks: { keys: [{ ...publicKey.export({ format: 'jwk' }), kid, alg: 'ES384', use: 'sig' }] },
  };
  await db.collection<{ _id: string }>('oidc_Client').replaceOne({ _id: clientId }, { payload: JSON.stringify(metadata) }, { upsert: true });
  const tokenUrl = `${serverUrl}/auth/token`;
  let token = '';
  let expiresAt = 0;
  return async () => {
    if (Date.now() < expiresAt - 30_000) return token;
    const now = Math.floor(Date.now() / 1000);
    const assertion = await new SignJWT({ iss: clientId, sub: clientId, aud: tokenUrl, exp: now + 240, jti: randomUUID() })
      .setProtectedHeader({ alg: 'ES384', kid, typ: 'JWT' })
      .sign(privateKey);
    const res = await fetch(tokenUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope, client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion }),
    });
    const body = (await res.json()) as { access_token?: string; expires_in?: number; error_description?: string };
    if (!res.ok || !body.access_token) throw new Error(`token request failed (${res.status}): ${body.error_description ?? JSON.stringify(body)}`);
    token = body.access_token;
    expiresAt = Date.now() + (body.expires_in ?? 300) * 1000;
    return token;
  };
}
