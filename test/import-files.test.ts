import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { importFiles } from '../src/bulk/import-files.js';
import { authHeaders, http, startTestServer, type TestServer } from './support/server.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(async () => {
  await srv?.close();
});

describe('scripts/import (importFiles)', () => {
  it('loads NDJSON keeping ids, reports a broken file with its reason and goes on with the rest', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'medivoy-import-'));
    const lines = [
      { resourceType: 'Patient', id: 'nd-pat-1', name: [{ family: 'Ndjson' }] },
      ...Array.from({ length: 7 }, (_, i) => ({ resourceType: 'Observation', id: `nd-obs-${i}`, status: 'final', code: { text: 'x' }, subject: { reference: 'Patient/nd-pat-1' } })),
    ];
    writeFileSync(join(dir, 'a.ndjson'), lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
    writeFileSync(join(dir, 'b.json'), '{ not json');
    writeFileSync(join(dir, 'c.json'), JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry: [{ resource: { resourceType: 'Patient', gender: 'nope' }, request: { method: 'POST', url: 'Patient' } }] }));
    writeFileSync(join(dir, 'd.json'), JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry: [{ resource: { resourceType: 'Patient', name: [{ family: 'Fine' }] }, request: { method: 'POST', url: 'Patient' } }] }));

    const progress: number[] = [];
    const summary = await importFiles({ baseUrl: srv.base, headers: () => authHeaders(srv.base), paths: [dir], concurrency: 2, ndjsonBatchSize: 3, onProgress: (p) => progress.push(p.filesDone) });
    expect(summary.files).toBe(4);
    expect(summary.resources).toBe(9);
    expect(summary.failures.map((f) => f.file.split('/').pop()).sort()).toEqual(['b.json', 'c.json']);
    expect(summary.failures.find((f) => f.file.endsWith('c.json'))!.reason).toMatch(/HTTP 400/);
    expect(Math.max(...progress)).toBe(4);

    const obs = await http('GET', `${srv.base}/Observation/nd-obs-6`);
    expect(obs.body.subject.reference).toBe('Patient/nd-pat-1');
    const everything = await http('GET', `${srv.base}/Patient/nd-pat-1/$everything`);
    expect(everything.body.total).toBe(8);
  });
});
