/**
 * $analytics-report: CSV, XLSX and PDF reports as background jobs on the job runner, their progress on the
 * status URL (X-Progress), the Binary + DocumentReference they are stored as, who may download them, bad
 * input refused before any job starts, and a report started by a process that stopped finished by the next.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import ExcelJS from 'exceljs';
import { http, startTestServer, type TestServer } from './support/server.js';
import { userToken } from './support/browser.js';
import { seed, type Seeded } from './support/analytics-seed.js';

const PASSWORD = 'Blue-Harbor-72!';
const PERIOD = { start: '2027-03-24', end: '2027-04-02' };
let srv: TestServer;
let data: Seeded;
const tokens: Record<string, string> = {};

beforeAll(async () => {
  srv = await startTestServer({ JOBS_POLL_MS: '200' });
  data = await seed(srv.base, 11);
  const accounts = srv.running.accounts;
  await accounts.createAccount({ kind: 'hospital-admin', email: 'a@alpha.example', password: PASSWORD, organization: `Organization/${data.orgA}` });
  await accounts.createAccount({ kind: 'hospital-admin', email: 'b@beta.example', password: PASSWORD, organization: `Organization/${data.orgB}` });
  tokens.a = (await userToken(srv.running, 'a@alpha.example', PASSWORD, 'openid fhirUser user/*.rs')).access_token;
  tokens.b = (await userToken(srv.running, 'b@beta.example', PASSWORD, 'openid fhirUser user/*.rs')).access_token;
}, 60_000);

afterAll(async () => {
  await srv?.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function kickOff(s: TestServer, path: string, query: Record<string, string>, token?: string) {
  return http('POST', `${s.base}/${path}$analytics-report?${new URLSearchParams(query)}`, token ? { token } : {});
}

/** Polls the status URL until 200; returns the progress values seen and the DocumentReference. */
async function waitDone(statusUrl: string, token?: string): Promise<{ progress: string[]; doc: any }> {
  const progress: string[] = [];
  for (let i = 0; i < 300; i++) {
    const res = await http('GET', statusUrl, token ? { token } : {});
    if (res.headers.get('x-progress')) progress.push(res.headers.get('x-progress')!);
    if (res.status === 200) return { progress, doc: res.body };
    expect(res.status).toBe(202);
    await sleep(100);
  }
  throw new Error(`report not done: ${progress.join(', ')}`);
}

async function download(statusUrl: string, token?: string): Promise<{ bytes: Buffer; contentType: string; disposition: string | null }> {
  const res = await http('GET', `${statusUrl}&download=true`, token ? { token } : {});
  expect(res.status).toBe(200);
  expect(res.body.resourceType).toBe('Binary');
  return { bytes: Buffer.from(res.body.data, 'base64'), contentType: res.body.contentType, disposition: res.headers.get('content-disposition') };
}

function part(params: any, ...path: string[]): any {
  let cur = params;
  for (const name of path) cur = (cur.parameter ?? cur.part).find((p: any) => p.name === name);
  return cur;
}

describe('$analytics-report', () => {
  let figures: any;
  beforeAll(async () => {
    figures = (await http('GET', `${srv.base}/Organization/${data.orgA}/$analytics?${new URLSearchParams(PERIOD)}`, { token: tokens.a })).body;
  });
  const daily = () => part(figures, 'appointments', 'daily').part.map((p: any) => [p.name, p.valueInteger]);

  it('CSV: started as a job (202, Content-Location, X-Progress), stored as Binary + DocumentReference, every figure as in $analytics', async () => {
    const res = await kickOff(srv, `Organization/${data.orgA}/`, { ...PERIOD, format: 'csv' }, tokens.a);
    expect(res.status).toBe(202);
    expect(res.headers.get('x-progress')).toBe('0% queued');
    const status = res.headers.get('content-location')!;
    expect(status).toMatch(/\/fhir\/\$analytics-report-status\?id=/);
    const { progress, doc } = await waitDone(status, tokens.a);
    expect(progress.at(-1)).toBe('100% done');
    expect(doc.resourceType).toBe('DocumentReference');
    expect(doc.custodian.reference).toBe(`Organization/${data.orgA}`);
    expect(doc.content[0].attachment).toMatchObject({ contentType: 'text/csv', url: expect.stringMatching(/^Binary\//) });
    const file = await download(status, tokens.a);
    expect(file.contentType).toBe('text/csv');
    expect(file.disposition).toMatch(/attachment; filename=".+\.csv"/);
    const rows = new Map(file.bytes.toString('utf8').trim().split('\r\n').slice(1).map((l) => { const [k, v, u] = l.split(','); return [k, { v, u }]; }));
    expect(rows.get('revenue.total')).toEqual({ v: String(part(figures, 'revenue', 'total').valueMoney.value), u: 'EUR' });
    expect(rows.get('appointments.total')!.v).toBe(String(part(figures, 'appointments', 'total').valueInteger));
    for (const [day, n] of daily()) expect(rows.get(`appointments.daily.${day}`)!.v).toBe(String(n));
    // The stored Binary is the same file, readable directly by the Organization's administrator.
    const binary = await http('GET', `${srv.base}/${doc.content[0].attachment.url}`, { token: tokens.a });
    expect(binary.status).toBe(200);
    expect(Buffer.from(binary.body.data, 'base64').equals(file.bytes)).toBe(true);
  });

  it('XLSX: a Daily sheet and one sheet per section, read back with exceljs', async () => {
    const res = await kickOff(srv, `Organization/${data.orgA}/`, { ...PERIOD, format: 'xlsx' }, tokens.a);
    const status = res.headers.get('content-location')!;
    await waitDone(status, tokens.a);
    const file = await download(status, tokens.a);
    expect(file.contentType).toBe('application/vnd.openxmlformats-officedocument.spreadsheetml.sheet');
    const wb = new ExcelJS.Workbook();
    await wb.xlsx.load(file.bytes as any);
    expect(wb.worksheets.map((w) => w.name)).toEqual(['Daily', 'Period', 'Overview', 'Appointments', 'Revenue', 'Practitioners']);
    const sheet = wb.getWorksheet('Daily')!;
    const got: [string, number][] = [];
    sheet.eachRow((row, i) => {
      if (i > 1) got.push([String(row.getCell(1).value), Number(row.getCell(2).value)]);
    });
    expect(got).toEqual(daily());
    const revenueDaily = part(figures, 'revenue', 'daily').part.map((p: any) => p.valueMoney.value);
    expect(got.map((_g, i) => Number(sheet.getRow(i + 2).getCell(3).value))).toEqual(revenueDaily);
  });

  it('PDF: a PDF whose charts are vector shapes (one bar per day and status)', async () => {
    const res = await kickOff(srv, '', { ...PERIOD, format: 'pdf' });
    const status = res.headers.get('content-location')!;
    const { doc } = await waitDone(status);
    expect(doc.custodian).toBeUndefined();
    const file = await download(status);
    expect(file.contentType).toBe('application/pdf');
    const text = file.bytes.toString('latin1');
    expect(text.startsWith('%PDF-')).toBe(true);
    expect(text.trimEnd().endsWith('%%EOF')).toBe(true);
    const rects = (text.match(/ re\n/g) ?? []).length;
    expect(rects).toBeGreaterThanOrEqual(10 + 3);
    expect((text.match(/ l\n/g) ?? []).length).toBeGreaterThanOrEqual(9); // the revenue line
  });

  it("another Organization's administrator gets 403 on the status and 404 on the Binary and DocumentReference; a token without a Binary scope cannot download", async () => {
    const res = await kickOff(srv, `Organization/${data.orgA}/`, { ...PERIOD, format: 'csv' }, tokens.a);
    const status = res.headers.get('content-location')!;
    const { doc } = await waitDone(status, tokens.a);
    expect((await http('GET', status, { token: tokens.b })).status).toBe(403);
    expect((await http('GET', `${status}&download=true`, { token: tokens.b })).status).toBe(403);
    expect((await http('GET', `${srv.base}/${doc.content[0].attachment.url}`, { token: tokens.b })).status).toBe(404);
    expect((await http('GET', `${srv.base}/DocumentReference/${doc.id}`, { token: tokens.b })).status).toBe(404);
    const binaryId = doc.content[0].attachment.url.split('/')[1];
    const search = (token: string) => http('GET', `${srv.base}/Binary?_id=${binaryId}`, { token });
    expect((await search(tokens.a)).body.entry?.map((e: any) => e.resource.id)).toEqual([binaryId]);
    expect((await search(tokens.b)).body.entry ?? []).toEqual([]);
    // A token whose scopes do not read Binary cannot download, even for its own Organization.
    const narrow = (await userToken(srv.running, 'a@alpha.example', PASSWORD, 'openid fhirUser user/Organization.rs')).access_token;
    expect((await http('GET', `${status}&download=true`, { token: narrow })).status).toBe(403);
  });

  it('bad input: an unknown format, a bad period, an unknown or another Organization: an OperationOutcome and no job', async () => {
    const reports = srv.running.mongo.db.collection('analytics_reports');
    const before = await reports.countDocuments();
    const cases: [string, Record<string, string>, number, string?][] = [
      [`Organization/${data.orgA}/`, { ...PERIOD, format: 'docx' }, 400, tokens.a],
      [`Organization/${data.orgA}/`, { ...PERIOD }, 400, tokens.a],
      [`Organization/${data.orgA}/`, { start: '2027-04-02', end: '2027-03-01', format: 'csv' }, 400, tokens.a],
      [`Organization/${data.orgA}/`, { start: 'yesterday', end: '2027-03-01', format: 'csv' }, 400, tokens.a],
      [`Organization/${data.orgB}/`, { ...PERIOD, format: 'csv' }, 403, tokens.a],
      ['', { ...PERIOD, format: 'csv' }, 403, tokens.a],
      ['Organization/unknown/', { ...PERIOD, format: 'csv' }, 404],
    ];
    for (const [path, q, expected, token] of cases) {
      const res = await kickOff(srv, path, q, token);
      expect([path, q, res.status, res.body?.resourceType]).toEqual([path, q, expected, 'OperationOutcome']);
    }
    expect(await reports.countDocuments()).toBe(before);
    expect((await http('GET', `${srv.base}/$analytics-report-status?id=nope`)).status).toBe(404);
  });

  it('a report started by a process that stopped before running it is finished by the next process on the database', async () => {
    const dbName = `t_resume_${Date.now()}`;
    const first = await startTestServer({ JOBS_ENABLED: 'false' }, { keepDb: true, dbName, single: true });
    let second: TestServer | undefined;
    try {
      await seed(first.base, 3);
      const res = await kickOff(first, '', { ...PERIOD, format: 'csv' });
      expect(res.status).toBe(202);
      const id = new URL(res.headers.get('content-location')!).searchParams.get('id');
      await sleep(500);
      const waiting = await http('GET', `${first.base}/$analytics-report-status?id=${id}`);
      expect([waiting.status, waiting.headers.get('x-progress')]).toEqual([202, '0% queued']);
      await first.close();
      second = await startTestServer({ JOBS_POLL_MS: '200' }, { dbName, single: true });
      const { doc } = await waitDone(`${second.base}/$analytics-report-status?id=${id}`);
      expect(doc.resourceType).toBe('DocumentReference');
      const file = await download(`${second.base}/$analytics-report-status?id=${id}`);
      expect(file.bytes.toString('utf8')).toContain('overview.appointments,');
    } finally {
      await second?.close();
    }
  }, 60_000);
});
