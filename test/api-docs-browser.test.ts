/**
 * /api-docs in headless Chromium (Debian's `chromium`, driven by `playwright-core`): the page renders the
 * document with swagger-ui-dist's files from this server, a pasted bearer token (Authorize) lets "Try it out"
 * run GET /Patient against the running server, and the page shows the 200 and the Bundle. Nothing is fetched
 * from another origin and the page's Content-Security-Policy is never violated. Screenshots go to
 * test-output/api-docs.png, and with UPDATE_DOCS=1 also docs/api-docs.png (the README shows the latter; CI
 * leaves the tree clean).
 */
import { mkdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { chromium, type Browser, type Page } from 'playwright-core';
import { http, startTestServer, type TestServer } from './support/server.js';
import { backendToken, registerBackendClient } from './support/auth.js';

const CHROMIUM = '/usr/bin/chromium';
const OUTPUT = resolve('test-output');
const DOCS = resolve('docs');

let srv: TestServer;
let browser: Browser;
let token = '';
const pageLog: string[] = [];
const foreignRequests: string[] = [];

beforeAll(async () => {
  statSync(CHROMIUM); // installed by .ci/run (apt-get install chromium) when missing
  srv = await startTestServer();
  const client = await registerBackendClient(srv.running, 'system/*.rs');
  token = (await backendToken(srv.running, client, 'system/*.rs')).access_token;
  for (const family of ['Swaggerton', 'Other']) {
    expect((await http('POST', `${srv.base}/Patient`, { body: { resourceType: 'Patient', name: [{ family, given: ['Ada'] }] } })).status).toBe(201);
  }
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await srv?.close();
});

async function openDocs(): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('console', (m) => pageLog.push(`console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => pageLog.push(`pageerror: ${e.message}`));
  page.on('request', (r) => {
    if (new URL(r.url()).origin !== new URL(srv.url).origin && !r.url().startsWith('data:')) foreignRequests.push(r.url());
  });
  // Violations of the page's policy, as the browser reports them to the page.
  await page.addInitScript(`window.cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.cspViolations.push(e.violatedDirective + ': ' + (e.blockedURI || e.sample)));`);
  await page.goto(`${srv.url}/api-docs`);
  try {
    await page.waitForSelector('#operations-Patient-search-Patient', { timeout: 90_000 });
  } catch (err) {
    throw new Error(`the document did not render:\n${pageLog.join('\n')}`, { cause: err });
  }
  return page;
}

describe('/api-docs in Chromium', () => {
  it('renders the Patient part; without a token a request shows the 401 OperationOutcome, with a pasted bearer token GET /Patient shows a 200 Bundle', async () => {
    const page = await openDocs();
    const read = page.locator('#operations-Patient-read-Patient');
    await read.locator('.opblock-summary').click();
    await read.locator('.try-out__btn').click();
    await read.locator('tr[data-param-name="id"] input').fill('nobody');
    await read.locator('button.execute').click();
    const refused = read.locator('.live-responses-table .response .response-col_status');
    await refused.first().waitFor({ timeout: 60_000 });
    expect((await refused.first().textContent())?.trim()).toBe('401');
    expect(await read.locator('.live-responses-table .response .response-col_description').first().textContent()).toMatch(/"resourceType":\s*"OperationOutcome"/);
    await read.locator('.opblock-summary').click(); // closed again

    // The top bar lists one definition per resource type; Patient is the first shown.
    const options = await page.locator('.topbar select option').allTextContents();
    expect(options).toEqual(expect.arrayContaining(['System', 'Patient', 'Observation', 'Appointment']));
    expect(options.length).toBeGreaterThan(140);

    // Authorize: the oauth2 (SMART) scheme and the bearer scheme are both offered; paste the token into the latter.
    await page.click('.btn.authorize');
    const bearer = page.locator('.auth-container').filter({ has: page.locator('h4', { hasText: /^bearer\b/ }) });
    await expect(page.locator('.auth-container h4', { hasText: /^smart\b/ }).count()).resolves.toBeGreaterThan(0);
    await bearer.locator('input').fill(token);
    await bearer.locator('button.authorize').click();
    await bearer.locator('button', { hasText: 'Logout' }).waitFor();
    await page.click('.close-modal');

    // Open GET /Patient, try it out with family=Swaggerton, execute.
    const operation = page.locator('#operations-Patient-search-Patient');
    await operation.locator('.opblock-summary').click();
    await operation.locator('.try-out__btn').click();
    await operation.locator('tr[data-param-name="family"] input').fill('Swaggerton');
    await operation.locator('button.execute').click();
    const status = operation.locator('.live-responses-table .response .response-col_status');
    await status.first().waitFor({ timeout: 60_000 });
    expect((await status.first().textContent())?.trim()).toBe('200');
    const body = await operation.locator('.live-responses-table .response .response-col_description').first().textContent();
    expect(body).toMatch(/"resourceType":\s*"Bundle"/);
    expect(body).toMatch(/"type":\s*"searchset"/);
    expect(body).toContain('Swaggerton');
    expect(body).not.toContain('Other'); // the typed parameter was sent
    // The request went to the FHIR base of the document with the pasted token.
    const curl = await operation.locator('.curl-command').textContent();
    expect(curl).toContain(`${srv.base}/Patient?family=Swaggerton`);
    expect(curl).toContain(`Authorization: Bearer ${token}`);

    // The shot shows the request sent and the Bundle received.
    await operation.locator('.request-url').first().evaluate((e) => e.scrollIntoView({ block: 'start' }));
    mkdirSync(OUTPUT, { recursive: true });
    mkdirSync(DOCS, { recursive: true });
    for (const shot of [join(OUTPUT, 'api-docs.png'), ...(process.env.UPDATE_DOCS === '1' ? [join(DOCS, 'api-docs.png')] : [])]) {
      await page.screenshot({ path: shot });
      expect(statSync(shot).size).toBeGreaterThan(10_000);
    }
    console.log(`api-docs screenshot: ${join(OUTPUT, 'api-docs.png')}`);

    expect(await page.evaluate('window.cspViolations')).toEqual([]);
    expect(foreignRequests).toEqual([]);
    expect(pageLog.filter((l) => l.startsWith('pageerror') || /Content Security Policy/.test(l))).toEqual([]);
    await page.close();
  }, 180_000);

  it('Authorize with the SMART authorization-code flow (PKCE): sign-in and consent in the popup, then a read with that token', async () => {
    const password = 'Blue-Harbor-72!';
    const alice = (await http('POST', `${srv.url}/auth/register`, { token: false, headers: { 'content-type': 'application/json' }, body: { email: 'alice@example.org', password, givenName: 'Alice', familyName: 'Anders' } })).body;
    const client = await srv.running.auth.registerClient({
      kind: 'public', redirect_uris: [`${srv.url}/api-docs/oauth2-redirect.html`], allowed_scopes: 'openid fhirUser launch/patient patient/*.rs', client_name: 'API docs test',
    });
    const page = await openDocs();
    await page.click('.btn.authorize');
    const flow = page.locator('.auth-container').filter({ has: page.locator('h4', { hasText: 'authorizationCode' }) });
    await flow.locator('#client_id_authorizationCode').fill(client.client_id as string);
    for (const scope of ['openid', 'fhirUser', 'launch/patient', 'patient/*.rs']) await flow.locator(`label[for="${scope}-authorizationCode-checkbox-smart"]`).click();
    const popupOpened = page.waitForEvent('popup');
    await flow.locator('button.authorize').click();
    const popup = await popupOpened;
    await popup.waitForSelector('input[name=email]', { timeout: 60_000 });
    expect(popup.url().startsWith(`${srv.running.auth.issuer}/`)).toBe(true);
    await popup.fill('input[name=email]', 'alice@example.org');
    await popup.fill('input[name=password]', password);
    await popup.click('button');
    await popup.waitForSelector('button[value=allow]');
    await popup.click('button[value=allow]');
    // The redirect page hands the code back to the viewer, which redeems it at the token endpoint.
    try {
      await flow.locator('button', { hasText: 'Logout' }).waitFor({ timeout: 60_000 });
    } catch (err) {
      throw new Error(`no token from the authorization-code flow:\n${pageLog.join('\n')}`, { cause: err });
    }
    await page.click('.close-modal');

    const operation = page.locator('#operations-Patient-read-Patient');
    await operation.locator('.opblock-summary').click();
    await operation.locator('.try-out__btn').click();
    await operation.locator('tr[data-param-name="id"] input').fill(alice.fhirUser.split('/')[1]);
    await operation.locator('button.execute').click();
    const status = operation.locator('.live-responses-table .response .response-col_status');
    await status.first().waitFor({ timeout: 60_000 });
    expect((await status.first().textContent())?.trim()).toBe('200');
    expect(await operation.locator('.live-responses-table .response .response-col_description').first().textContent()).toContain('Anders');
    const curl = (await operation.locator('.curl-command').textContent()) ?? '';
    expect(curl).toMatch(/Authorization: Bearer \S+/);
    expect(curl).not.toContain(token); // the user's token, not the pasted system one
    expect(await page.evaluate('window.cspViolations')).toEqual([]);
    await page.close();
  }, 180_000);
});
