/**
 * /admin in headless Chromium (Debian's chromium, playwright-core): a system administrator signs in through
 * the product's own SMART sign-in and consent pages, sees the charts drawn with the seeded figures (the data
 * of every chart equals $analytics for the same scope and period), switches the period and the
 * Organization, and downloads each report (CSV, XLSX, PDF). A hospital administrator sees only their
 * Organization. Nothing is fetched from another origin. Screenshots: test-output/admin-dashboard*.png
 * (with UPDATE_DOCS=1 also docs/admin-dashboard.png).
 */
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { chromium, type Browser, type Page } from 'playwright-core';
import { http, startTestServer, type TestServer } from './support/server.js';
import { seed, type Seeded } from './support/analytics-seed.js';

const CHROMIUM = '/usr/bin/chromium';
const OUTPUT = resolve('test-output');
const PASSWORD = 'Blue-Harbor-72!';
let srv: TestServer;
let browser: Browser;
let data: Seeded;
const pageLog: string[] = [];
const foreign: string[] = [];

beforeAll(async () => {
  statSync(CHROMIUM);
  srv = await startTestServer({ JOBS_POLL_MS: '200' });
  data = await seed(srv.base, 5);
  await srv.running.accounts.createAccount({ kind: 'system-admin', email: 'root@medivoy.example', password: PASSWORD });
  await srv.running.accounts.createAccount({ kind: 'hospital-admin', email: 'beta@beta.example', password: PASSWORD, organization: `Organization/${data.orgB}` });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] });
  mkdirSync(OUTPUT, { recursive: true });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await srv?.close();
});

async function signIn(email: string): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1100 }, acceptDownloads: true });
  const page = await context.newPage();
  page.on('console', (m) => pageLog.push(`console.${m.type()}: ${m.text()} ${m.location().url}`));
  page.on('response', (r) => {
    if (r.status() >= 400) pageLog.push(`${r.status()} ${r.url()}`);
  });
  page.on('pageerror', (e) => pageLog.push(`pageerror: ${e.message}`));
  page.on('request', (r) => {
    if (new URL(r.url()).origin !== new URL(srv.url).origin && !/^(data|blob):/.test(r.url())) foreign.push(r.url());
  });
  await page.addInitScript(`window.cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.cspViolations.push(e.violatedDirective + ': ' + (e.blockedURI || e.sample)));`);
  await page.goto(`${srv.url}/admin/`);
  await page.click('#sign-in');
  await page.waitForSelector('input[name=email]', { timeout: 30_000 });
  expect(page.url().startsWith(`${srv.running.auth.issuer}/`)).toBe(true);
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', PASSWORD);
  await page.click('button');
  await page.waitForSelector('button[value=allow]', { timeout: 30_000 });
  await page.click('button[value=allow]');
  try {
    await page.waitForFunction(() => ((globalThis as any).dashboardState?.loaded ?? 0) >= 1, undefined, { timeout: 30_000 });
  } catch (err) {
    throw new Error(`the dashboard did not load:\n${pageLog.join('\n')}`, { cause: err });
  }
  expect(new URL(page.url()).pathname).toBe('/admin/');
  return page;
}

/** Sets the period in the form and waits for the charts of the new figures. */
async function showPeriod(page: Page, start: string, end: string): Promise<void> {
  const before: number = await page.evaluate(() => (globalThis as any).dashboardState.loaded);
  await page.fill('#start', start);
  await page.fill('#end', end);
  await page.click('#apply');
  await page.waitForFunction((b) => (globalThis as any).dashboardState.loaded > b, before, { timeout: 30_000 });
}

/** The charts' data must be the figures $analytics answers for the same scope and period. */
async function expectChartsMatch(page: Page, org: string, start: string, end: string): Promise<void> {
  const res = await http('GET', `${srv.base}/${org ? `${org}/` : ''}$analytics?start=${start}&end=${end}`);
  expect(res.status).toBe(200);
  const section = (name: string) => res.body.parameter.find((p: any) => p.name === name).part;
  const sub = (s: string, name: string) => section(s).find((p: any) => p.name === name);
  const state: any = await page.evaluate(() => (globalThis as any).dashboardState);
  expect(state.organization).toBe(org);
  expect(state.period.start).toBe(start);
  const daily = sub('appointments', 'daily').part;
  expect(state.charts['chart-daily']).toEqual({ labels: daily.map((p: any) => p.name), data: daily.map((p: any) => p.valueInteger) });
  expect(state.charts['chart-revenue'].data).toEqual(sub('revenue', 'daily').part.map((p: any) => p.valueMoney.value));
  const status = sub('appointments', 'byStatus').part;
  expect(state.charts['chart-status']).toEqual({ labels: status.map((p: any) => p.name), data: status.map((p: any) => p.valueInteger) });
  const hours = sub('appointments', 'peakHours').part;
  expect(state.charts['chart-hours'].data).toEqual(hours.map((p: any) => p.valueInteger));
  const specialties = section('appointments').filter((p: any) => p.name === 'specialties');
  expect(state.charts['chart-specialties'].labels).toEqual(specialties.map((s: any) => s.part.find((x: any) => x.name === 'name').valueString));
  const total = sub('overview', 'appointments').valueInteger;
  expect(await page.locator('.kpi[data-kpi="Appointments"] .value').textContent()).toBe(String(total));
  // The canvases are drawn (not blank).
  const drawn = await page.evaluate(() => Array.from((globalThis as any).document.querySelectorAll('canvas') as any[]).map((c: any) => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
    return n;
  }));
  expect(drawn.every((n) => n > 50)).toBe(true);
}

describe('/admin dashboard in Chromium', () => {
  it('a system administrator signs in through the SMART pages, sees the seeded figures as charts, switches period and Organization, downloads each report', async () => {
    const page = await signIn('root@medivoy.example');
    expect(await page.locator('#organization option').allTextContents()).toEqual(['All organizations', 'Alpha Klinik', 'Beta Health', 'Gamma (closed)']);
    await showPeriod(page, '2027-03-20', '2027-04-05');
    await expectChartsMatch(page, '', '2027-03-20', '2027-04-05');
    await page.screenshot({ path: join(OUTPUT, 'admin-dashboard.png'), fullPage: true });
    if (process.env.UPDATE_DOCS === '1') await page.screenshot({ path: resolve('docs/admin-dashboard.png'), fullPage: true });

    // Another period, then one Organization (its own zone: across the DST change in Berlin).
    await showPeriod(page, '2027-03-26', '2027-03-30');
    await expectChartsMatch(page, '', '2027-03-26', '2027-03-30');
    const before: number = await page.evaluate(() => (globalThis as any).dashboardState.loaded);
    await page.selectOption('#organization', `Organization/${data.orgA}`);
    await page.waitForFunction((b) => (globalThis as any).dashboardState.loaded > b, before);
    await expectChartsMatch(page, `Organization/${data.orgA}`, '2027-03-26', '2027-03-30');
    expect(await page.evaluate(() => (globalThis as any).dashboardState.period)).toMatchObject({ timezone: 'Europe/Berlin' });

    // Each report: the button starts the job, the page follows its progress and saves the file.
    for (const [format, magic] of [['csv', 'figure,value,unit'], ['xlsx', 'PK'], ['pdf', '%PDF-']] as const) {
      const downloaded = page.waitForEvent('download', { timeout: 30_000 });
      await page.click(`.downloads button[data-format=${format}]`);
      const d = await downloaded;
      expect(d.suggestedFilename()).toBe(`analytics-${data.orgA}-2027-03-26-2027-03-30.${format}`);
      const path = join(OUTPUT, `admin-report.${format}`);
      await d.saveAs(path);
      expect(readFileSync(path).subarray(0, magic.length).toString('latin1')).toBe(magic);
      await page.waitForFunction((f) => (globalThis as any).document.getElementById('report-progress').textContent.includes(`${f.toUpperCase()}: downloaded`), format);
    }
    expect(await page.locator('#report-progress').textContent()).toContain('PDF: downloaded');
    await page.screenshot({ path: join(OUTPUT, 'admin-dashboard-organization.png'), fullPage: true });
    expect(statSync(join(OUTPUT, 'admin-dashboard.png')).size).toBeGreaterThan(20_000);
    expect(await page.evaluate(() => (globalThis as any).cspViolations)).toEqual([]);
    expect(foreign).toEqual([]);
    expect(pageLog.filter((l) => l.startsWith('pageerror'))).toEqual([]);
    await page.context().close();
  }, 120_000);

  it("a hospital administrator sees only their Organization's figures", async () => {
    const page = await signIn('beta@beta.example');
    expect(await page.locator('#organization option').allTextContents()).toEqual(['Beta Health']);
    expect(await page.locator('#organization').isDisabled()).toBe(true);
    await showPeriod(page, '2027-03-20', '2027-04-05');
    await expectChartsMatch(page, `Organization/${data.orgB}`, '2027-03-20', '2027-04-05');
    await page.context().close();
  }, 90_000);
});
