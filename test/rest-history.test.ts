import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { http, startTestServer, type HttpResult, type TestServer } from './support/server.js';
import { expectOutcome } from './support/outcomes.js';
import { jsonPatch, observation, patient } from './support/factories.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(async () => {
  await srv?.close();
});

interface Entry {
  fullUrl: string;
  resource?: { id: string; meta: { versionId: string; lastUpdated: string } };
  request: { method: string; url: string };
  response: { status: string; etag: string; lastModified: string };
}

/** `Type/id/version` of a history entry. */
const key = (e: Entry) => `${e.fullUrl.slice(srv.base.length + 1)}/${/^W\/"(\d+)"$/.exec(e.response.etag)![1]}`;

async function create(body: Record<string, unknown>): Promise<any> {
  const res = await http('POST', `${srv.base}/${String(body.resourceType)}`, { body });
  expect(res.status).toBe(201);
  return res.body;
}

async function update(resource: any, changes: Record<string, unknown>): Promise<any> {
  const res = await http('PUT', `${srv.base}/${resource.resourceType}/${resource.id}`, { body: { ...resource, ...changes } });
  expect(res.status).toBe(200);
  return res.body;
}

/** Follows `next` links from `url` until there is none, checking each page's shape. */
async function allPages(url: string, count: number, between: () => Promise<void> = async () => undefined): Promise<{ entries: Entry[]; pages: number }> {
  const entries: Entry[] = [];
  let next: string | undefined = url;
  let pages = 0;
  while (next) {
    const res: HttpResult = await http('GET', next);
    expect(res.status).toBe(200);
    expect(res.body.type).toBe('history');
    expect((res.body.entry ?? []).length).toBeLessThanOrEqual(count);
    entries.push(...(res.body.entry ?? []));
    next = res.body.link.find((l: { relation: string }) => l.relation === 'next')?.url;
    pages++;
    expect(pages).toBeLessThan(1000);
    await between();
  }
  return { entries, pages };
}

describe('instance history', () => {
  it('lists every version newest first, with request, response and no resource for the deletion', async () => {
    const v1 = await create(patient());
    const v2 = await update(v1, { active: true });
    const v3 = (await http('PATCH', `${srv.base}/Patient/${v1.id}`, jsonPatch([{ op: 'replace', path: '/active', value: false }]))).body;
    expect((await http('DELETE', `${srv.base}/Patient/${v1.id}`)).status).toBe(200);

    const res = await http('GET', `${srv.base}/Patient/${v1.id}/_history`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
    expect(res.body.resourceType).toBe('Bundle');
    expect(res.body.type).toBe('history');
    expect(res.body.total).toBe(4);
    const entries: Entry[] = res.body.entry;
    expect(entries.map((e) => e.request.method)).toEqual(['DELETE', 'PATCH', 'PUT', 'POST']);
    expect(entries.map((e) => e.response.etag)).toEqual(['W/"4"', 'W/"3"', 'W/"2"', 'W/"1"']);
    expect(entries.map((e) => e.response.status.slice(0, 3))).toEqual([expect.stringMatching(/^20[04]$/), '200', '200', '201']);
    for (const e of entries) expect(e.fullUrl).toBe(`${srv.base}/Patient/${v1.id}`);
    expect(entries[0]!.resource).toBeUndefined();
    expect(entries.slice(1).map((e) => e.resource)).toEqual([v3, v2, v1]);
    for (const e of entries.slice(1)) expect(e.response.lastModified).toBe(e.resource!.meta.lastUpdated);
    const times = entries.map((e) => Date.parse(e.response.lastModified));
    expect([...times].sort((a, b) => b - a)).toEqual(times);
    expect(times[0]!).toBeGreaterThan(times[1]!);
  });

  it('is a 404 for an id that never existed, and still served after a delete', async () => {
    expectOutcome(await http('GET', `${srv.base}/Patient/never-existed/_history`), 404);
    const p = await create(patient());
    await http('DELETE', `${srv.base}/Patient/${p.id}`);
    const res = await http('GET', `${srv.base}/Patient/${p.id}/_history`);
    expect(res.status).toBe(200);
    expect(res.body.total).toBe(2);
  });

  it('vread still serves the old versions of a deleted resource; the deletion version is a 410', async () => {
    const v1 = await create(patient({ gender: 'female' }));
    const v2 = await update(v1, { gender: 'male' });
    expect((await http('DELETE', `${srv.base}/Patient/${v1.id}`)).status).toBe(200);
    expectOutcome(await http('GET', `${srv.base}/Patient/${v1.id}`), 410);
    const old1 = await http('GET', `${srv.base}/Patient/${v1.id}/_history/1`);
    expect(old1.status).toBe(200);
    expect(old1.body).toEqual(v1);
    const old2 = await http('GET', `${srv.base}/Patient/${v1.id}/_history/2`);
    expect(old2.status).toBe(200);
    expect(old2.body).toEqual(v2);
    expectOutcome(await http('GET', `${srv.base}/Patient/${v1.id}/_history/3`), 410);
    expectOutcome(await http('GET', `${srv.base}/Patient/${v1.id}/_history/4`), 404);
    expectOutcome(await http('GET', `${srv.base}/Patient/${v1.id}/_history/0`), 404);
    expectOutcome(await http('GET', `${srv.base}/Patient/${v1.id}/_history/two`), 404);
  });

  it('a re-created resource continues its version sequence after the deletion', async () => {
    const v1 = await create(patient());
    await http('DELETE', `${srv.base}/Patient/${v1.id}`);
    const again = await http('PUT', `${srv.base}/Patient/${v1.id}`, { body: { ...v1, meta: undefined } });
    expect(again.status).toBe(201);
    expect(again.body.meta.versionId).toBe('3');
    const h = await http('GET', `${srv.base}/Patient/${v1.id}/_history`);
    expect(h.body.entry.map((e: Entry) => e.request.method)).toEqual(['PUT', 'DELETE', 'POST']);
  });
});

describe('type and system history', () => {
  it('type history holds only that type, newest first', async () => {
    const p = await create(patient());
    const o = await create(observation());
    await update(p, { active: true });
    const res = await http('GET', `${srv.base}/Patient/_history?_count=1000`);
    expect(res.status).toBe(200);
    expect(res.body.type).toBe('history');
    const entries: Entry[] = res.body.entry;
    expect(entries.length).toBe(res.body.total);
    expect(entries.every((e) => e.fullUrl.startsWith(`${srv.base}/Patient/`))).toBe(true);
    expect(entries.map(key).slice(0, 2)).toEqual([`Patient/${p.id}/2`, `Patient/${p.id}/1`]);
    expect(entries.map(key)).not.toContain(`Observation/${o.id}/1`);
    const times = entries.map((e) => Date.parse(e.response.lastModified));
    expect([...times].sort((a, b) => b - a)).toEqual(times);
  });

  it('system history holds every type, newest first', async () => {
    const p = await create(patient());
    const o = await create(observation());
    const res = await http('GET', `${srv.base}/_history?_count=1000`);
    expect(res.status).toBe(200);
    expect(res.body.type).toBe('history');
    const entries: Entry[] = res.body.entry;
    expect(entries.length).toBe(res.body.total);
    const keys = entries.map(key);
    expect(keys.indexOf(`Observation/${o.id}/1`)).toBeLessThan(keys.indexOf(`Patient/${p.id}/1`));
    expect(keys.indexOf(`Patient/${p.id}/1`)).toBeGreaterThanOrEqual(0);
    const times = entries.map((e) => Date.parse(e.response.lastModified));
    expect([...times].sort((a, b) => b - a)).toEqual(times);
  });
});

describe('paging while another client writes', () => {
  beforeAll(async () => {
    // Enough versions of two types for many pages; several land in the same millisecond.
    const made = await Promise.all(Array.from({ length: 12 }, (_, i) => create(i % 3 ? patient({ name: [{ family: `Page${i}` }] }) : observation())));
    for (const r of made.slice(0, 6)) await update(r, { language: 'en' });
  });

  it.each([
    ['type', 'Patient/_history'],
    ['system', '_history'],
  ])('%s history: next links neither skip nor repeat a version that existed when paging began', async (_what, path) => {
    const snapshot: Entry[] = (await http('GET', `${srv.base}/${path}?_count=1000`)).body.entry;
    expect(snapshot.length).toBeGreaterThan(20);
    const existing = new Set(snapshot.map(key));

    let stop = false;
    const written: string[] = [];
    const writeOne = async (i: number) => {
      const p = await create(patient({ name: [{ family: `Late${i}` }] }));
      const u = await update(p, { active: true });
      const o = await create(observation());
      written.push(`Patient/${p.id}/1`, `Patient/${u.id}/2`, `Observation/${o.id}/1`);
    };
    // One writer runs freely for the whole paging; a write is also forced between every two pages.
    const background = (async () => {
      for (let i = 0; !stop; i++) await writeOne(i);
    })();
    let forced = 0;
    const { entries, pages } = await allPages(`${srv.base}/${path}?_count=7`, 7, () => writeOne(1000 + forced++));
    stop = true;
    await background;

    const keys = entries.map(key);
    expect(new Set(keys).size).toBe(keys.length); // nothing repeated
    expect([...existing].filter((k) => !keys.includes(k))).toEqual([]); // nothing skipped
    expect(pages).toBeGreaterThanOrEqual(Math.ceil(existing.size / 7));
    expect(written.length).toBeGreaterThan(0);
    // The versions that existed come out newest first across page boundaries.
    const old = entries.filter((e) => existing.has(key(e)));
    expect(old.map(key)).toEqual(snapshot.map(key));
  });

  it('a _count larger than the history is one page without a next link', async () => {
    const p = await create(patient());
    const res = await http('GET', `${srv.base}/Patient/${p.id}/_history?_count=50`);
    expect(res.body.entry).toHaveLength(1);
    expect(res.body.link.find((l: { relation: string }) => l.relation === 'next')).toBeUndefined();
    expect(res.body.link.find((l: { relation: string }) => l.relation === 'self')).toBeDefined();
  });

  it('pages of one instance follow its versions', async () => {
    let r = await create(patient());
    for (let i = 0; i < 6; i++) r = await update(r, { gender: i % 2 ? 'male' : 'female' });
    const { entries, pages } = await allPages(`${srv.base}/Patient/${r.id}/_history?_count=2`, 2);
    expect(pages).toBe(4);
    expect(entries.map((e) => e.response.etag)).toEqual([7, 6, 5, 4, 3, 2, 1].map((v) => `W/"${v}"`));
  });
});

describe('_since, _at and bad parameters', () => {
  it('_since keeps the versions updated at or after the instant', async () => {
    const v1 = await create(patient());
    const v2 = await update(v1, { active: true });
    const v3 = await update(v2, { active: false });
    const since = encodeURIComponent(v2.meta.lastUpdated);
    const inst = await http('GET', `${srv.base}/Patient/${v1.id}/_history?_since=${since}`);
    expect(inst.status).toBe(200);
    expect(inst.body.entry.map((e: Entry) => e.response.etag)).toEqual(['W/"3"', 'W/"2"']);
    const type = await http('GET', `${srv.base}/Patient/_history?_since=${since}&_count=1000`);
    const keys = type.body.entry.map(key);
    expect(keys).toEqual(expect.arrayContaining([`Patient/${v1.id}/3`, `Patient/${v1.id}/2`]));
    expect(keys).not.toContain(`Patient/${v1.id}/1`);
    expect(type.body.entry.every((e: Entry) => Date.parse(e.response.lastModified) >= Date.parse(v2.meta.lastUpdated))).toBe(true);
    const future = await http('GET', `${srv.base}/Patient/${v3.id}/_history?_since=2999-01-01T00:00:00Z`);
    expect(future.status).toBe(200);
    expect(future.body.entry ?? []).toEqual([]);
  });

  it('_since links carry the parameter to the next page', async () => {
    let r = await create(patient());
    const first = r.meta.lastUpdated;
    for (let i = 0; i < 3; i++) r = await update(r, { gender: i % 2 ? 'male' : 'female' });
    const { entries } = await allPages(`${srv.base}/Patient/${r.id}/_history?_count=1&_since=${encodeURIComponent(first)}`, 1);
    expect(entries.map((e) => e.response.etag)).toEqual(['W/"4"', 'W/"3"', 'W/"2"', 'W/"1"']);
  });

  it('_at keeps the version that was current at the instant and drops later ones', async () => {
    const v1 = await create(patient());
    const v2 = await update(v1, { active: true });
    const v3 = await update(v2, { active: false });
    const t2 = Date.parse(v2.meta.lastUpdated);
    const t3 = Date.parse(v3.meta.lastUpdated);
    expect(t3).toBeGreaterThan(t2);
    const at = encodeURIComponent(new Date(t2).toISOString());
    const res = await http('GET', `${srv.base}/Patient/${v1.id}/_history?_at=${at}`);
    expect(res.status).toBe(200);
    const etags = res.body.entry.map((e: Entry) => e.response.etag);
    expect(etags[0]).toBe('W/"2"');
    expect(etags).not.toContain('W/"3"');
    expect(etags).toEqual(['W/"2"']);
    const before = await http('GET', `${srv.base}/Patient/${v1.id}/_history?_at=2000-01-01T00:00:00Z`);
    expect(before.status).toBe(200);
    expect(before.body.entry ?? []).toEqual([]);
    // A partial date is a period: every version current at some point during that year.
    const year = new Date(t3).getUTCFullYear();
    const wholeYear = await http('GET', `${srv.base}/Patient/${v1.id}/_history?_at=${year}`);
    expect(wholeYear.body.entry.map((e: Entry) => e.response.etag)).toEqual(['W/"3"', 'W/"2"', 'W/"1"']);
  });

  it.each(['yesterday', '2024-13-45T99:00:00Z', '12/31/2024', '2024-01-01T10:00:00+25:00x', "2024' OR 1=1"])('_since=%s is a 400', async (since) => {
    expectOutcome(await http('GET', `${srv.base}/Patient/_history?_since=${encodeURIComponent(since)}`), 400);
    expectOutcome(await http('GET', `${srv.base}/_history?_at=${encodeURIComponent(since)}`), 400);
  });

  it.each(['-1', 'abc', '1.5'])('_count=%s is a 400', async (count) => {
    expectOutcome(await http('GET', `${srv.base}/Patient/_history?_count=${count}`), 400);
  });

  it('a tampered or foreign _cursor is a 400', async () => {
    for (let i = 0; i < 3; i++) await create(patient());
    const page = await http('GET', `${srv.base}/Patient/_history?_count=1`);
    const next = new URL(page.body.link.find((l: { relation: string }) => l.relation === 'next').url);
    const cursor = next.searchParams.get('_cursor')!;
    expect(cursor).toBeTruthy();
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const [payload, signature] = cursor.split('.') as [string, string];
    const [ms] = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as [number, string];
    const tampered = [
      // Well-formed but forged: a position the server never issued, with the signature of another.
      `${b64([ms + 1, 'Patient/x/1'])}.${signature}`,
      `${b64([ms, 'Patient/zzz/1'])}.${signature}`,
      payload, // signature stripped
      cursor.slice(0, -3), // truncated
      `${cursor}!!`,
      'not-a-cursor',
      b64({ $gt: '' }),
      b64([ms, { $gt: '' }]),
      b64([{ $gt: 0 }, 'Patient/x/1']),
      b64([String(ms), 'Patient/x/1']),
      b64(['x']),
      Buffer.from('[1e999,"Patient/x/1"]').toString('base64url'),
    ];
    for (const c of tampered) {
      const res = await http('GET', `${srv.base}/Patient/_history?_count=1&_cursor=${encodeURIComponent(c)}`);
      expectOutcome(res, 400);
    }
    // The untouched cursor still works.
    expect((await http('GET', next.toString())).status).toBe(200);
  });
});
