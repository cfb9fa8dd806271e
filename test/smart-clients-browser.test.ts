/**
 * The real SMART JavaScript client (`fhirclient`, its browser build) in headless Chromium (Debian's
 * `chromium`, driven by `playwright-core`): a small app served from 127.0.0.1 completes a standalone patient
 * launch with PKCE through our sign-in and consent pages, reads the patient and an Observation search (page by
 * page), refreshes its token; and an EHR launch opened by a clinician. This exercises CORS on discovery, the
 * token endpoint and the FHIR API, which Node clients never do. The consent page's screenshot is written to
 * test-output/.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { http, startTestServer, type TestServer } from './support/server.js';
import { signIn } from '../scripts/lib/browser-login.js';

const CHROMIUM = '/usr/bin/chromium';
const OUTPUT = resolve('test-output');
const PASSWORD = 'Blue-Harbor-72!';
const STANDALONE_SCOPE = 'openid fhirUser launch/patient patient/*.rs offline_access';
const EHR_SCOPE = 'launch openid fhirUser patient/*.rs';

let srv: TestServer;
let app: Server;
let appUrl = '';
let clientId = '';
let alice: { id: string; fhirUser: string };
let context: BrowserContext;
let profileDir = '';
const pageLog: string[] = [];

/** The SMART app: a launch page that calls FHIR.oauth2.authorize and the redirect page that calls ready(). */
function appPage(path: string): string | undefined {
  const head = '<!doctype html><html><meta charset="utf-8"><title>test app</title><script src="/fhir-client.js"></script>';
  if (path === '/launch.html') {
    // iss (and launch, for an EHR launch) come in the URL, as the SMART launch sequence has it.
    return `${head}<script>
      const launch = new URLSearchParams(location.search).get('launch');
      FHIR.oauth2.authorize({ clientId: ${JSON.stringify(clientId)}, scope: launch ? ${JSON.stringify(EHR_SCOPE)} : ${JSON.stringify(STANDALONE_SCOPE)}, redirectUri: 'index.html', pkceMode: 'required' })
        .catch((e) => { window.result = { error: 'authorize: ' + e }; });
    </script></html>`;
  }
  if (path === '/index.html') {
    return `${head}<script>
      FHIR.oauth2.ready().then(async (client) => {
        const t = client.state.tokenResponse;
        const out = { patientId: client.patient.id, encounterId: client.encounter.id, fhirUser: client.getFhirUser(), banner: t.need_patient_banner, scope: t.scope, accessToken: t.access_token };
        out.patientFamily = (await client.patient.read()).name[0].family;
        const pages = await client.request('Observation?patient=' + client.patient.id + '&_count=1', { pageLimit: 0 });
        out.observationPages = pages.length;
        out.observations = pages.flatMap((b) => (b.entry || []).map((e) => e.resource.subject.reference));
        if (t.refresh_token) {
          await client.refresh();
          out.refreshedToken = client.state.tokenResponse.access_token;
          out.readAfterRefresh = (await client.request('Patient/' + client.patient.id)).id;
        }
        window.result = out;
      }).catch((e) => { window.result = { error: 'ready: ' + (e && e.stack || e) }; });
    </script></html>`;
  }
  return undefined;
}

beforeAll(async () => {
  statSync(CHROMIUM); // installed by .ci/run (apt-get install chromium) when missing
  srv = await startTestServer();
  app = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === '/fhir-client.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(readFileSync('node_modules/fhirclient/build/fhir-client.js'));
      return;
    }
    const html = appPage(path);
    if (html) res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html);
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  appUrl = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
  const c = await srv.running.auth.registerClient({ kind: 'public', redirect_uris: [`${appUrl}/index.html`], allowed_scopes: `${STANDALONE_SCOPE} ${EHR_SCOPE}`, client_name: 'Browser test app' });
  clientId = c.client_id as string;

  alice = (await http('POST', `${srv.url}/auth/register`, { token: false, headers: { 'content-type': 'application/json' }, body: { email: 'alice@example.org', password: PASSWORD, givenName: 'Alice', familyName: 'Anders' } })).body;
  const bob = (await http('POST', `${srv.url}/auth/register`, { token: false, headers: { 'content-type': 'application/json' }, body: { email: 'bob@example.org', password: PASSWORD, givenName: 'Bob', familyName: 'Berg' } })).body;
  for (const [p, code] of [[alice, '2339-0'], [alice, '8867-4'], [alice, '8480-6'], [bob, '2339-0']] as const) {
    expect((await http('POST', `${srv.base}/Observation`, { body: { resourceType: 'Observation', status: 'final', code: { coding: [{ system: 'http://loinc.org', code }] }, subject: { reference: p.fhirUser } } })).status).toBe(201);
  }
  const house = await srv.running.accounts.createAccount({ kind: 'practitioner', email: 'house@example.org', password: PASSWORD, person: { givenName: 'Gregory', familyName: 'House' } });
  await http('POST', `${srv.base}/Appointment`, {
    body: { resourceType: 'Appointment', status: 'booked', start: '2030-01-01T09:00:00Z', end: '2030-01-01T09:30:00Z', participant: [{ actor: { reference: alice.fhirUser }, status: 'accepted' }, { actor: { reference: house.fhirUser }, status: 'accepted' }] },
  });

  profileDir = mkdtempSync(join(tmpdir(), 'medivoy-chromium-'));
  context = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}, 120_000);

afterAll(async () => {
  await context?.close();
  if (profileDir) rmSync(profileDir, { recursive: true, force: true });
  await new Promise((r) => (app ? app.close(r) : r(undefined)));
  await srv?.close();
});

function watch(page: Page) {
  page.on('console', (m) => pageLog.push(`console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => pageLog.push(`pageerror: ${e.message}`));
}

/** Signs in on our sign-in page, then waits for the consent page. */
async function signInPage(page: Page, email: string) {
  await page.waitForSelector('input[name=email]');
  expect(page.url().startsWith(srv.running.auth.issuer)).toBe(true);
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', PASSWORD);
  await page.click('button');
  await page.waitForSelector('button[value=allow]');
}

async function appResult(page: Page): Promise<any> {
  try {
    await page.waitForFunction('window.result !== undefined', undefined, { timeout: 60_000 });
  } catch (err) {
    throw new Error(`the app did not finish (at ${page.url()}):\n${pageLog.join('\n')}`, { cause: err });
  }
  const result: any = await page.evaluate('window.result');
  if (result.error) throw new Error(`${result.error}\n${pageLog.join('\n')}`);
  expect(page.url().startsWith(`${appUrl}/index.html`)).toBe(true);
  return result;
}

describe('fhirclient in Chromium', () => {
  it('standalone patient launch with PKCE: sign-in, consent, patient read, Observation search page by page, token refresh', async () => {
    const page = await context.newPage();
    watch(page);
    await page.goto(`${appUrl}/launch.html?iss=${encodeURIComponent(srv.base)}`);
    await signInPage(page, 'alice@example.org');
    expect(await page.textContent('body')).toMatch(/Browser test app/);
    mkdirSync(OUTPUT, { recursive: true });
    const shot = join(OUTPUT, 'smart-consent-page.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect(statSync(shot).size).toBeGreaterThan(1000);
    console.log(`consent page screenshot: ${shot}`);
    await page.click('button[value=allow]');

    const r = await appResult(page);
    expect(r.patientId).toBe(alice.fhirUser.split('/')[1]);
    expect(r.fhirUser).toBe(alice.fhirUser);
    expect(r.banner).toBe(true);
    expect(r.patientFamily).toBe('Anders');
    expect(r.observationPages).toBe(3); // _count=1: the client followed the next links
    expect(r.observations).toEqual([alice.fhirUser, alice.fhirUser, alice.fhirUser]);
    expect(r.scope.split(' ')).toEqual(expect.arrayContaining(['launch/patient', 'patient/*.rs', 'offline_access']));
    // The refresh gave a new token, which works (and reaches Alice's record only).
    expect(r.refreshedToken).toEqual(expect.any(String));
    expect(r.refreshedToken).not.toBe(r.accessToken);
    expect(r.readAfterRefresh).toBe(r.patientId);
    expect((await http('GET', `${srv.base}/${alice.fhirUser}`, { token: r.refreshedToken })).status).toBe(200);
    expect((await http('GET', `${srv.base}/Observation?code=2339-0`, { token: r.refreshedToken })).body.entry.map((e: any) => e.resource.subject.reference)).toEqual([alice.fhirUser]);
    await page.close();
  }, 120_000);

  it('EHR launch: a clinician opens the app with a patient in context', async () => {
    // The clinician's EHR session: a token from the pages, then POST /auth/launch with the patient.
    const ehr = await srv.running.auth.registerClient({ kind: 'public', redirect_uris: ['http://ehr.example/cb'], allowed_scopes: 'user/*.rs', client_name: 'EHR' });
    const clinician = await signIn({ issuer: srv.running.auth.issuer, fhirBase: srv.base, clientId: ehr.client_id as string, redirectUri: 'http://ehr.example/cb', email: 'house@example.org', password: PASSWORD, scope: 'user/*.rs' });
    const launch = await http('POST', `${srv.url}/auth/launch`, { token: clinician.access_token, headers: { 'content-type': 'application/json' }, body: { patient: alice.fhirUser.split('/')[1] } });
    expect(launch.status).toBe(201);
    expect(launch.body.iss).toBe(srv.base);

    await context.clearCookies(); // a new browser session: the clinician signs in, not Alice
    const page = await context.newPage();
    watch(page);
    await page.goto(`${appUrl}/launch.html?${new URLSearchParams({ iss: launch.body.iss, launch: launch.body.launch })}`);
    await signInPage(page, 'house@example.org');
    expect(await page.locator('input[name=patient]').count()).toBe(0); // the launch sets the patient: no picker
    await page.click('button[value=allow]');

    const r = await appResult(page);
    expect(r.patientId).toBe(alice.fhirUser.split('/')[1]);
    expect(r.fhirUser).toMatch(/^Practitioner\//);
    expect(r.banner).toBe(false);
    expect(r.patientFamily).toBe('Anders');
    expect(r.observations).toEqual([alice.fhirUser, alice.fhirUser, alice.fhirUser]);
    expect(r.refreshedToken).toBeUndefined(); // no offline_access asked for

    // The launch id is single-use: opening it again fails at the authorization server.
    const again = await context.newPage();
    watch(again);
    await again.goto(`${appUrl}/launch.html?${new URLSearchParams({ iss: launch.body.iss, launch: launch.body.launch })}`);
    await again.waitForFunction('window.result !== undefined', undefined, { timeout: 60_000 });
    const refused: any = await again.evaluate('window.result');
    expect(refused.error).toMatch(/launch is unknown or expired/); // back at the app as an OAuth error
    await page.close();
    await again.close();
  }, 120_000);
});

describe('refresh without client_id (what fhirclient sends by default)', () => {
  it('a public client\'s refresh token names its client; an unknown one is still refused', async () => {
    const t = await signIn({ issuer: srv.running.auth.issuer, fhirBase: srv.base, clientId, redirectUri: `${appUrl}/index.html`, email: 'alice@example.org', password: PASSWORD, scope: 'launch/patient patient/*.rs offline_access' });
    expect(t.refresh_token).toEqual(expect.any(String));
    const refresh = (refresh_token: string) => fetch(`${srv.running.auth.issuer}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token }) });
    const ok = await refresh(t.refresh_token as string);
    expect(ok.status).toBe(200);
    const body: any = await ok.json();
    expect(body.patient).toBe(alice.fhirUser.split('/')[1]);
    expect((await http('GET', `${srv.base}/${alice.fhirUser}`, { token: body.access_token })).status).toBe(200);
    const unknown = await refresh('not-a-refresh-token');
    expect(unknown.status).toBe(400);
    expect(((await unknown.json()) as any).error).toBe('invalid_request'); // no client named: oidc-provider's own answer
  });
});

