/**
 * $import of NDJSON files (manifest form: Parameters with input parts type and url): file: URLs under the
 * import directory and http(s) URLs of allowed origins, run as a job with progress; each line stored on
 * its own or reported in the error file as an OperationOutcome naming the line, nothing of it stored; a long
 * input resumes from its checkpoints and applies no line twice.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { AddressInfo } from 'node:net';
import { http, startTestServer, type TestServer } from './support/server.js';
import { backendToken, registerBackendClient } from './support/auth.js';
import { observation, patient } from './support/factories.js';

const ASYNC = { accept: 'application/fhir+json', prefer: 'respond-async' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let s: TestServer;
let dir: string;
let files: Server;
let origin: string;
const served = new Map<string, string>();

const manifestForm = (inputs: { type: string; url: string }[]) => ({
  resourceType: 'Parameters',
  parameter: [
    { name: 'inputFormat', valueCode: 'application/fhir+ndjson' },
    ...inputs.map((i) => ({ name: 'input', part: [{ name: 'type', valueCode: i.type }, { name: 'url', valueUri: i.url }] })),
  ],
});

async function importAndWait(body: unknown, token?: string) {
  const res = await http('POST', `${s.base}/$import`, { body, headers: ASYNC, token });
  expect({ status: res.status, body: res.status === 202 ? undefined : res.body }).toEqual({ status: 202, body: undefined });
  const loc = res.headers.get('content-location')!;
  const progress: string[] = [];
  for (let i = 0; i < 600; i++) {
    const st = await http('GET', loc, { token });
    if (st.status === 200) return { manifest: st.body, loc, progress };
    expect(st.status).toBe(202);
    progress.push(st.headers.get('x-progress')!);
    await sleep(100);
  }
  throw new Error('import did not finish');
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bulk-import-'));
  files = createServer((req, res) => {
    const text = served.get(req.url ?? '');
    res.writeHead(text === undefined ? 404 : 200, { 'content-type': 'application/fhir+ndjson' }).end(text ?? '');
  });
  await new Promise<void>((r) => files.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;
  s = await startTestServer({ JOBS_POLL_MS: '100', BULK_IMPORT_DIR: dir, BULK_IMPORT_ORIGINS: origin, BULK_SLICE_MS: '100', BULK_RETRY_AFTER_SECONDS: '1' });
}, 60_000);

afterAll(async () => {
  await s?.close();
  await new Promise((r) => files?.close(r));
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('$import', () => {
  it('imports file: and http inputs; bad lines go to the error file with their line, nothing of them stored', async () => {
    const lines = [
      JSON.stringify(patient({ id: 'im-p1' })),
      JSON.stringify(patient({ id: 'im-p2' })),
      '{"resourceType": "Patient", "id": ',
      JSON.stringify(patient({})),
      JSON.stringify(patient({ id: 'im-bad-gender', gender: 'robot' })),
      JSON.stringify(observation({ id: 'im-wrong-type' })),
      '',
    ];
    await writeFile(join(dir, 'patients.ndjson'), lines.join('\n'));
    served.set('/obs.ndjson', [0, 1, 2].map((k) => JSON.stringify(observation({ id: `im-o${k}`, subject: { reference: 'Patient/im-p1' } }))).join('\n') + '\n');
    const patientsUrl = pathToFileURL(join(dir, 'patients.ndjson')).href;
    const { manifest } = await importAndWait(manifestForm([{ type: 'Patient', url: patientsUrl }, { type: 'Observation', url: `${origin}/obs.ndjson` }]));
    expect(manifest.requiresAccessToken).toBe(true);
    expect(manifest.request).toBe(`${s.base}/$import`);
    expect(manifest.output).toEqual([
      { type: 'Patient', inputUrl: patientsUrl, count: 2 },
      { type: 'Observation', inputUrl: `${origin}/obs.ndjson`, count: 3 },
    ]);
    expect(manifest.error).toHaveLength(1);
    const err = await http('GET', manifest.error[0].url);
    expect(err.status).toBe(200);
    expect(err.headers.get('content-type')).toMatch(/^application\/fhir\+ndjson/);
    const outcomes = err.text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    expect(outcomes.map((o) => o.resourceType)).toEqual(['OperationOutcome', 'OperationOutcome', 'OperationOutcome', 'OperationOutcome']);
    const texts = outcomes.map((o) => o.issue.map((i: any) => i.diagnostics ?? i.details?.text).join(' '));
    expect(texts[0]).toMatch(/patients\.ndjson line 3: not valid JSON/);
    expect(texts[1]).toMatch(/line 4: NDJSON resources need an id/);
    expect(texts[2]).toMatch(/line 5: .*gender|line 5: .*robot/i);
    expect(texts[3]).toMatch(/line 6: a Observation in the input of Patient/);
    for (const id of ['im-p1', 'im-p2']) expect((await http('GET', `${s.base}/Patient/${id}`)).status).toBe(200);
    expect((await http('GET', `${s.base}/Patient/im-bad-gender`)).status).toBe(404);
    expect((await http('GET', `${s.base}/Observation/im-wrong-type`)).status).toBe(404);
    expect((await http('GET', `${s.base}/Observation/im-o2`)).body.subject.reference).toBe('Patient/im-p1');
    // A bulk load does not go into the resource cache: what is read comes from the database.
    const col = s.running.mongo.db.collection('fhir_Observation');
    const stored = (await col.findOne({ _id: 'Observation/im-o1' } as never)) as unknown as { json: string };
    await col.updateOne({ _id: 'Observation/im-o1' } as never, { $set: { json: stored.json.replace('"final"', '"amended"') } });
    expect((await http('GET', `${s.base}/Observation/im-o1`)).body.status).toBe('amended');
  });

  it('refuses bad kick-offs with an OperationOutcome: headers, URLs outside the directory or origins, no input, no write scope', async () => {
    const refused = async (body: unknown, status = 400, headers: Record<string, string> = ASYNC, token?: string) => {
      const res = await http('POST', `${s.base}/$import`, { body, headers, token });
      expect({ status: res.status, type: res.body?.resourceType }).toEqual({ status, type: 'OperationOutcome' });
    };
    await writeFile(join(dir, 'ok.ndjson'), `${JSON.stringify(patient({ id: 'im-ok' }))}\n`);
    const ok = manifestForm([{ type: 'Patient', url: pathToFileURL(join(dir, 'ok.ndjson')).href }]);
    await refused(ok, 400, { accept: 'application/fhir+json' });
    await refused(manifestForm([{ type: 'Patient', url: 'file:///etc/passwd' }]));
    await refused(manifestForm([{ type: 'Patient', url: pathToFileURL(join(dir, 'missing.ndjson')).href }]));
    await refused(manifestForm([{ type: 'Patient', url: 'http://files.example.org/p.ndjson' }]));
    await refused(manifestForm([{ type: 'Bogus', url: `${origin}/obs.ndjson` }]));
    await refused({ resourceType: 'Parameters', parameter: [] });
    const reader = await registerBackendClient(s.running, 'system/*.rs');
    await refused(ok, 403, ASYNC, (await backendToken(s.running, reader, 'system/*.rs')).access_token);
    expect((await http('GET', `${s.base}/Patient/im-ok`)).status).toBe(404);
  });

  it('another client cannot see the status or files; a long input resumes from its checkpoints and applies each line once', async () => {
    const n = 600;
    served.set('/many.ndjson', Array.from({ length: n }, (_, i) => JSON.stringify(patient({ id: `im-m${i}` }))).join('\n'));
    const { manifest, loc, progress } = await importAndWait(manifestForm([{ type: 'Patient', url: `${origin}/many.ndjson` }]));
    expect(manifest.output).toEqual([{ type: 'Patient', inputUrl: `${origin}/many.ndjson`, count: n }]);
    expect(manifest.error).toEqual([]);
    // Slices of 100 ms, a checkpoint every 200 lines: the task went back to the queue in between.
    const task = await s.running.mongo.db.collection('bulk_tasks').findOne({ job: loc.split('/').pop() });
    expect(task!.slices).toBeGreaterThan(1);
    for (const p of progress) expect(p).toMatch(/^\d+% \(\d+( of 600)? resources, [01] of 1 inputs done\)$/);
    const page = await http('GET', `${s.base}/Patient/_history?_count=1000&_since=2000-01-01T00:00:00Z`);
    const versions = (page.body.entry ?? []).filter((e: any) => e.resource?.id?.startsWith('im-m'));
    expect(versions).toHaveLength(n); // one version each: no line applied twice
    const other = await registerBackendClient(s.running, 'system/*.cruds');
    const t = (await backendToken(s.running, other, 'system/*.cruds')).access_token;
    expect((await http('GET', loc, { token: t })).status).toBe(403);
    expect((await http('DELETE', loc, { token: t })).status).toBe(403);
    expect((await http('DELETE', loc)).status).toBe(202);
    expect((await http('GET', loc)).status).toBe(404);
  });
});

describe('files in a local directory (BULK_FILE_STORE=directory)', () => {
  it('an export writes its parts there, serves them and removes them on DELETE', async () => {
    const root = await mkdtemp(join(tmpdir(), 'bulk-files-'));
    const d = await startTestServer({ JOBS_POLL_MS: '100', BULK_FILE_STORE: 'directory', BULK_FILE_DIR: root, BULK_FILE_MAX_RESOURCES: '2' });
    try {
      for (const id of ['dir-p1', 'dir-p2', 'dir-p3']) expect((await http('PUT', `${d.base}/Patient/${id}`, { body: patient({ id }) })).status).toBe(201);
      const res = await http('GET', `${d.base}/$export?_type=Patient`, { headers: ASYNC });
      expect(res.status).toBe(202);
      const loc = res.headers.get('content-location')!;
      const id = loc.split('/').pop()!;
      let st = await http('GET', loc);
      for (let i = 0; st.status === 202 && i < 300; i++) {
        await sleep(100);
        st = await http('GET', loc);
      }
      expect(st.status).toBe(200);
      expect(st.body.output.map((o: any) => o.count)).toEqual([2, 1]);
      expect((await readdir(join(root, id))).sort()).toEqual(st.body.output.map((o: any) => o.url.split('/').pop()).sort());
      const file = await http('GET', st.body.output[1].url);
      expect(JSON.parse(file.text.trim()).id).toBe('dir-p3');
      expect(await d.running.mongo.db.collection('bulk_files.files').countDocuments({})).toBe(0);
      expect((await http('DELETE', loc)).status).toBe(202);
      expect(await readdir(root)).toEqual([]);
    } finally {
      await d.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});
