/**
 * Bulk Data $export (Bulk Data Access IG 2.0) as the Bulk Data Tester (smart-on-fhir/bdt) checks it: kick-off
 * validation and headers, status codes with Retry-After and X-Progress, the manifest, tokens on files, the
 * error file, cancellation, _since/_type/_typeFilter/_elements, patient- and group-level scoping and what a
 * token may see; and two server processes sharing an export, one restarted in the middle, with every
 * resource written exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { http, startInstancePair, startTestServer, type TestServer } from './support/server.js';
import { backendToken, registerBackendClient } from './support/auth.js';
import { userToken } from './support/browser.js';
import { observation, patient } from './support/factories.js';

const ASYNC = { accept: 'application/fhir+json', prefer: 'respond-async' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let s: TestServer;

type Manifest = { transactionTime: string; request: string; requiresAccessToken: boolean; output: { type: string; url: string; count: number }[]; error: { type: string; url: string; count?: number }[] };

async function kickOff(url: string, opts: { method?: string; body?: unknown; headers?: Record<string, string>; token?: string } = {}) {
  return http(opts.method ?? 'GET', url, { body: opts.body, headers: { ...ASYNC, ...opts.headers }, token: opts.token });
}

/** Polls a status URL until the manifest (200); fails on anything but 202/200. */
async function manifestOf(statusUrl: string, token?: string, via?: (u: string) => string): Promise<Manifest> {
  for (let i = 0; i < 600; i++) {
    const res = await http('GET', via ? via(statusUrl) : statusUrl, { token });
    if (res.status === 200) return res.body as Manifest;
    expect(res.status).toBe(202);
    await sleep(100);
  }
  throw new Error('export did not finish');
}

async function lines(url: string, token?: string, via?: (u: string) => string): Promise<any[]> {
  const res = await http('GET', via ? via(url) : url, { token });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^application\/fhir\+ndjson/);
  return res.text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

/** Every resource of an export, by type (checking counts and one type per file). */
async function exported(m: Manifest, token?: string, via?: (u: string) => string): Promise<Record<string, any[]>> {
  const out: Record<string, any[]> = {};
  for (const o of m.output) {
    expect(new URL(o.url).protocol).toMatch(/^http/);
    const rs = await lines(o.url, token, via);
    expect(rs.length).toBe(o.count);
    for (const r of rs) expect(r.resourceType).toBe(o.type);
    (out[o.type] ??= []).push(...rs);
  }
  return out;
}

async function runExport(url: string, opts: Parameters<typeof kickOff>[1] = {}): Promise<Manifest> {
  const res = await kickOff(url, opts);
  expect({ status: res.status, body: res.status === 202 ? undefined : res.body }).toEqual({ status: 202, body: undefined });
  return manifestOf(res.headers.get('content-location')!, opts.token);
}

const ids = (rs: any[] | undefined) => (rs ?? []).map((r) => r.id).sort();

const P = ['bx-p1', 'bx-p2', 'bx-p3', 'bx-p4', 'bx-p5'];
let seededAt: string;

beforeAll(async () => {
  s = await startTestServer({ JOBS_POLL_MS: '100', BULK_FILE_MAX_RESOURCES: '4', BULK_SLICE_MS: '2000', BULK_RETRY_AFTER_SECONDS: '1', BULK_MAX_ACTIVE_PER_CLIENT: '20' });
  const entry: any[] = [];
  const put = (r: any) => entry.push({ resource: r, request: { method: 'PUT', url: `${r.resourceType}/${r.id}` } });
  for (const p of P) {
    put(patient({ id: p }));
    for (let k = 1; k <= 3; k++) put(observation({ id: `${p}-o${k}`, subject: { reference: `Patient/${p}` } }));
    put({ resourceType: 'Condition', id: `${p}-c`, subject: { reference: `Patient/${p}` }, code: { text: 'x' } });
  }
  const mr = (id: string, p: string, status: string, authoredOn: string) =>
    put({ resourceType: 'MedicationRequest', id, status, intent: 'order', subject: { reference: `Patient/${p}` }, medicationCodeableConcept: { text: 'aspirin' }, authoredOn });
  mr('bx-mr1', 'bx-p1', 'active', '2016-01-01');
  mr('bx-mr2', 'bx-p2', 'completed', '2019-03-01');
  mr('bx-mr3', 'bx-p3', 'completed', '2017-03-01');
  mr('bx-mr4', 'bx-p4', 'stopped', '2019-03-01');
  put({ resourceType: 'Practitioner', id: 'bx-dr', name: [{ family: 'Doc' }] });
  put({ resourceType: 'Group', id: 'bx-g1', type: 'person', actual: true, member: [{ entity: { reference: 'Patient/bx-p1' } }, { entity: { reference: 'Patient/bx-p2' } }] });
  const res = await http('POST', s.base, { body: { resourceType: 'Bundle', type: 'batch', entry } });
  expect(res.body.entry.every((e: any) => /^2/.test(e.response.status))).toBe(true);
  await sleep(20);
  seededAt = new Date().toISOString();
  await sleep(20);
  // One change after seededAt: _since sees it alone.
  expect((await http('PUT', `${s.base}/Observation/bx-p1-o1`, { body: observation({ id: 'bx-p1-o1', status: 'amended', subject: { reference: 'Patient/bx-p1' } }) })).status).toBe(200);
}, 60_000);

afterAll(async () => {
  await s?.close();
});

describe('kick-off', () => {
  it('refuses requests without Prefer: respond-async or Accept, or with what it cannot produce, with an OperationOutcome', async () => {
    const no = async (headers: Record<string, string>, query = '', status = 400) => {
      const res = await http('GET', `${s.base}/$export${query}`, { headers });
      expect({ query, status: res.status, type: res.body?.resourceType }).toEqual({ query, status, type: 'OperationOutcome' });
      return (res.body.issue[0].diagnostics ?? res.body.issue[0].details?.text) as string;
    };
    expect(await no({ accept: 'application/fhir+json' })).toMatch(/respond-async/);
    expect(await no({ prefer: 'respond-async' })).toMatch(/Accept/);
    await no({ prefer: 'respond-async', accept: 'application/fhir+xml' }, '', 406);
    expect(await no(ASYNC, '?_outputFormat=text/csv')).toMatch(/_outputFormat/);
    expect(await no(ASYNC, '?_since=yesterday')).toMatch(/_since/);
    expect(await no(ASYNC, '?_type=Bogus')).toMatch(/Bogus/);
    expect(await no(ASYNC, '?includeAssociatedData=LatestProvenanceResources')).toMatch(/includeAssociatedData/);
    expect(await no(ASYNC, '?_typeFilter=Observation%3F_sort%3Ddate')).toMatch(/_sort/);
    expect(await no(ASYNC, '?_typeFilter=Observation%3Fnosuchparam%3D1')).toMatch(/nosuchparam/);
    expect(await no(ASYNC, '?patient=Patient/bx-p1', 400)).toMatch(/POST/);
    expect((await http('GET', `${s.base}/$export`, { headers: ASYNC, token: false })).status).toBe(401);
  });

  it('accepts the three NDJSON spellings: 202 with an absolute Content-Location', async () => {
    for (const f of ['application/fhir+ndjson', 'application/ndjson', 'ndjson']) {
      const res = await kickOff(`${s.base}/$export?_type=Practitioner&_outputFormat=${encodeURIComponent(f)}`);
      expect(res.status).toBe(202);
      const loc = res.headers.get('content-location')!;
      expect(new URL(loc).href).toBe(loc);
      const m = await manifestOf(loc);
      expect(m.output.map((o) => o.type)).toEqual(['Practitioner']);
    }
  });

  it('with Prefer: handling=lenient ignores what it does not support and says so in the error file', async () => {
    const m = await runExport(`${s.base}/$export?_type=Practitioner,Bogus&foo=bar`, { headers: { prefer: 'respond-async, handling=lenient' } });
    expect(m.output.map((o) => o.type)).toEqual(['Practitioner']);
    expect(m.error).toHaveLength(1);
    const outcomes = await lines(m.error[0]!.url);
    expect(outcomes.map((o) => o.resourceType)).toEqual(['OperationOutcome', 'OperationOutcome']);
    expect(outcomes.map((o) => o.issue[0].diagnostics ?? o.issue[0].details?.text).join(' ')).toMatch(/Bogus.*foo|foo.*Bogus/);
  });
});

describe('system export', () => {
  let m: Manifest;
  let all: Record<string, any[]>;
  const kickedAt = new Date();
  beforeAll(async () => {
    m = await runExport(`${s.base}/$export`);
    all = await exported(m);
  });

  it('answers with a manifest: transactionTime, request, requiresAccessToken, output per type split at the configured size, error', () => {
    expect(Date.parse(m.transactionTime)).toBeGreaterThanOrEqual(kickedAt.getTime() - 1000);
    expect(m.request).toBe(`${s.base}/$export`);
    expect(m.requiresAccessToken).toBe(true);
    expect(m.error).toEqual([]);
    expect(ids(all.Patient)).toEqual(P);
    expect(all.Observation).toHaveLength(15);
    expect(new Set(all.Observation!.map((o) => o.id)).size).toBe(15);
    // 15 Observations at most 4 per file: 4 parts.
    expect(m.output.filter((o) => o.type === 'Observation').map((o) => o.count)).toEqual([4, 4, 4, 3]);
    expect(ids(all.Practitioner)).toEqual(['bx-dr']);
    expect(ids(all.Group)).toEqual(['bx-g1']);
    expect(all.Observation!.find((o) => o.id === 'bx-p1-o1').status).toBe('amended'); // the latest version only
  });

  it('serves files only with a token of the same client: 401 without, 403 with another client\'s', async () => {
    const url = m.output[0]!.url;
    const none = await http('GET', url, { token: false });
    expect({ status: none.status, type: none.body?.resourceType }).toEqual({ status: 401, type: 'OperationOutcome' });
    const other = await registerBackendClient(s.running, 'system/*.rs');
    const t = (await backendToken(s.running, other, 'system/*.rs')).access_token;
    expect((await http('GET', url, { token: t })).status).toBe(403);
    const status = m.output[0]!.url.replace(/_bulk\/files\/([^/]+)\/.*/, '_bulk/status/$1');
    expect((await http('GET', status, { token: t })).status).toBe(403);
    expect((await http('GET', status, { token: false })).status).toBe(401);
  });

  it('_type as a comma list or repeated gives the same types; _since only what changed after it', async () => {
    const a = await runExport(`${s.base}/$export?_type=Patient,Condition`);
    const b = await runExport(`${s.base}/$export?_type=Patient&_type=Condition`);
    expect([...new Set(a.output.map((o) => o.type))].sort()).toEqual(['Condition', 'Patient']);
    expect(b.output.map((o) => [o.type, o.count])).toEqual(a.output.map((o) => [o.type, o.count]));
    const since = await exported(await runExport(`${s.base}/$export?_since=${encodeURIComponent(seededAt)}`));
    // (The server's own reindex Task may change meanwhile; the seeded types changed only in bx-p1-o1.)
    expect(Object.fromEntries(Object.entries(since).filter(([k]) => k !== 'Task').map(([k, v]) => [k, ids(v)]))).toEqual({ Observation: ['bx-p1-o1'] });
  });

  it('_typeFilter: queries of a type are OR-ed (a resource both match is written once); types without a filter are whole', async () => {
    const f = [
      'MedicationRequest?status=active',
      'MedicationRequest?status=completed&authoredon=gt2018-07-01T00:00:00Z',
      'MedicationRequest?subject=Patient/bx-p1',
    ].map(encodeURIComponent).join(',');
    const got = await exported(await runExport(`${s.base}/$export?_type=MedicationRequest,Condition&_typeFilter=${f}`));
    expect(ids(got.MedicationRequest)).toEqual(['bx-mr1', 'bx-mr2']);
    expect(got.Condition).toHaveLength(5);
  });

  it('_elements keeps the listed elements and the mandatory ones, marked SUBSETTED (POST with Parameters)', async () => {
    const m2 = await runExport(`${s.base}/$export`, {
      method: 'POST',
      body: { resourceType: 'Parameters', parameter: [{ name: '_type', valueString: 'Observation' }, { name: '_elements', valueString: 'Observation.status' }] },
    });
    const obs = (await exported(m2)).Observation!;
    expect(obs).toHaveLength(15);
    for (const o of obs) {
      expect(Object.keys(o).sort()).toEqual(['id', 'meta', 'resourceType', 'status']);
      expect(o.meta.tag).toEqual(expect.arrayContaining([expect.objectContaining({ code: 'SUBSETTED' })]));
    }
  });

  it('needs system/ scopes covering what is listed; without _type exports only what the token covers', async () => {
    const c = await registerBackendClient(s.running, 'system/Observation.rs');
    const t = (await backendToken(s.running, c, 'system/Observation.rs')).access_token;
    const res = await kickOff(`${s.base}/$export?_type=Patient`, { token: t });
    expect({ status: res.status, type: res.body?.resourceType }).toEqual({ status: 403, type: 'OperationOutcome' });
    const m2 = await runExport(`${s.base}/$export`, { token: t });
    expect([...new Set(m2.output.map((o) => o.type))]).toEqual(['Observation']);
    expect((await exported(m2, t)).Observation).toHaveLength(15);
  });
});

describe('patient and group exports', () => {
  it('Patient/$export: the types of the Patient compartment only (no Practitioner)', async () => {
    const got = await exported(await runExport(`${s.base}/Patient/$export`));
    expect(got.Practitioner).toBeUndefined();
    expect(ids(got.Group)).toEqual(['bx-g1']); // Group is in the R4 Patient compartment (member)
    expect(ids(got.Patient)).toEqual(P);
    expect(got.Observation).toHaveLength(15);
  });

  it('POST Patient/$export with patient: those patients\' compartments only', async () => {
    const got = await exported(await runExport(`${s.base}/Patient/$export`, {
      method: 'POST',
      body: { resourceType: 'Parameters', parameter: [{ name: 'patient', valueReference: { reference: 'Patient/bx-p3' } }] },
    }));
    expect(ids(got.Patient)).toEqual(['bx-p3']);
    expect(ids(got.Observation)).toEqual(['bx-p3-o1', 'bx-p3-o2', 'bx-p3-o3']);
    expect(ids(got.MedicationRequest)).toEqual(['bx-mr3']);
  });

  it('Group/[id]/$export: the members\' compartments; an unknown group is a 404', async () => {
    const m = await runExport(`${s.base}/Group/bx-g1/$export?_type=Patient,Observation,Condition`);
    expect(m.request).toBe(`${s.base}/Group/bx-g1/$export?_type=Patient%2CObservation%2CCondition`);
    const got = await exported(m);
    expect(ids(got.Patient)).toEqual(['bx-p1', 'bx-p2']);
    expect(got.Observation).toHaveLength(6);
    expect(ids(got.Condition)).toEqual(['bx-p1-c', 'bx-p2-c']);
    expect((await kickOff(`${s.base}/Group/nope/$export`)).status).toBe(404);
  });

  it('a patient\'s own token (patient/*.rs) exports their compartment only, and no system export', async () => {
    const reg = await http('POST', `${s.url}/auth/register`, {
      body: { email: 'bulk-pat@bx.example', password: 'Blue-Harbor-72!', givenName: 'Bulk', familyName: 'Patient' }, headers: { 'content-type': 'application/json' }, token: false,
    });
    const me = (reg.body.fhirUser as string).split('/')[1]!;
    expect((await http('POST', s.base, { body: { resourceType: 'Bundle', type: 'batch', entry: [
      { resource: observation({ id: 'bx-mine', subject: { reference: `Patient/${me}` } }), request: { method: 'PUT', url: 'Observation/bx-mine' } },
    ] } })).status).toBe(200);
    const t = (await userToken(s.running, 'bulk-pat@bx.example', 'Blue-Harbor-72!', 'launch/patient patient/*.rs')).access_token;
    expect((await kickOff(`${s.base}/$export`, { token: t })).status).toBe(403);
    const m = await runExport(`${s.base}/Patient/$export`, { token: t });
    const got = await exported(m, t);
    expect(ids(got.Patient)).toEqual([me]);
    expect(ids(got.Observation)).toEqual(['bx-mine']);
    expect(got.Condition).toBeUndefined();
  });
});

describe('status and cancellation', () => {
  let idle: TestServer;
  beforeAll(async () => {
    // A server whose job runner is off: the export stays in progress for as long as the test looks at it.
    idle = await startTestServer({ JOBS_ENABLED: 'false', BULK_RETRY_AFTER_SECONDS: '3', BULK_MAX_ACTIVE_PER_CLIENT: '1' });
    await http('PUT', `${idle.base}/Patient/bx-idle`, { body: patient({ id: 'bx-idle' }) });
  });
  afterAll(async () => {
    await idle?.close();
  });

  it('in progress: 202 with Retry-After and a short X-Progress; DELETE: 202, then 404 for the status', async () => {
    const res = await kickOff(`${idle.base}/$export`);
    expect(res.status).toBe(202);
    const loc = res.headers.get('content-location')!;
    const poll = await http('GET', loc);
    expect(poll.status).toBe(202);
    expect(poll.headers.get('retry-after')).toBe('3');
    expect(poll.headers.get('x-progress')!.length).toBeLessThan(100);
    expect(poll.headers.get('x-progress')).toMatch(/^0%/);
    const del = await http('DELETE', loc);
    expect(del.status).toBe(202);
    const gone = await http('GET', loc);
    expect({ status: gone.status, type: gone.body?.resourceType }).toEqual({ status: 404, type: 'OperationOutcome' });
    expect(await idle.running.mongo.db.collection('jobs').countDocuments({ 'data.job': loc.split('/').pop() })).toBe(0);
  });

  it('one request in progress per client here: a second kick-off is a 429 with Retry-After until the first is cancelled', async () => {
    const first = await kickOff(`${idle.base}/$export?_type=Patient`);
    expect(first.status).toBe(202);
    const second = await kickOff(`${idle.base}/Patient/$export`);
    expect({ status: second.status, type: second.body?.resourceType }).toEqual({ status: 429, type: 'OperationOutcome' });
    expect(Number(second.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await http('DELETE', first.headers.get('content-location')!)).status).toBe(202);
    const third = await kickOff(`${idle.base}/$export?_type=Patient`);
    expect(third.status).toBe(202);
    expect((await http('DELETE', third.headers.get('content-location')!)).status).toBe(202);
  });

  it('DELETE after completion removes the files (404 for them)', async () => {
    const res = await kickOff(`${s.base}/$export?_type=Patient`);
    const loc = res.headers.get('content-location')!;
    const m = await manifestOf(loc);
    const id = loc.split('/').pop()!;
    expect(await s.running.mongo.db.collection('bulk_files.files').countDocuments({ 'metadata.job': id })).toBe(m.output.length);
    expect((await http('DELETE', loc)).status).toBe(202);
    expect((await http('GET', m.output[0]!.url)).status).toBe(404);
    expect(await s.running.mongo.db.collection('bulk_files.files').countDocuments({ 'metadata.job': id })).toBe(0);
    expect(await s.running.mongo.db.collection('bulk_files.chunks').countDocuments({})).toBeGreaterThanOrEqual(0);
  });

  it('finished exports expire: the sweep removes them and their files', async () => {
    const m = await manifestOf((await kickOff(`${s.base}/$export?_type=Practitioner`)).headers.get('content-location')!);
    const id = m.output[0]!.url.split('/').at(-2)!;
    await s.running.mongo.db.collection('bulk_jobs').updateOne({ _id: id as never }, { $set: { expiresAt: new Date(Date.now() - 1000) } });
    expect((await http('GET', m.output[0]!.url)).status).toBe(404);
    expect(await s.running.bulk.sweep()).toBeGreaterThanOrEqual(1);
    expect(await s.running.mongo.db.collection('bulk_files.files').countDocuments({ 'metadata.job': id })).toBe(0);
    expect(await s.running.mongo.db.collection('bulk_jobs').countDocuments({ _id: id as never })).toBe(0);
  });
});

describe('two processes, one restarted mid-export', () => {
  it('share the work and resume from the checkpoints: every resource exactly once', async () => {
    const env = { JOBS_POLL_MS: '100', BULK_FILE_MAX_RESOURCES: '2', BULK_SLICE_MS: '150', BULK_RETRY_AFTER_SECONDS: '1' };
    const pair = await startInstancePair(env);
    const dbName = pair.a.running.mongo.db.databaseName;
    let restarted: TestServer | undefined;
    try {
      const direct = (u: string) => u.replace(pair.url, pair.a.url);
      const entry: any[] = [];
      for (let i = 0; i < 6; i++) {
        entry.push({ resource: patient({ id: `rr-p${i}` }), request: { method: 'PUT', url: `Patient/rr-p${i}` } });
        for (let k = 0; k < 8; k++) entry.push({ resource: observation({ id: `rr-o${i}-${k}`, subject: { reference: `Patient/rr-p${i}` } }), request: { method: 'PUT', url: `Observation/rr-o${i}-${k}` } });
      }
      entry.push({ resource: { resourceType: 'Condition', id: 'rr-c', subject: { reference: 'Patient/rr-p0' }, code: { text: 'x' } }, request: { method: 'PUT', url: 'Condition/rr-c' } });
      expect((await http('POST', `${pair.a.base}`, { body: { resourceType: 'Bundle', type: 'batch', entry } })).status).toBe(200);
      const res = await http('GET', `${pair.a.base}/$export?_type=Patient,Observation,Condition`, { headers: ASYNC });
      expect(res.status).toBe(202);
      const loc = res.headers.get('content-location')!;
      const id = loc.split('/').pop()!;
      const tasks = pair.a.running.mongo.db.collection('bulk_tasks');
      // Wait until some part is written but the Observations are not done, then restart process b.
      for (let i = 0; i < 300; i++) {
        const obs = await tasks.findOne({ job: id, type: 'Observation' });
        if (obs && obs.part > 0) break;
        await sleep(20);
      }
      // From here on neither process writes: a's running slices end at their next checkpoint (and it hands every
      // task straight back), b stops; the restarted process must do the rest from the checkpoints.
      pair.a.running.bulk.stop();
      await pair.b.close();
      pair.b.close = async () => undefined;
      await pair.a.running.bulk.idle();
      const before = await tasks.findOne({ job: id, type: 'Observation' });
      expect(before!.done).toBe(false);
      expect(before!.part).toBeGreaterThan(0);
      restarted = await startTestServer({ ...env, BASE_URL: pair.url }, { keepDb: true, dbName, single: true });
      const progress = await http('GET', direct(loc));
      if (progress.status === 202) expect(progress.headers.get('x-progress')).toMatch(/^\d+% \(\d+ of 55 resources/);
      const m = await manifestOf(loc, undefined, direct);
      const got = await exported(m, undefined, direct);
      expect(got.Observation).toHaveLength(48);
      expect(new Set(got.Observation!.map((o) => o.id)).size).toBe(48);
      expect(ids(got.Patient)).toEqual([0, 1, 2, 3, 4, 5].map((i) => `rr-p${i}`));
      expect(ids(got.Condition)).toEqual(['rr-c']);
      for (const o of m.output) expect(o.count).toBeLessThanOrEqual(2);
      // The Observations were written by more than one process: the first parts by the pair, the rest by the restarted one.
      const obs = await tasks.findOne({ job: id, type: 'Observation' });
      expect(obs!.writers).toContain(restarted.running.bulk.id);
      expect(obs!.writers.some((w: string) => w === pair.a.running.bulk.id || w === pair.b.running.bulk.id)).toBe(true);
      expect(obs!.slices).toBeGreaterThan(1);
    } finally {
      await restarted?.close();
      await pair.close();
    }
  });
});
