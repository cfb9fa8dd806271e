import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { http, startTestServer, type TestServer } from './support/server.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(async () => {
  await srv?.close();
});

const patient = { resourceType: 'Patient', name: [{ family: 'Retry' }] };

describe('Idempotency-Key', () => {
  it('replays the stored response for a retried create instead of writing again', async () => {
    const key = randomUUID();
    const a = await http('POST', `${srv.base}/Patient`, { body: patient, headers: { 'idempotency-key': key } });
    const b = await http('POST', `${srv.base}/Patient`, { body: patient, headers: { 'idempotency-key': key } });
    expect(a.status).toBe(201);
    expect(b.status).toBe(201);
    expect(b.body.id).toBe(a.body.id);
    expect(b.headers.get('idempotent-replayed')).toBe('true');
    expect(b.headers.get('location')).toBe(a.headers.get('location'));
    const history = await http('GET', `${srv.base}/Patient/${a.body.id}/_history`);
    expect(history.body.total).toBe(1);
  });

  it('refuses the same key with a different body (422)', async () => {
    const key = randomUUID();
    await http('POST', `${srv.base}/Patient`, { body: patient, headers: { 'idempotency-key': key } });
    const r = await http('POST', `${srv.base}/Patient`, { body: { ...patient, gender: 'male' }, headers: { 'idempotency-key': key } });
    expect(r.status).toBe(422);
    expect(r.body.resourceType).toBe('OperationOutcome');
  });

  it('writes once for a transaction retried concurrently', async () => {
    const key = randomUUID();
    const bundle = { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: patient, request: { method: 'POST', url: 'Patient' } }] };
    const results = await Promise.all(Array.from({ length: 6 }, () => http('POST', srv.base, { body: bundle, headers: { 'idempotency-key': key } })));
    const ok = results.filter((r) => r.status === 200);
    expect(ok.length).toBeGreaterThanOrEqual(1);
    expect(results.every((r) => r.status === 200 || r.status === 409)).toBe(true);
    expect(new Set(ok.map((r) => r.body.entry[0].resource.id)).size).toBe(1);
  });

  it('does not remember failed requests, so a corrected retry with the same key goes through', async () => {
    const key = randomUUID();
    const bad = await http('POST', `${srv.base}/Patient`, { body: { resourceType: 'Patient', gender: 7 }, headers: { 'idempotency-key': key } });
    expect(bad.status).toBe(400);
    const good = await http('POST', `${srv.base}/Patient`, { body: { resourceType: 'Patient', gender: 'other' }, headers: { 'idempotency-key': key } });
    expect(good.status).toBe(201);
    const again = await http('POST', `${srv.base}/Patient`, { body: { resourceType: 'Patient', gender: 'other' }, headers: { 'idempotency-key': key } });
    expect(again.body.id).toBe(good.body.id);
  });
});
