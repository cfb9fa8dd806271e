import { createHash, randomBytes } from 'node:crypto';

/**
 * Signing in as a person would, for benchmarks and tests: a minimal browser for the authorization code flow
 * that follows redirects on the authorization server, keeps its cookies, fills the sign-in and consent forms,
 * and stops at the app's redirect_uri.
 */
export class Browser {
  private cookies = new Map<string, string>();

  async get(url: string): Promise<Response> {
    return this.request(url, { method: 'GET' });
  }

  async postForm(url: string, form: Record<string, string>): Promise<Response> {
    return this.request(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form).toString() });
  }

  private async request(url: string, init: RequestInit): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.cookies.size) headers.set('cookie', [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '));
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair!.indexOf('=');
      const name = pair!.slice(0, i);
      const value = pair!.slice(i + 1);
      if (/expires=Thu, 01 Jan 1970/i.test(c) || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return res;
  }

  /** Follows redirects until leaving `origin` (the app's redirect_uri) or reaching a page; returns the last response and URL. */
  async follow(start: Response, from: string, origin: string): Promise<{ res: Response; url: string }> {
    let res = start;
    let url = from;
    for (let i = 0; i < 10 && res.status >= 300 && res.status < 400; i++) {
      url = new URL(res.headers.get('location')!, url).toString();
      if (!url.startsWith(origin)) return { res, url };
      res = await this.get(url);
    }
    return { res, url };
  }
}

export function pkce(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

export interface AuthorizeResult {
  code?: string;
  error?: string;
  state?: string;
  /** The page the flow stopped at when it did not redirect back (e.g. an error page). */
  status: number;
  html?: string;
}

/**
 * Runs authorize → sign in → consent (allow, or deny) with a fresh browser, as a user would in a page.
 * `patient` fills the patient picker when one is shown.
 */
export async function authorize(opts: {
  issuer: string;
  params: Record<string, string>;
  email: string;
  password: string;
  decision?: 'allow' | 'deny';
  patient?: string;
  browser?: Browser;
}): Promise<AuthorizeResult> {
  const b = opts.browser ?? new Browser();
  const origin = new URL(opts.issuer).origin;
  const start = `${opts.issuer}/authorize?${new URLSearchParams(opts.params)}`;
  let { res, url } = await b.follow(await b.get(start), start, origin);
  for (let step = 0; step < 4; step++) {
    if (!url.startsWith(origin)) {
      const back = new URL(url);
      return { code: back.searchParams.get('code') ?? undefined, error: back.searchParams.get('error') ?? undefined, state: back.searchParams.get('state') ?? undefined, status: res.status };
    }
    const html = await res.text();
    const action = /<form method="post" action="([^"]+)"/.exec(html)?.[1];
    if (!action) return { status: res.status, html };
    const target = new URL(action.replace(/&amp;/g, '&'), url).toString();
    const form: Record<string, string> = action.endsWith('/login') ? { email: opts.email, password: opts.password } : { decision: opts.decision ?? 'allow' };
    if (/name="patient"/.test(html)) form.patient = opts.patient ?? '';
    const posted = await b.postForm(target, form);
    if (posted.status === 401 || posted.status === 429) return { status: posted.status, html: await posted.text() };
    ({ res, url } = await b.follow(posted, target, origin));
  }
  return { status: res.status };
}

/**
 * A user's access token through the pages (sign-in, consent) with a public client registered for `redirectUri`:
 * authorization code + PKCE, as a SMART app gets it.
 */
export async function signIn(opts: { issuer: string; fhirBase: string; clientId: string; redirectUri: string; email: string; password: string; scope: string; patient?: string }): Promise<Record<string, unknown> & { access_token: string }> {
  const { verifier, challenge } = pkce();
  const r = await authorize({
    issuer: opts.issuer, email: opts.email, password: opts.password, patient: opts.patient,
    params: { response_type: 'code', client_id: opts.clientId, redirect_uri: opts.redirectUri, scope: opts.scope, state: 's', aud: opts.fhirBase, code_challenge: challenge, code_challenge_method: 'S256' },
  });
  if (!r.code) throw new Error(`sign-in gave no code: ${r.error ?? r.status} ${r.html?.slice(0, 300) ?? ''}`);
  const res = await fetch(`${opts.issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code: r.code, redirect_uri: opts.redirectUri, code_verifier: verifier, client_id: opts.clientId }),
  });
  const body = (await res.json()) as Record<string, unknown> & { access_token: string };
  if (!res.ok || !body.access_token) throw new Error(`token request failed (${res.status}): ${JSON.stringify(body)}`);
  return body;
}
