import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { CapabilityStatement, CapabilityStatementRestResource } from '@medplum/fhirtypes';
import { http, startTestServer, type HttpResult, type TestServer } from './support/server.js';
import { expectOutcome, historyTotal } from './support/outcomes.js';
import { appointment, coverage, invoice, jsonPatch, observation, patient } from './support/factories.js';
import { deriveCapabilityStatement, SERVER_WRITTEN_TYPES } from '../src/fhir/capability.js';
import { getResourceTypes } from '../src/fhir/definitions.js';
import { serverRoutes } from '../src/fhir/rest/routes.js';
import { declaredOperations } from '../src/business-operations.js';

let srv: TestServer;
let served: CapabilityStatement;
beforeAll(async () => {
  srv = await startTestServer();
  const res = await http('GET', `${srv.base}/metadata`);
  expect(res.status).toBe(200);
  served = res.body;
});
afterAll(async () => {
  await srv?.close();
});

const ROOT = new URL('..', import.meta.url);
/** Every route a server serves: the core interactions and the registered business operations. */
const routes = serverRoutes(declaredOperations());
const VERSION = JSON.parse(readFileSync(new URL('package.json', ROOT), 'utf8')).version as string;
const EXAMPLES = dirname(createRequire(import.meta.url).resolve('hl7.fhir.r4.examples/package.json'));

/** The R4 (4.0.1) resource types, from the official ResourceType code system rather than from our own code. */
function officialR4ResourceTypes(): string[] {
  const cs = JSON.parse(readFileSync(join(EXAMPLES, 'CodeSystem-resource-types.json'), 'utf8')) as { concept: { code: string }[] };
  return cs.concept.map((c) => c.code).filter((c) => c !== 'Resource' && c !== 'DomainResource').sort();
}

describe('health', () => {
  it('/health reports liveness', async () => {
    const res = await http('GET', `${srv.url}/health`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/json/);
    expect(res.body).toEqual({ status: 'ok', timestamp: expect.any(String), uptime: expect.any(Number), environment: 'test', version: VERSION });
    expect(new Date(res.body.timestamp).toISOString()).toBe(res.body.timestamp);
    expect(res.body.uptime).toBeGreaterThanOrEqual(0);
  });

  it('/ready (and /health/ready) checks start-up, MongoDB and Redis', async () => {
    for (const path of ['/ready', '/health/ready']) {
      const res = await http('GET', `${srv.url}${path}`);
      expect(res.status).toBe(200);
      expect(res.body.status).toBe('ready');
      expect(res.body.startup).toBe('complete');
      expect(res.body.checks).toEqual({ mongodb: 'up', redis: 'up' });
      expect(res.body.reason).toBeUndefined();
    }
  });

  it('/health/ready is a 503 naming the dependency that is down', async () => {
    // Breaks this one process's own connections, so it talks to that process directly (also under TEST_SERVERS=2).
    const broken = await startTestServer({}, { single: true });
    try {
      await broken.running.mongo.client.close();
      const res = await http('GET', `${broken.url}/ready`);
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('5');
      expect(res.body.checks).toEqual({ mongodb: 'down', redis: 'up' });
      expect(res.body.reason).toBe('mongodb is not reachable');
      await broken.running.kv.close();
      const both = await http('GET', `${broken.url}/ready`);
      expect(both.body.checks).toEqual({ mongodb: 'down', redis: process.env.REDIS_URL ? 'down' : 'up' });
      // Liveness does not depend on the database.
      expect((await http('GET', `${broken.url}/health`)).status).toBe(200);
    } finally {
      await broken.close();
    }
  });
});

describe('CapabilityStatement', () => {
  it('is served at /metadata with the version, the FHIR base and every R4 resource type', async () => {
    expect(served.resourceType).toBe('CapabilityStatement');
    expect(served.fhirVersion).toBe('4.0.1');
    expect(served.kind).toBe('instance');
    expect(served.status).toBe('active');
    expect(served.implementation?.url).toBe(srv.base);
    expect(served.software?.version).toBe(VERSION);
    expect(served.format).toEqual(expect.arrayContaining(['application/fhir+json']));
    expect(served.rest).toHaveLength(1);
    expect(served.rest![0]!.mode).toBe('server');
    const types = served.rest![0]!.resource!.map((r) => r.type).sort();
    expect(types).toEqual(officialR4ResourceTypes());
  });

  it('capability-statement.json is what the route table implies', () => {
    const file = JSON.parse(readFileSync(new URL('capability-statement.json', ROOT), 'utf8')) as CapabilityStatement;
    const derived = deriveCapabilityStatement(getResourceTypes(), declaredOperations(), file);
    try {
      expect(file).toEqual(derived);
    } catch (err) {
      throw new Error(
        `capability-statement.json is stale: the route table (src/fhir/rest/routes.ts), the registered operations (src/business-operations.ts) or the resource types changed. ` +
          `Run \`npm run capability\` to regenerate it, then review the diff.\n\n${(err as Error).message}`,
      );
    }
    // What /metadata serves is that file plus facts of this running instance (the SMART endpoint URLs).
    const { extension: _urls, ...security } = served.rest![0]!.security!;
    expect([{ ...served.rest![0], security }]).toEqual(file.rest);
  });

  it('serves the OperationDefinition of every declared business operation at its canonical', async () => {
    const canonicals = new Set<string>();
    for (const r of served.rest![0]!.resource!) for (const op of r.operation ?? []) if (op.definition.startsWith('http://medivoy.example/')) canonicals.add(op.definition);
    for (const op of served.rest![0]!.operation ?? []) if (op.definition.startsWith('http://medivoy.example/')) canonicals.add(op.definition);
    expect(canonicals.size).toBeGreaterThanOrEqual(12);
    for (const canonical of canonicals) {
      const id = canonical.split('/').pop()!;
      const res = await http('GET', `${srv.base}/OperationDefinition/${id}`);
      expect({ canonical, status: res.status, url: res.body?.url }).toEqual({ canonical, status: 200, url: canonical });
      // --- bulk: begin (system-level operations: the id is the operation's name, no resource) ---
      if (res.body.system) {
        expect(res.body.code).toBe(id);
        expect(res.body.resource).toBeUndefined();
        continue;
      }
      // --- bulk: end ---
      const [type, ...name] = id.split('-');
      expect(res.body.code).toBe(name.join('-'));
      expect(res.body.resource).toEqual([type]);
    }
    // Found by canonical too, as clients look them up.
    const byUrl = await http('GET', `${srv.base}/OperationDefinition?url=${encodeURIComponent('http://medivoy.example/fhir/OperationDefinition/Appointment-book')}`);
    expect(byUrl.body.entry?.map((e: any) => e.resource.id)).toEqual(['Appointment-book']);
  });

  it('declares every route of the interaction table (nothing served is undeclared)', () => {
    const rest = served.rest![0]!;
    const systemCodes = (rest.interaction ?? []).map((i) => i.code);
    expect(rest.resource!.length).toBeGreaterThan(100);
    for (const route of routes) {
      const where = `${route.method} /${route.pattern.join('/')}`;
      if (route.pattern[0] !== ':type') {
        if (route.interaction === 'capabilities') continue; // the statement itself is its declaration
        // --- bulk: begin (system-level operations are declared in rest.operation) ---
        if (route.interaction === 'operation') {
          expect({ where, declared: (rest.operation ?? []).some((o) => o.name === route.operation) }).toEqual({ where, declared: true });
          continue;
        }
        // --- bulk: end ---
        for (const code of [route.interaction, ...(route.alsoDeclares ?? [])]) expect({ where, declared: systemCodes.includes(code as never) }).toEqual({ where, declared: true });
        continue;
      }
      for (const resource of rest.resource!) {
        let declared: boolean;
        // Types only the server writes (AuditEvent) declare read and search; their other interactions answer 405.
        if (SERVER_WRITTEN_TYPES.has(resource.type!) && !route.operation && !['read', 'search-type'].includes(route.interaction)) continue;
        // (An operation of one name may be served for a type at another level: $export is Patient type-level and Group instance-level. --- bulk ---)
        if (route.operation && route.types && !route.types.includes(resource.type!)) declared = !(resource.operation ?? []).some((o) => o.name === route.operation) || routes.some((r) => r.operation === route.operation && r.types?.includes(resource.type!));
        else if (route.operation) declared = (resource.operation ?? []).some((o) => o.name === route.operation);
        else if (route.conditional && route.interaction === 'update') declared = resource.conditionalUpdate === true;
        else if (route.conditional && route.interaction === 'delete') declared = resource.conditionalDelete === 'single' || resource.conditionalDelete === 'multiple';
        else declared = (resource.interaction ?? []).some((i) => i.code === route.interaction);
        expect({ where, type: resource.type, declared }).toEqual({ where, type: resource.type, declared: true });
      }
    }
  });
});

/** A deterministic PRNG so that a failing sample can be replayed with CAPABILITY_SAMPLE_SEED. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Types whose writes the product's own rules decide beyond validity, so an official example is refused by design
 * (a Subscription's endpoint must be on the allow-list, which the examples' are not); their own tests cover them.
 */
const RULED = new Set(['Subscription']);
const SEED = Number(process.env.CAPABILITY_SAMPLE_SEED ?? Date.now() % 1_000_000);
const FIXED: Record<string, Record<string, unknown>> = { Patient: patient(), Observation: observation(), Appointment: appointment(), Coverage: coverage(), Invoice: invoice() };

/**
 * The sample: the five core types with factory resources, and five random others with an official example
 * that the server itself says is valid (an example the validator rejects is skipped: that is the validator's
 * business, not this test's).
 */
async function sample(): Promise<{ type: string; resource: Record<string, unknown>; source: string }[]> {
  const picked = Object.entries(FIXED).map(([type, resource]) => ({ type, resource, source: 'factory' }));
  const files = readdirSync(EXAMPLES).filter((f) => /^[A-Z][A-Za-z]+-.+\.json$/.test(f)).sort();
  const declared = new Set(served.rest![0]!.resource!.map((r) => r.type as string));
  const random = mulberry32(SEED);
  // Types clients may create (AuditEvent is written by the server only and declared read/search).
  const creatable = new Set(served.rest![0]!.resource!.filter((r) => r.interaction?.some((i) => i.code === 'create')).map((r) => r.type as string));
  const candidates = [...declared].filter((t) => !(t in FIXED) && creatable.has(t) && !RULED.has(t) && files.some((f) => f.startsWith(`${t}-`)));
  while (picked.length < 10 && candidates.length) {
    const type = candidates.splice(Math.floor(random() * candidates.length), 1)[0]!;
    for (const file of files.filter((f) => f.startsWith(`${type}-`))) {
      const { id: _id, meta: _meta, ...resource } = JSON.parse(readFileSync(join(EXAMPLES, file), 'utf8'));
      if (resource.resourceType !== type) continue;
      const outcome = await http('POST', `${srv.base}/${type}/$validate`, { body: resource });
      if (outcome.status === 200 && !outcome.body.issue.some((i: { severity: string }) => i.severity === 'error' || i.severity === 'fatal')) {
        picked.push({ type, resource, source: file });
        break;
      }
    }
  }
  return picked;
}

const ok = (res: HttpResult, status: number, what: string) => expect({ what, status: res.status, body: res.text.slice(0, 400) }).toMatchObject({ what, status });

describe(`every declared interaction is served (sample seed ${SEED})`, () => {
  it('for the core types and five random others', async () => {
    const types = await sample();
    expect(types).toHaveLength(10);
    const rest = served.rest![0]!;
    // Types are independent: probe them side by side (each write on FerretDB takes a while).
    await Promise.all(types.map(async ({ type, resource, source }) => {
      const decl = rest.resource!.find((r) => r.type === type) as CapabilityStatementRestResource;
      const base = `${srv.base}/${type}`;
      const what = (s: string) => `${type} (${source}): ${s}`;
      const create = async () => {
        const res = await http('POST', base, { body: resource });
        ok(res, 201, what('create'));
        return res.body as { id: string };
      };
      const { id } = await create();
      const seen = new Set<string>();
      const probes: Record<string, () => Promise<void>> = {
        read: async () => {
          const res = await http('GET', `${base}/${id}`);
          ok(res, 200, what('read'));
          expect(res.body.id).toBe(id);
        },
        vread: async () => ok(await http('GET', `${base}/${id}/_history/1`), 200, what('vread')),
        update: async () => {
          const current = (await http('GET', `${base}/${id}`)).body;
          ok(await http('PUT', `${base}/${id}`, { body: current }), 200, what('update'));
        },
        patch: async () => {
          const res = await http('PATCH', `${base}/${id}`, jsonPatch([{ op: 'add', path: '/language', value: 'en' }]));
          ok(res, 200, what('patch'));
          expect(res.body.language).toBe('en');
        },
        delete: async () => {
          const other = await create();
          ok(await http('DELETE', `${base}/${other.id}`), 200, what('delete'));
          ok(await http('GET', `${base}/${other.id}`), 410, what('read after delete'));
        },
        'history-instance': async () => ok(await http('GET', `${base}/${id}/_history`), 200, what('history-instance')),
        'history-type': async () => ok(await http('GET', `${base}/_history`), 200, what('history-type')),
        create: async () => undefined, // done above
        'search-type': async () => {
          const res = await http('GET', `${base}?_id=${id}`);
          ok(res, 200, what('search-type'));
          expect(res.body.entry.map((e: { resource: { id: string } }) => e.resource.id)).toEqual([id]);
        },
      };
      for (const { code } of decl.interaction ?? []) {
        const probe = probes[code];
        if (!probe) throw new Error(`${type} declares '${code}' but this test has no probe for it: add one`);
        await probe();
        seen.add(code);
      }
      expect(seen).toEqual(new Set(Object.keys(probes)));

      if (decl.updateCreate) ok(await http('PUT', `${base}/cap-${id.slice(0, 8)}`, { body: { ...resource, id: `cap-${id.slice(0, 8)}` } }), 201, what('update-as-create'));
      if (decl.conditionalCreate) {
        const res = await http('POST', base, { body: resource, headers: { 'if-none-exist': `_id=${id}` } });
        ok(res, 200, what('conditional create'));
        expect(res.body.id).toBe(id);
      }
      if (decl.conditionalRead === 'full-support' || decl.conditionalRead === 'modified-since' || decl.conditionalRead === 'not-match') {
        const current = await http('GET', `${base}/${id}`);
        if (decl.conditionalRead !== 'modified-since') ok(await http('GET', `${base}/${id}`, { headers: { 'if-none-match': current.headers.get('etag')! } }), 304, what('If-None-Match'));
        if (decl.conditionalRead !== 'not-match') ok(await http('GET', `${base}/${id}`, { headers: { 'if-modified-since': current.headers.get('last-modified')! } }), 304, what('If-Modified-Since'));
      }
      if (decl.versioning === 'versioned-update') {
        const current = (await http('GET', `${base}/${id}`)).body;
        ok(await http('PUT', `${base}/${id}`, { body: current, headers: { 'if-match': 'W/"999"' } }), 412, what('stale If-Match'));
      }
      if (decl.readHistory) ok(await http('GET', `${base}/${id}/_history/1`), 200, what('readHistory'));
      for (const op of decl.operation ?? []) {
        if (op.name === 'everything') {
          const everything = await http('GET', `${base}/${id}/$everything`);
          ok(everything, 200, what('$everything'));
          expect(everything.body.entry[0].resource.id).toBe(id);
          continue;
        }
        if (op.name !== 'validate') {
          // Workflow operations (scheduling, reviews) have their own suites; here: each declared route is
          // served (an answer of the operation itself, never a 404/405 for a missing route, never a 5xx).
          const served = routes.filter((r) => r.operation === op.name && (!r.types || r.types.includes(type)));
          if (!served.length) throw new Error(`${type} declares $${op.name} but no route serves it`);
          for (const r of served) {
            const url = `${base}${r.pattern.includes(':id') ? `/${id}` : ''}/$${op.name}`;
            const res = await http(r.method, url, r.method === 'POST' ? { body: { resourceType: 'Parameters', parameter: [] } } : {});
            const answered = [200, 201, 400, 403, 404, 409, 422].includes(res.status) && typeof res.body?.resourceType === 'string';
            expect({ route: `${r.method} ${url}`, status: res.status, answered }).toEqual({ route: `${r.method} ${url}`, status: res.status, answered: true });
          }
          continue;
        }
        const res = await http('POST', `${base}/$validate`, { body: resource });
        ok(res, 200, what('$validate'));
        expect(res.body.resourceType).toBe('OperationOutcome');
        ok(await http('POST', `${base}/${id}/$validate`, { body: { ...resource, id } }), 200, what('instance $validate'));
      }
      if (decl.conditionalUpdate) {
        const current = (await http('GET', `${base}/${id}`)).body;
        const res = await http('PUT', `${base}?_id=${id}`, { body: current });
        ok(res, 200, what('conditional update'));
        expect(res.body.id).toBe(id);
      }
      if (decl.conditionalDelete === 'single' || decl.conditionalDelete === 'multiple') {
        ok(await http('DELETE', `${base}?_id=${id}`), 200, what('conditional delete'));
        ok(await http('GET', `${base}/${id}`), 410, what('read after conditional delete'));
      }
    }));

    const systemProbes: Record<string, () => Promise<void>> = {
      'search-system': async () => {
        const made = (await http('POST', `${srv.base}/Patient`, { body: patient() })).body;
        for (const res of [await http('GET', `${srv.base}?_type=Patient&_id=${made.id}`), await http('POST', `${srv.base}/_search`, { raw: `_type=Patient&_id=${made.id}`, headers: { 'content-type': 'application/x-www-form-urlencoded' } })]) {
          ok(res, 200, 'search-system');
          expect(res.body.type).toBe('searchset');
          expect(res.body.entry.map((e: { resource: { id: string } }) => e.resource.id)).toEqual([made.id]);
        }
      },
      'history-system': async () => {
        const res = await http('GET', `${srv.base}/_history`);
        ok(res, 200, 'history-system');
        expect(res.body.type).toBe('history');
      },
      transaction: async () => {
        const res = await http('POST', srv.base, { body: { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: patient(), request: { method: 'POST', url: 'Patient' } }] } });
        ok(res, 200, 'transaction');
        expect(res.body.type).toBe('transaction-response');
        expect(res.body.entry[0].response.status).toMatch(/^201/);
      },
      batch: async () => {
        const res = await http('POST', srv.base, { body: { resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: 'metadata' } }] } });
        ok(res, 200, 'batch');
        expect(res.body.type).toBe('batch-response');
        expect(res.body.entry[0].response.status).toMatch(/^200/);
      },
    };
    for (const { code } of rest.interaction ?? []) {
      const probe = systemProbes[code];
      if (!probe) throw new Error(`The server declares system interaction '${code}' but this test has no probe for it: add one`);
      await probe();
    }
    expect((rest.interaction ?? []).map((i) => i.code)).toContain('history-system');
  });
});

describe('$validate', () => {
  it('returns an OperationOutcome for a valid and an invalid resource and stores nothing', async () => {
    const before = await historyTotal(srv.base, 'Patient');
    const valid = await http('POST', `${srv.base}/Patient/$validate`, { body: patient({ id: 'not-stored' }) });
    expect(valid.status).toBe(200);
    expect(valid.body.resourceType).toBe('OperationOutcome');
    expect(valid.body.issue.filter((i: { severity: string }) => i.severity === 'error' || i.severity === 'fatal')).toEqual([]);

    const invalid = await http('POST', `${srv.base}/Patient/$validate`, { body: patient({ gender: 42, shoeSize: 44 }) });
    expect(invalid.status).toBe(200);
    expect(invalid.body.resourceType).toBe('OperationOutcome');
    const errors = invalid.body.issue.filter((i: { severity: string }) => i.severity === 'error');
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.flatMap((i: { expression?: string[] }) => i.expression ?? []).join(' ')).toMatch(/gender|shoeSize/);

    const wrapped = await http('POST', `${srv.base}/Patient/$validate`, { body: { resourceType: 'Parameters', parameter: [{ name: 'resource', resource: patient({ active: 'nope' }) }] } });
    expect(wrapped.status).toBe(200);
    expect(wrapped.body.issue.some((i: { severity: string }) => i.severity === 'error')).toBe(true);

    expect(await historyTotal(srv.base, 'Patient')).toBe(before);
    expect((await http('GET', `${srv.base}/Patient/not-stored`)).status).toBe(404);
  });

  it('validates against an existing instance without changing it', async () => {
    const c = await http('POST', `${srv.base}/Patient`, { body: patient() });
    const id = c.body.id;
    const ok1 = await http('POST', `${srv.base}/Patient/${id}/$validate`, { body: { ...c.body, active: true } });
    expect(ok1.status).toBe(200);
    expect(ok1.body.resourceType).toBe('OperationOutcome');
    expect(ok1.body.issue.some((i: { severity: string }) => i.severity === 'error')).toBe(false);
    const bad = await http('POST', `${srv.base}/Patient/${id}/$validate`, { body: { ...c.body, birthDate: 'last tuesday' } });
    expect(bad.status).toBe(200);
    expect(bad.body.issue.some((i: { severity: string }) => i.severity === 'error')).toBe(true);
    expectOutcome(await http('POST', `${srv.base}/Patient/${id}/$validate`, { body: { ...c.body, id: 'someone-else' } }), 400);
    expectOutcome(await http('POST', `${srv.base}/Patient/$validate`, { body: observation() }), 400);
    expect(await historyTotal(srv.base, 'Patient', id)).toBe(1);
    expect((await http('GET', `${srv.base}/Patient/${id}`)).body).toEqual(c.body);
  });
});
