/** The sign-in flow through the pages lives with the scripts (benchmarks sign in the same way). */
import { authorize, pkce } from '../../scripts/lib/browser-login.js';

export { authorize, Browser, pkce, type AuthorizeResult } from '../../scripts/lib/browser-login.js';

/**
 * A user's access token from a real standalone launch (sign-in and consent pages): registers a public test
 * client once per issuer and returns the token response.
 */
const clients = new Map<string, string>();
export async function userToken(
  running: { auth: { issuer: string; fhirBase: string; registerClient: (r: any) => Promise<Record<string, unknown>> } },
  email: string,
  password: string,
  scope: string,
  patient?: string,
): Promise<{ access_token: string; patient?: string; [k: string]: unknown }> {
  const issuer = running.auth.issuer;
  let clientId = clients.get(issuer);
  if (!clientId) {
    const c = await running.auth.registerClient({ kind: 'public', redirect_uris: ['http://app.example/cb'], allowed_scopes: 'openid fhirUser launch launch/patient offline_access patient/*.cruds user/*.cruds', client_name: 'test user app' });
    clientId = c.client_id as string;
    clients.set(issuer, clientId);
  }
  const { verifier, challenge } = pkce();
  const r = await authorize({
    issuer, email, password, patient,
    params: { response_type: 'code', client_id: clientId, redirect_uri: 'http://app.example/cb', scope, state: 's', aud: running.auth.fhirBase, code_challenge: challenge, code_challenge_method: 'S256' },
  });
  if (!r.code) throw new Error(`no code: ${r.error ?? r.status} ${r.html?.slice(0, 300) ?? ''}`);
  const res = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code: r.code, redirect_uri: 'http://app.example/cb', code_verifier: verifier, client_id: clientId }),
  });
  return (await res.json()) as { access_token: string };
}
