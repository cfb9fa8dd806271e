/**
 * $analytics through HTTP against FerretDB and Redis: every figure (system-wide, per Organization, in the
 * Organization's zone and another, a period across Europe's DST change, the empty period) equals a
 * brute-force recomputation from the seeded resources read back through search; the cache answers the same
 * again and forgets when an Appointment, Invoice or PaymentReconciliation in scope changes; who may ask what
 * (403/404); bad periods (400). The figure checks run with the SQL path on FerretDB's PostgreSQL and with
 * the driver's pipelines.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { http, startTestServer, type TestServer } from './support/server.js';
import { userToken } from './support/browser.js';
import { bruteForce, seed, transaction, type Seeded } from './support/analytics-seed.js';
import { toParameters } from '../src/analytics/parameters.js';
import { analyticsPasses } from '../src/infra/metrics.js';

const PASSWORD = 'Blue-Harbor-72!';
let srv: TestServer;
let data: Seeded;
let adminA = '';
let practitionerToken = '';

beforeAll(async () => {
  srv = await startTestServer({ JOBS_ENABLED: 'false' });
  data = await seed(srv.base);
  await srv.running.accounts.createAccount({ kind: 'hospital-admin', email: 'admin-a@alpha.example', password: PASSWORD, organization: `Organization/${data.orgA}` });
  adminA = (await userToken(srv.running, 'admin-a@alpha.example', PASSWORD, 'openid fhirUser user/*.rs')).access_token;
  await srv.running.accounts.createAccount({ kind: 'practitioner', email: 'doc@alpha.example', password: PASSWORD, person: { givenName: 'Doc', familyName: 'Alpha' } });
  practitionerToken = (await userToken(srv.running, 'doc@alpha.example', PASSWORD, 'openid fhirUser user/*.rs')).access_token;
}, 60_000);

afterAll(async () => {
  await srv?.close();
});

const analytics = (path: string, query: Record<string, string>, token?: string, base = srv.base) =>
  http('GET', `${base}/${path}$analytics?${new URLSearchParams(query)}`, token ? { token } : {});

async function passCounts(): Promise<Record<string, number>> {
  const m = await analyticsPasses.get();
  return Object.fromEntries(['sql', 'driver'].map((e) => [e, m.values.find((v) => v.labels.engine === e)?.value ?? 0]));
}

/**
 * The figure checks run once per engine, each on a server of its own over the seeded database (cache off, so
 * every answer is computed): SQL on FerretDB's PostgreSQL (FERRETDB_SQL_ANALYTICS=true) and the driver's
 * pipelines (false). Each check also asserts which engine ran every pass.
 */
const ENGINES: { name: string; native: boolean; env: Record<string, string>; skip?: string }[] = [
  { name: "SQL on FerretDB's PostgreSQL", native: true, env: { FERRETDB_SQL_ANALYTICS: 'true' }, ...(process.env.FERRETDB_POSTGRES_URL ? {} : { skip: 'FERRETDB_POSTGRES_URL is unset (FerretDB on PostgreSQL only)' }) },
  { name: 'aggregation pipelines through the driver', native: false, env: { FERRETDB_SQL_ANALYTICS: 'false' } },
];

for (const engine of ENGINES) {
  const title = `$analytics figures against a brute-force recomputation, ${engine.name}${engine.skip ? ` (skipped: ${engine.skip})` : ''}`;
  (engine.skip ? describe.skip : describe)(title, () => {
    let own: TestServer;
    beforeAll(async () => {
      own = await startTestServer({ JOBS_ENABLED: 'false', ANALYTICS_CACHE_SECONDS: '0', ...engine.env }, { dbName: srv.running.mongo.db.databaseName, keepDb: true, single: true });
    }, 60_000);
    afterAll(async () => {
      await own?.close();
    });

    async function expectFigures(path: string, org: string | undefined, start: string, end: string, zone: string, timezone?: string) {
      const before = await passCounts();
      const res = await analytics(path, { start, end, ...(timezone ? { timezone } : {}) }, undefined, own.base);
      expect(res.status).toBe(200);
      expect(res.body.resourceType).toBe('Parameters');
      const after = await passCounts();
      // 13 passes per figure set, every one run by the engine under test.
      expect({ sql: after.sql - before.sql, driver: after.driver - before.driver }).toEqual(engine.native ? { sql: 13, driver: 0 } : { sql: 0, driver: 13 });
      const expected = toParameters(await bruteForce(srv.base, org, start, end, zone));
      expect(res.body).toEqual(expected);
      return res;
    }

    it('system-wide (UTC) over the whole seeded range, with every section non-trivial', async () => {
      const res = await expectFigures('', undefined, '2027-03-20', '2027-04-05', 'UTC');
      const overview = res.body.parameter.find((p: any) => p.name === 'overview');
      const value = (name: string) => overview.part.find((p: any) => p.name === name);
      expect(value('appointments').valueInteger).toBeGreaterThan(30);
      expect(value('revenue').valueMoney.value).toBeGreaterThan(100);
      expect(value('activeOrganizations').valueInteger).toBe(2);
      expect(value('verifiedPractitioners').valueInteger).toBe(3);
      const text = JSON.stringify(res.body);
      for (const needle of ['averageConsultationMinutes', 'byPaymentMethod', 'slotUtilisation', 'ratings', 'Cardiology', 'sepa_debit']) expect(text).toContain(needle);
    });

    it("Organization A in its zone (Europe/Berlin) across the DST change of 28 March 2027", async () => {
      const res = await expectFigures(`Organization/${data.orgA}/`, data.orgA, '2027-03-26', '2027-03-30', 'Europe/Berlin');
      const daily = res.body.parameter.find((p: any) => p.name === 'appointments').part.find((p: any) => p.name === 'daily');
      expect(daily.part.map((p: any) => p.name)).toEqual(['2027-03-26', '2027-03-27', '2027-03-28', '2027-03-29', '2027-03-30']);
    });

    it('Organization B in its own zone, and in an explicit other zone; system-wide in Berlin time', async () => {
      await expectFigures(`Organization/${data.orgB}/`, data.orgB, '2027-03-20', '2027-04-05', 'America/New_York');
      await expectFigures(`Organization/${data.orgB}/`, data.orgB, '2027-03-22', '2027-03-31', 'Asia/Kolkata', 'Asia/Kolkata');
      await expectFigures('', undefined, '2027-03-27', '2027-03-29', 'Europe/Berlin', 'Europe/Berlin');
    });

    it('the empty period: zero-filled days and hours, zero totals, no averages', async () => {
      const res = await expectFigures('', undefined, '2031-01-01', '2031-01-07', 'UTC');
      const appointments = res.body.parameter.find((p: any) => p.name === 'appointments');
      expect(appointments.part.find((p: any) => p.name === 'total').valueInteger).toBe(0);
      expect(appointments.part.find((p: any) => p.name === 'daily').part).toHaveLength(7);
      expect(appointments.part.find((p: any) => p.name === 'peakHours').part).toHaveLength(24);
      await expectFigures(`Organization/${data.orgA}/`, data.orgA, '2031-01-01', '2031-01-01', 'Europe/Berlin');
    });
  });
}

describe('cache', () => {
  it('answers again from the cache, and forgets when an Appointment, Invoice or PaymentReconciliation in scope changes (not one elsewhere)', async () => {
    const q = { start: '2027-03-20', end: '2027-04-05' };
    const pathA = `Organization/${data.orgA}/`;
    const first = await analytics(pathA, q);
    const again = await analytics(pathA, q);
    expect(again.headers.get('x-analytics-cache')).toBe('hit');
    expect(again.body).toEqual(first.body);

    // An appointment at Organization B: A's figures stay cached, the system's do not.
    await analytics('', q);
    await transaction(srv.base, [{ fullUrl: 'urn:uuid:x1', resource: { resourceType: 'Appointment', status: 'booked', start: '2027-03-25T10:00:00Z', end: '2027-03-25T10:30:00Z', participant: [{ actor: { reference: data.patients[0] }, status: 'accepted' }, { actor: { reference: data.roles[2] }, status: 'accepted' }] } }]);
    expect((await analytics(pathA, q)).headers.get('x-analytics-cache')).toBe('hit');
    expect((await analytics('', q)).headers.get('x-analytics-cache')).toBe('miss');

    // An appointment at A: recomputed, and the new figure is there.
    await transaction(srv.base, [{ fullUrl: 'urn:uuid:x2', resource: { resourceType: 'Appointment', status: 'booked', start: '2027-03-25T11:00:00Z', end: '2027-03-25T11:30:00Z', participant: [{ actor: { reference: data.patients[1] }, status: 'accepted' }, { actor: { reference: data.roles[0] }, status: 'accepted' }] } }]);
    const after = await analytics(pathA, q);
    expect(after.headers.get('x-analytics-cache')).toBe('miss');
    expect(after.body).toEqual(toParameters(await bruteForce(srv.base, data.orgA, q.start, q.end, 'Europe/Berlin')));
    expect(after.body).not.toEqual(first.body);

    // An Invoice and its payment at A: each invalidates.
    expect((await analytics(pathA, q)).headers.get('x-analytics-cache')).toBe('hit');
    const ids = await transaction(srv.base, [{ fullUrl: 'urn:uuid:i1', resource: { resourceType: 'Invoice', status: 'issued', issuer: { reference: `Organization/${data.orgA}` }, date: '2027-03-25T12:00:00Z' } }]);
    expect((await analytics(pathA, q)).headers.get('x-analytics-cache')).toBe('miss');
    const invoice = ids.get('urn:uuid:i1')!;
    await transaction(srv.base, [{ fullUrl: 'urn:uuid:p1', resource: { resourceType: 'PaymentReconciliation', status: 'active', outcome: 'complete', created: '2027-03-25T12:05:00Z', paymentDate: '2027-03-25', paymentAmount: { value: 12.34, currency: 'EUR' }, detail: [{ type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/payment-type', code: 'payment' }] }, request: { reference: invoice } }] } }]);
    const paid = await analytics(pathA, q);
    expect(paid.headers.get('x-analytics-cache')).toBe('miss');
    const overview = (b: any) => b.parameter.find((p: any) => p.name === 'overview').part.find((p: any) => p.name === 'revenue').valueMoney.value;
    expect(Math.round((overview(paid.body) - overview(after.body)) * 100)).toBe(1234);
  });
});

describe('who may ask, and bad input', () => {
  it("a hospital administrator sees their Organization's figures; another Organization's or the system's are 403; a practitioner's are 403", async () => {
    expect((await analytics(`Organization/${data.orgA}/`, { start: '2027-03-20', end: '2027-03-21' }, adminA)).status).toBe(200);
    const other = await analytics(`Organization/${data.orgB}/`, { start: '2027-03-20', end: '2027-03-21' }, adminA);
    expect(other.status).toBe(403);
    expect(other.body.resourceType).toBe('OperationOutcome');
    expect((await analytics('', { start: '2027-03-20', end: '2027-03-21' }, adminA)).status).toBe(403);
    expect((await analytics(`Organization/${data.orgA}/`, { start: '2027-03-20', end: '2027-03-21' }, practitionerToken)).status).toBe(403);
    expect((await http('GET', `${srv.base}/$analytics?start=2027-03-20&end=2027-03-21`, { token: false })).status).toBe(401);
  });

  it('an unknown Organization is 404; dates that do not parse, an end before the start, a period over the maximum, an unknown zone are 400', async () => {
    const unknown = await analytics('Organization/nope/', { start: '2027-03-20', end: '2027-03-21' });
    expect(unknown.status).toBe(404);
    expect(unknown.body.resourceType).toBe('OperationOutcome');
    for (const q of [{ start: '2027-3-20', end: '2027-03-21' }, { start: '2027-02-30', end: '2027-03-21' }, { end: '2027-03-21' }, { start: '2027-03-22', end: '2027-03-21' }, { start: '2020-01-01', end: '2027-03-21' }, { start: '2027-03-20', end: '2027-03-21', timezone: 'Mars/Olympus' }]) {
      const res = await analytics('', q as Record<string, string>);
      expect([res.status, res.body.resourceType]).toEqual([400, 'OperationOutcome']);
      expect(JSON.stringify(res.body.issue[0])).toMatch(/start|end|timezone|period/);
    }
  });
});

describe('projection rebuilt from stored data', () => {
  it('a database whose projection is missing (data from before analytics) is projected at the first start', async () => {
    const dbName = `t_rebuild_${Date.now()}`;
    const first = await startTestServer({ JOBS_ENABLED: 'false' }, { keepDb: true, dbName, single: true });
    let second: TestServer | undefined;
    try {
      const seeded = await seed(first.base, 3);
      await first.close();
      const { MongoClient } = await import('mongodb');
      const client = await MongoClient.connect(process.env.MONGODB_URI!);
      for (const c of ['analytics_facts', 'analytics_changes', 'analytics_state']) await client.db(dbName).collection(c).drop().catch(() => undefined);
      await client.close();
      second = await startTestServer({ JOBS_ENABLED: 'false' }, { dbName, single: true });
      const res = await http('GET', `${second.base}/Organization/${seeded.orgA}/$analytics?start=2027-03-20&end=2027-04-05`);
      expect(res.status).toBe(200);
      expect(res.body).toEqual(toParameters(await bruteForce(second.base, seeded.orgA, '2027-03-20', '2027-04-05', 'Europe/Berlin')));
      expect(res.body.parameter.find((p: any) => p.name === 'overview').part.find((p: any) => p.name === 'appointments').valueInteger).toBeGreaterThan(5);
    } finally {
      await second?.close();
    }
  }, 60_000);
});
