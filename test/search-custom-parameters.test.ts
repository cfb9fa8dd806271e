/**
 * Custom SearchParameters online: effective for new writes at once, back-filled by a background job that
 * reports through a Task and survives a restart (the job is durable; any process resumes it).
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { http, startTestServer, type TestServer } from './support/server.js';

const RATING = 'http://medivoy.example/fhir/StructureDefinition/test-score';
const dbName = `t_${randomBytes(6).toString('hex')}`;
const servers: TestServer[] = [];
afterAll(async () => {
  for (const s of servers.reverse()) await s.close().catch(() => undefined);
});

const practitioner = (id: string, rating: number) => ({ resourceType: 'Practitioner', id, name: [{ family: `Doc${id}` }], extension: [{ url: RATING, valueDecimal: rating }] });
const ids = (b: any) => (b.entry ?? []).filter((e: any) => e.search.mode === 'match').map((e: any) => e.resource.id).sort();

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('custom SearchParameter', () => {
  it('takes effect for new writes at once and is back-filled by a resumable job reported as a Task', async () => {
    // Server A does not run jobs: it stands for a process that stops before the back-fill ran.
    // This test runs its own two processes one after the other (a writes, b resumes the job): one instance each.
    const a = await startTestServer({ REINDEX_WORKER: 'false', REINDEX_POLL_MS: '200' }, { dbName, keepDb: true, single: true });
    servers.push(a);
    const old = Array.from({ length: 12 }, (_, i) => practitioner(`old${String(i).padStart(2, '0')}`, i % 2 ? 4.5 : 3));
    const put = await http('POST', a.base, { body: { resourceType: 'Bundle', type: 'transaction', entry: old.map((r) => ({ resource: r, request: { method: 'PUT', url: `Practitioner/${r.id}` } })) } });
    expect(put.status).toBe(200);
    // Before the parameter exists, strict handling refuses it.
    expect((await http('GET', `${a.base}/Practitioner?test-score=ge4`, { headers: { Prefer: 'handling=strict' } })).status).toBe(400);

    const sp = await http('POST', `${a.base}/SearchParameter`, {
      body: {
        resourceType: 'SearchParameter', url: 'http://medivoy.example/fhir/SearchParameter/practitioner-test-score', name: 'testScore', status: 'active',
        description: 'Average review rating of a practitioner', code: 'test-score', base: ['Practitioner'], type: 'number',
        expression: `Practitioner.extension.where(url='${RATING}').value`,
      },
    });
    expect(sp.status).toBe(201);

    // New writes are indexed with it immediately.
    expect((await http('PUT', `${a.base}/Practitioner/new1`, { body: practitioner('new1', 5) })).status).toBe(201);
    let res = await http('GET', `${a.base}/Practitioner?test-score=ge4`, { headers: { Prefer: 'handling=strict' } });
    expect(res.status).toBe(200);
    expect(ids(res.body)).toEqual(['new1']);
    // …and the answer says that older resources are still being back-filled.
    const outcome = res.body.entry.find((e: any) => e.search.mode === 'outcome')?.resource;
    expect(JSON.stringify(outcome)).toMatch(/back-filled.*Task\//);

    const task = (await http('GET', `${a.base}/Task?focus=SearchParameter/${sp.body.id}`)).body.entry[0].resource;
    expect(task.status).toBe('requested');
    await a.close();
    servers.pop();

    // Server B (a restart) picks the durable job up and finishes it.
    const b = await startTestServer({ REINDEX_POLL_MS: '200', REINDEX_BATCH_SIZE: '5' }, { dbName, single: true });
    servers.push(b);
    const done = await waitFor('the reindex Task to complete', async () => {
      const t = (await http('GET', `${b.base}/Task/${task.id}`)).body;
      return t.status === 'completed' ? t : undefined;
    });
    const processed = done.output.find((o: any) => o.type.text === 'processed').valueInteger;
    expect(processed).toBe(13);
    // Its history shows progress (requested → in-progress … → completed).
    const history = (await http('GET', `${b.base}/Task/${task.id}/_history`)).body.entry.map((e: any) => e.resource.status);
    expect(history).toContain('in-progress');

    res = await http('GET', `${b.base}/Practitioner?test-score=ge4`);
    expect(ids(res.body)).toEqual(['new1', 'old01', 'old03', 'old05', 'old07', 'old09', 'old11']);
    expect(res.body.entry.some((e: any) => e.search.mode === 'outcome')).toBe(false);
    res = await http('GET', `${b.base}/Practitioner?test-score=3&_sort=-test-score`);
    expect(ids(res.body)).toEqual(['old00', 'old02', 'old04', 'old06', 'old08', 'old10']);
    // The parameter is searchable everywhere search is: sorting and :missing.
    res = await http('GET', `${b.base}/Practitioner?_sort=-test-score&_count=1`);
    expect(ids(res.body)).toEqual(['new1']);

    // Retiring the parameter removes it again.
    const retired = { ...sp.body, status: 'retired' };
    expect((await http('PUT', `${b.base}/SearchParameter/${sp.body.id}`, { body: retired })).status).toBe(200);
    expect((await http('GET', `${b.base}/Practitioner?test-score=ge4`, { headers: { Prefer: 'handling=strict' } })).status).toBe(400);
  }, 90_000);
});

describe('scripts/reindex', () => {
  it('re-indexes the stored resources of a type from the command line and reports through a Task', async () => {
    const { spawnSync } = await import('node:child_process');
    const srv = await startTestServer({ REINDEX_WORKER: 'false' });
    servers.push(srv);
    for (const family of ['Alvarez', 'Alvarado', 'Brown']) {
      expect((await http('POST', `${srv.base}/Patient`, { body: { resourceType: 'Patient', name: [{ family }] } })).status).toBe(201);
    }
    // An index as an older version left it: no string keys.
    await srv.running.mongo.db.collection('fhir_Patient').updateMany({}, { $unset: { st: '' } });
    expect(ids((await http('GET', `${srv.base}/Patient?name=alva`)).body)).toEqual([]);

    const run = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/reindex.ts', '--type', 'Patient'], {
      cwd: new URL('..', import.meta.url).pathname,
      env: { ...process.env, MONGODB_DB: srv.running.mongo.db.databaseName, LOG_LEVEL: 'silent' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(`${run.stdout}\n${run.stderr}`.slice(-2000)).toMatch(/completed, 3 resources/);
    expect(run.status).toBe(0);
    expect((await http('GET', `${srv.base}/Patient?name=alva`)).body.entry.filter((e: any) => e.search.mode === 'match')).toHaveLength(2);
    const task = (await http('GET', `${srv.base}/Task?code=http://medivoy.example/task|reindex&status=completed`)).body;
    const patientTask = task.entry.map((e: any) => e.resource).find((t: any) => t.input?.some((i: any) => i.valueCode === 'Patient'));
    expect(patientTask.output.find((o: any) => o.type.text === 'processed').valueInteger).toBe(3);
  }, 90_000);
});
