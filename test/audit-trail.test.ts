/**
 * The audit trail over HTTP against the real engine: BALP AuditEvents for reads, searches, history,
 * $everything, writes (REST and Bundles), authorization failures, sign-ins and tokens; no secrets in them;
 * AuditEvents read-only and for auditors; Patient/$access-log for the patient only; the hash chain checked by
 * `npm run audit-verify`, which finds a record edited through the driver; retention to NDJSON; fail closed.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { http, startTestServer, type TestServer } from './support/server.js';
import { tokenRequest } from './support/auth.js';
import { authorize, pkce } from './support/browser.js';
import { expectOutcome } from './support/outcomes.js';
import { archiveOldAuditEvents } from '../src/audit/retention.js';
import { auditEvent, type EventSpec } from '../src/audit/events.js';
import { MAX_ENTITIES_PER_RECORD, MAX_REQUESTS_PER_RECORD, ReadAggregator } from '../src/audit/read-aggregator.js';
import { AuditStore } from '../src/audit/store.js';
import { ChainHead } from '../src/audit/chain.js';
import { ResourceIndexer } from '../src/fhir/search/indexer.js';
import { SearchParameterRegistry } from '../src/fhir/search/parameters.js';

const run = promisify(execFile);
const REDIRECT = 'http://app.example/callback';
const PASSWORD = 'Blue-Harbor-72!';
let srv: TestServer;
let appId: string;
let archiveDir: string;

beforeAll(async () => {
  archiveDir = await mkdtemp(join(tmpdir(), 'audit-archive-'));
  srv = await startTestServer({ AUDIT_FLUSH_MS: '50' }, { single: true });
  const app = await srv.running.auth.registerClient({ kind: 'public', redirect_uris: [REDIRECT], allowed_scopes: 'openid fhirUser offline_access patient/*.rs user/*.cruds', client_name: 'Audit test app' });
  appId = app.client_id as string;
}, 60_000);
afterAll(async () => {
  await srv?.close();
  await rm(archiveDir, { recursive: true, force: true });
});

async function signIn(email: string, scope = 'openid fhirUser user/*.cruds'): Promise<{ access_token: string; refresh_token?: string }> {
  const { verifier, challenge } = pkce();
  const issuer = srv.running.auth.issuer;
  const r = await authorize({
    issuer, email, password: PASSWORD,
    params: { response_type: 'code', client_id: appId, redirect_uri: REDIRECT, scope, state: 's', aud: srv.base, code_challenge: challenge, code_challenge_method: 'S256' },
  });
  const t = await tokenRequest(`${issuer}/token`, { grant_type: 'authorization_code', code: r.code!, redirect_uri: REDIRECT, code_verifier: verifier, client_id: appId });
  expect(t.status).toBe(200);
  return t.body;
}

let n = 0;
async function registerPatient(): Promise<{ email: string; fhirUser: string; id: string }> {
  const email = `audit${++n}.${Date.now()}@example.org`;
  const reg = await http('POST', `${srv.url}/auth/register`, { body: { email, password: PASSWORD, givenName: 'Audrey', familyName: 'Trail' }, headers: { 'content-type': 'application/json' }, token: false });
  expect(reg.status).toBe(201);
  return { email, fhirUser: reg.body.fhirUser, id: String(reg.body.fhirUser).split('/')[1]! };
}

const flush = () => srv.running.audit!.store.flush();

/** AuditEvents matching a search (as a system administrator would search them), after the write-behind flush. */
async function audits(query: string): Promise<any[]> {
  await flush();
  const res = await http('GET', `${srv.base}/AuditEvent?${query}&_count=200`);
  expect(res.status).toBe(200);
  return (res.body.entry ?? []).map((e: any) => e.resource);
}

const subtype = (e: any) => e.subtype?.[0]?.code;
const refs = (e: any) => (e.entity ?? []).map((x: any) => x.what?.reference).filter(Boolean);

async function createPatientWithObservation() {
  const p = await http('POST', `${srv.base}/Patient`, { body: { resourceType: 'Patient', name: [{ family: 'Audited' }] } });
  expect(p.status).toBe(201);
  const o = await http('POST', `${srv.base}/Observation`, { body: { resourceType: 'Observation', status: 'final', code: { text: 'hr' }, subject: { reference: `Patient/${p.body.id}` } } });
  expect(o.status).toBe(201);
  return { pid: p.body.id as string, oid: o.body.id as string };
}

describe('audit records', () => {
  it('writes are recorded with their version, in the same unit of work (no flush needed), with the patient', async () => {
    const { pid, oid } = await createPatientWithObservation();
    const docs = (await srv.running.audit!.store.collection.find({}).toArray()).filter((d) => d.json!.includes(`"Observation/${oid}/_history/1"`));
    expect(docs).toHaveLength(1);
    const e = JSON.parse(docs[0]!.json!);
    expect(e).toMatchObject({ resourceType: 'AuditEvent', action: 'C', outcome: '0', type: { code: 'rest' }, subtype: [{ system: 'http://hl7.org/fhir/restful-interaction', code: 'create' }] });
    expect(refs(e)).toEqual(expect.arrayContaining([`Patient/${pid}`, `Observation/${oid}/_history/1`]));
    expect(e.agent.some((a: any) => a.who?.identifier?.system === 'urn:medivoy:client-id' && a.who.identifier.value)).toBe(true);
    expect(e.source.observer.identifier.value).toBe(srv.running.audit!.writer);
    expect(e.entity.some((x: any) => x.type?.code === 'XrequestId')).toBe(true);
  });

  it('read, vread, search (query and patients), history and $everything are recorded; searchable by patient, type, subtype, outcome, date', async () => {
    const { pid, oid } = await createPatientWithObservation();
    expect((await http('GET', `${srv.base}/Patient/${pid}`)).status).toBe(200);
    expect((await http('GET', `${srv.base}/Observation/${oid}/_history/1`)).status).toBe(200);
    expect((await http('GET', `${srv.base}/Observation?subject=Patient/${pid}&code:text=hr`)).status).toBe(200);
    expect((await http('GET', `${srv.base}/Observation/${oid}/_history`)).status).toBe(200);
    expect((await http('GET', `${srv.base}/Patient/${pid}/$everything`)).status).toBe(200);
    const all = await audits(`patient=Patient/${pid}`);
    const kinds = all.map(subtype);
    expect(kinds).toEqual(expect.arrayContaining(['create', 'read', 'vread', 'search-type', 'history-instance', '$everything']));
    const search = all.find((e) => subtype(e) === 'search-type');
    const query = Buffer.from(search.entity.find((x: any) => x.role?.code === '24').query, 'base64').toString();
    expect(query).toContain(`subject=Patient%2F${pid}`);
    expect(refs(search)).toEqual(expect.arrayContaining([`Patient/${pid}`, `Observation/${oid}`]));
    expect(refs(all.find((e) => subtype(e) === '$everything'))).toEqual(expect.arrayContaining([`Patient/${pid}`, `Observation/${oid}`]));
    expect(all.every((e) => e.outcome === '0')).toBe(true);
    // The search parameters index them.
    expect((await audits(`patient=Patient/${pid}&subtype=http://hl7.org/fhir/restful-interaction|read`)).map(subtype)).toEqual(['read']);
    // (searching the trail about a patient is itself recorded as access to the patient's data)
    expect((await audits(`patient=Patient/${pid}&type=rest&outcome=0&date=ge${new Date(Date.now() - 3600_000).toISOString().slice(0, 10)}`)).length).toBeGreaterThanOrEqual(all.length);
    expect(await audits(`patient=Patient/${pid}&outcome=8`)).toEqual([]);
  });

  it('a Bulk Data export records what its background slices read: the query and every patient whose data went into a file', async () => {
    const { pid, oid } = await createPatientWithObservation();
    const headers = { accept: 'application/fhir+json', prefer: 'respond-async' };
    const kick = await http('GET', `${srv.base}/Patient/$export?_type=Observation&_typeFilter=${encodeURIComponent(`Observation?subject=Patient/${pid}`)}`, { headers });
    expect(kick.status).toBe(202);
    const statusUrl = kick.headers.get('content-location')!;
    let manifest: any;
    for (let i = 0; i < 600 && !manifest; i++) {
      const st = await http('GET', statusUrl, { headers: { accept: 'application/json' } });
      if (st.status === 200) manifest = st.body;
      else await new Promise((r) => setTimeout(r, 100));
    }
    expect(manifest.output.map((o: any) => o.type)).toEqual(['Observation']);
    const exported = (await audits(`patient=Patient/${pid}`)).filter((e) => subtype(e) === '$export');
    expect(exported.length).toBeGreaterThanOrEqual(1);
    expect(exported.every((e) => e.outcome === '0' && e.action === 'R')).toBe(true);
    expect(refs(exported[0])).toEqual(expect.arrayContaining([`Patient/${pid}`, `Observation/${oid}`]));
    const query = Buffer.from(exported[0].entity.find((x: any) => x.role?.code === '24').query, 'base64').toString();
    expect(query).toContain(pid);
  });

  it('Bundles: each write of a transaction is recorded; a failed transaction leaves void records and an intact chain', async () => {
    const p = await http('POST', `${srv.base}/Patient`, { body: { resourceType: 'Patient', name: [{ family: 'Bundled' }] } });
    const ok = await http('POST', srv.base, { body: { resourceType: 'Bundle', type: 'transaction', entry: [
      { fullUrl: 'urn:uuid:1', resource: { resourceType: 'Observation', status: 'final', code: { text: 'a' }, subject: { reference: `Patient/${p.body.id}` } }, request: { method: 'POST', url: 'Observation' } },
      { resource: { resourceType: 'Condition', subject: { reference: `Patient/${p.body.id}` }, code: { text: 'c' } }, request: { method: 'POST', url: 'Condition' } },
    ] } });
    expect(ok.status).toBe(200);
    const writes = await audits(`patient=Patient/${p.body.id}&subtype=create`);
    expect(writes.flatMap(refs)).toEqual(expect.arrayContaining([expect.stringMatching(/^Observation\/.+\/_history\/1$/), expect.stringMatching(/^Condition\/.+\/_history\/1$/)]));
    const bad = await http('POST', srv.base, { body: { resourceType: 'Bundle', type: 'transaction', entry: [
      { resource: { resourceType: 'Observation', status: 'final', code: { text: 'b' }, subject: { reference: `Patient/${p.body.id}` } }, request: { method: 'POST', url: 'Observation' } },
      // A patch of nothing: refused at write time, after the first entry's record was sealed.
      { resource: { resourceType: 'Binary', contentType: 'application/json-patch+json', data: Buffer.from(JSON.stringify([{ op: 'replace', path: '/status', value: 'amended' }])).toString('base64') }, request: { method: 'PATCH', url: 'Observation/does-not-exist' } },
    ] } });
    expect(bad.status).toBeGreaterThanOrEqual(400);
    expect((await audits(`patient=Patient/${p.body.id}&subtype=create`)).length).toBe(writes.length); // nothing of the failed one
    const requestId = bad.headers.get('x-request-id')!;
    const failed = (await audits('outcome=4')).filter((e) => JSON.stringify(e.entity).includes(requestId));
    // The failed transaction, and a void record for the entry whose record was rolled back with it.
    expect(failed.map(subtype).sort()).toEqual(['transaction', 'write-not-committed']);
    const { stdout } = await verifyScript();
    expect(stdout).toMatch(/all intact/);
  });

  it('authorization failures (401 without token, 403 out of scope) are recorded with outcome 4', async () => {
    const { pid } = await createPatientWithObservation();
    const a = await http('GET', `${srv.base}/Patient/${pid}`, { token: false });
    expect(a.status).toBe(401);
    const patient = await registerPatient();
    const t = await signIn(patient.email, 'openid fhirUser patient/*.rs');
    const denied = await http('POST', `${srv.base}/Observation`, { token: t.access_token, body: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: patient.fhirUser } } });
    expect(denied.status).toBe(403);
    const failures = await audits(`outcome=4&subtype=create,read`);
    expect(failures.some((e) => subtype(e) === 'read' && refs(e).includes(`Patient/${pid}`) && /HTTP 401/.test(e.outcomeDesc))).toBe(true);
    expect(failures.some((e) => subtype(e) === 'create' && /HTTP 403/.test(e.outcomeDesc) && e.agent.some((g: any) => g.who?.reference === patient.fhirUser))).toBe(true);
  });

  it('sign-in, failed sign-in, token issuance, refusal and revocation are recorded, and no password or token is stored', async () => {
    const patient = await registerPatient();
    const wrong = await authorize({ issuer: srv.running.auth.issuer, email: patient.email, password: 'Wrong-Password-1!', params: { response_type: 'code', client_id: appId, redirect_uri: REDIRECT, scope: 'openid', state: 's', aud: srv.base, code_challenge: pkce().challenge, code_challenge_method: 'S256' } }).catch(() => undefined);
    void wrong;
    const t = await signIn(patient.email, 'openid fhirUser offline_access patient/*.rs');
    const refused = await tokenRequest(`${srv.running.auth.issuer}/token`, { grant_type: 'authorization_code', code: 'not-a-code', redirect_uri: REDIRECT, code_verifier: 'x'.repeat(43), client_id: appId });
    expect(refused.status).toBe(400);
    const revoke = await fetch(`${srv.running.auth.issuer}/revoke`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: t.access_token, client_id: appId }) });
    expect(revoke.status).toBe(200);
    const auth = await audits('type=http://dicom.nema.org/resources/ontology/DCM|110114');
    const mine = auth.filter((e) => JSON.stringify(e.agent).includes(patient.fhirUser) || JSON.stringify(e.agent).includes(patient.email));
    expect(mine.some((e) => subtype(e) === '110122' && e.outcome === '0')).toBe(true);
    expect(mine.some((e) => subtype(e) === '110122' && e.outcome === '4' && /wrong e-mail or password/.test(e.outcomeDesc))).toBe(true);
    expect(auth.some((e) => subtype(e) === 'token-issued' && e.agent.some((g: any) => g.name === appId))).toBe(true);
    expect(auth.some((e) => subtype(e) === 'token-refused' && /invalid_grant/.test(e.outcomeDesc))).toBe(true);
    expect(auth.some((e) => subtype(e) === 'token-revoked')).toBe(true);
    const stored = (await srv.running.audit!.store.collection.find({}, { projection: { json: 1 } }).toArray()).map((d) => d.json).join('\n');
    expect(stored).not.toContain(PASSWORD);
    expect(stored).not.toContain('Wrong-Password-1!');
    expect(stored).not.toContain(t.access_token);
    if (t.refresh_token) expect(stored).not.toContain(t.refresh_token);
    expect(stored).not.toContain('"family":"Audited"'); // no resource bodies
  });
});

describe('reading the trail', () => {
  it('the plain-code AuditEvent index (src/audit/index-values.ts) equals the FHIRPath one for every record stored', async () => {
    await flush();
    const byFhirPath = new ResourceIndexer(new SearchParameterRegistry(), false).index;
    const sorted = (ix: Record<string, unknown>) => Object.fromEntries(['tk', 'st', 'sf', 'dt', 'dh', 'nm', 'so', 'sd'].map((k) => [k, Array.isArray(ix[k]) ? [...(ix[k] as string[])].sort() : ix[k]]));
    const docs = await srv.running.audit!.store.collection.find({}).toArray();
    expect(new Set(docs.map((d) => subtype(JSON.parse(d.json!)))).size).toBeGreaterThanOrEqual(10); // many kinds of record
    for (const d of docs) expect({ id: d._id, ...sorted(d as never) }).toEqual({ id: d._id, ...sorted(byFhirPath(JSON.parse(d.json!)) as never) });
  });

  it('AuditEvents cannot be created, updated or deleted through the API (405) and only auditors read them', async () => {
    const [one] = await audits('_count=1');
    expectOutcome(await http('PUT', `${srv.base}/AuditEvent/${one.id}`, { body: { ...one, outcome: '8' } }), 405);
    expectOutcome(await http('DELETE', `${srv.base}/AuditEvent/${one.id}`), 405);
    expectOutcome(await http('POST', `${srv.base}/AuditEvent`, { body: { ...one, id: undefined } }), 405);
    expect((await http('GET', `${srv.base}/AuditEvent/${one.id}`)).body.outcome).toBe(one.outcome);
    const patient = await registerPatient();
    const t = await signIn(patient.email, 'openid fhirUser patient/*.rs');
    expectOutcome(await http('GET', `${srv.base}/AuditEvent?patient=${patient.fhirUser}`, { token: t.access_token }), 403);
  });

  it('Patient/[id]/$access-log lists who accessed the patient, for that patient only (403 for others)', async () => {
    const patient = await registerPatient();
    const other = await registerPatient();
    // The system client reads both within one flush window (50 ms here; read together, and again should a
    // flush fall between them on a loaded machine): one aggregated record names both patients.
    let shared = false;
    for (let attempt = 0; attempt < 10 && !shared; attempt++) {
      const reads = await Promise.all([patient.id, other.id].map((id) => http('GET', `${srv.base}/Patient/${id}`)));
      expect(reads.map((r) => r.status)).toEqual([200, 200]);
      await flush();
      shared = (await audits(`patient=Patient/${patient.id}&subtype=read`)).some((e) => refs(e).includes(`Patient/${other.id}`));
    }
    expect(shared).toBe(true);
    const t = await signIn(patient.email, 'openid fhirUser patient/*.rs');
    const log = await http('GET', `${srv.base}/Patient/${patient.id}/$access-log`, { token: t.access_token });
    expect(log.status).toBe(200);
    expect(log.body).toMatchObject({ resourceType: 'Bundle', type: 'searchset' });
    const events = log.body.entry.map((e: any) => e.resource);
    expect(events.some((e: any) => subtype(e) === 'read' && e.agent.some((g: any) => g.who?.identifier?.system === 'urn:medivoy:client-id'))).toBe(true);
    expect(events.every((e: any) => refs(e).includes(`Patient/${patient.id}`) || e.agent.some((g: any) => g.who?.reference === `Patient/${patient.id}`))).toBe(true);
    expect(JSON.stringify(events)).not.toMatch(/"network"/);
    // Nothing about anyone else, though the system client's record also names the other patient.
    expect(JSON.stringify(events)).not.toContain(other.id);
    expect(events.every((e: any) => e.entity.every((x: any) => x.what.reference.startsWith(`Patient/${patient.id}`)))).toBe(true);
    expectOutcome(await http('GET', `${srv.base}/Patient/${other.id}/$access-log`, { token: t.access_token }), 403);
  });
});

describe('record building (no database)', () => {
  it('aggregated reads: a record closes at MAX_ENTITIES_PER_RECORD distinct entities, every read resource listed, the rest at the next flush', () => {
    const specs: EventSpec[] = [];
    const agg = new ReadAggregator((s) => specs.push(s));
    const actor = { clientId: 'c1', ip: '10.0.0.1' };
    // 7 patients, then one new Observation per read: the 7 patients and 243 Observations make 250 entities.
    const n = MAX_ENTITIES_PER_RECORD + 10;
    for (let i = 0; i < n; i++) agg.add('read', actor, `r${i}`, [`Observation/o${i}`], [`p${i % 7}`]);
    agg.add('read', { clientId: 'c2' }, 'other', ['Observation/x'], []);
    expect(specs).toHaveLength(1);
    agg.drain();
    const first = MAX_ENTITIES_PER_RECORD - 7;
    expect(specs.map((s) => s.requestIds?.length)).toEqual([first, n - first, 1]);
    const record = auditEvent(specs[0]!, { site: '', observer: 'w' });
    const listed = record.entity!.filter((e) => e.what?.reference?.startsWith('Observation/')).map((e) => e.what!.reference);
    expect(listed).toEqual(Array.from({ length: first }, (_, i) => `Observation/o${i}`));
    expect(record.outcomeDesc).toBeUndefined();
    expect(record.entity!.filter((e) => e.what?.reference?.startsWith('Patient/'))).toHaveLength(7);
    expect(record.entity!.filter((e) => e.what?.reference)).toHaveLength(MAX_ENTITIES_PER_RECORD);
  });

  it('aggregated reads: the same patient read again adds its request, not an entity; MAX_REQUESTS_PER_RECORD requests close a record', () => {
    const specs: EventSpec[] = [];
    const agg = new ReadAggregator((s) => specs.push(s));
    const actor = { clientId: 'c1' };
    for (let i = 0; i < MAX_REQUESTS_PER_RECORD + 5; i++) agg.add('read', actor, `r${i}`, [`Patient/p${i % 3}`], [`p${i % 3}`]);
    expect(specs).toHaveLength(1);
    agg.drain();
    expect(specs.map((s) => s.requestIds?.length)).toEqual([MAX_REQUESTS_PER_RECORD, 5]);
    const record = auditEvent(specs[0]!, { site: '', observer: 'w' });
    // Three patients, each named once (a Patient read is named as the patient, not again as a resource).
    expect(record.entity!.filter((e) => e.what?.reference).map((e) => e.what!.reference).sort()).toEqual(['Patient/p0', 'Patient/p1', 'Patient/p2']);
    expect(record.entity!.find((e) => e.detail)?.detail?.[0]?.valueString?.split(' ')).toHaveLength(MAX_REQUESTS_PER_RECORD);
  });

  it('a search record still lists at most 50 resources and says how many more there were', () => {
    const e = auditEvent({ type: { code: 'rest' }, subtype: { code: 'search-type' }, action: 'E', outcome: '0', actor: {}, resources: Array.from({ length: 60 }, (_, i) => `Observation/o${i}`) }, { site: '', observer: 'w' });
    expect(e.entity!.filter((x) => x.what?.reference?.startsWith('Observation/'))).toHaveLength(50);
    expect(e.outcomeDesc).toBe('10 more resources not listed');
  });

  it('records are made storable only where needed: NUL and lone surrogates become U+FFFD, pairs and the rest untouched', () => {
    const store = new AuditStore({ collections: {} as never, indexer: () => ({ tk: [], st: [], sf: [], dt: [], dh: [], nm: [], so: {}, sd: {} }) as never, writer: 'w', flushMs: 1000, flushRecords: 10, logger: console as never });
    const chain = new ChainHead('t:r', undefined);
    const spec = (ip: string): EventSpec => ({ type: { code: 'rest' }, subtype: { code: 'read' }, action: 'R', outcome: '0', actor: { ip, clientId: 'c' } });
    const clean = auditEvent(spec('10.0.0.1 \\u0000 \u{1F600}'), { site: '', observer: 'w' });
    expect(store.toDoc(clean, chain).json).toBe(JSON.stringify(clean));
    const dirty = auditEvent(spec('a\u0000b\uD800c\uDC00d\u{1F600}'), { site: '', observer: 'w' });
    const stored = JSON.parse(store.toDoc(dirty, chain).json!);
    expect(stored.agent[0]?.network?.address).toBe('a\uFFFDb\uFFFDc\uFFFDd\u{1F600}');
  });
});

async function storeBreaker(): Promise<{ breakStore: () => Promise<void>; repair: () => Promise<void> }> {
  const db = srv.running.mongo.db;
  if (!srv.running.mongo.isFerretDB) {
    return {
      breakStore: async () => void (await db.command({ collMod: 'fhir_AuditEvent', validator: { _id: { $exists: false } }, validationAction: 'error' })),
      repair: async () => void (await db.command({ collMod: 'fhir_AuditEvent', validator: {} })),
    };
  }
  const url = process.env.FERRETDB_POSTGRES_URL;
  if (!url) throw new Error("on FerretDB this test breaks the audit table in its PostgreSQL: set FERRETDB_POSTGRES_URL");
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const schema = db.databaseName;
  const table = (await client.query(`SELECT _jsonb->>'table' AS t FROM "${schema}"._ferretdb_database_metadata WHERE _jsonb->>'_id' = 'fhir_AuditEvent'`)).rows[0].t as string;
  let broken = false;
  return {
    breakStore: async () => {
      await client.query(`ALTER TABLE "${schema}"."${table}" ADD CONSTRAINT audit_store_down CHECK (false) NOT VALID`);
      broken = true;
    },
    repair: async () => {
      if (broken) await client.query(`ALTER TABLE "${schema}"."${table}" DROP CONSTRAINT audit_store_down`);
      broken = false;
      await client.end().catch(() => undefined);
    },
  };
}

function verifyScript(): Promise<{ stdout: string; code: number }> {
  return run('node', ['--import', 'tsx', 'scripts/audit-verify.ts'], { env: { ...process.env, MONGODB_DB: srv.running.mongo.db.databaseName, LOG_LEVEL: 'silent' } })
    .then((r) => ({ stdout: r.stdout, code: 0 }))
    .catch((err: { stdout: string; code: number }) => ({ stdout: err.stdout, code: err.code }));
}

describe('tamper evidence and retention', () => {
  it('npm run audit-verify passes, then finds the one record edited through the driver', async () => {
    await createPatientWithObservation();
    await flush();
    const ok = await verifyScript();
    expect(ok).toMatchObject({ code: 0 });
    expect(ok.stdout).toMatch(/all intact/);
    const col = srv.running.audit!.store.collection;
    const victim = (await col.find({ ac: srv.running.audit!.store.readChain.id }).sort({ as: 1 }).limit(3).toArray())[2]!;
    await col.updateOne({ _id: victim._id }, { $set: { json: victim.json!.replace('"outcome":"0"', '"outcome":"4"') } });
    const bad = await verifyScript();
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain(`BROKEN chain ${victim.ac} at position ${victim.as}: record ${victim._id} was modified`);
    await col.updateOne({ _id: victim._id }, { $set: { json: victim.json } });
    // Removing a record is found too.
    await col.deleteOne({ _id: victim._id });
    const gap = await verifyScript();
    expect(gap.stdout).toContain(`at position ${victim.as}: record ${victim.as} is missing`);
    await col.insertOne(victim);
  }, 60_000);

  it('the retention job archives old AuditEvents to NDJSON and removes them; the chains still verify', async () => {
    await flush();
    const col = srv.running.audit!.store.collection;
    const before = await col.countDocuments({});
    const moved = await archiveOldAuditEvents({ db: srv.running.mongo.db, collection: col, days: 0, dir: archiveDir, logger: { info: () => undefined } as never, now: new Date(Date.now() + 1000) });
    expect(moved).toBeGreaterThanOrEqual(before);
    const files = await readdir(archiveDir);
    const lines = (await Promise.all(files.filter((f) => !f.endsWith('.chain.ndjson')).map((f) => readFile(join(archiveDir, f), 'utf8')))).join('').trim().split('\n');
    expect(lines.length).toBe(moved);
    expect(JSON.parse(lines[0]!).resourceType).toBe('AuditEvent');
    expect(await col.countDocuments({ lu: { $lt: new Date(Date.now() - 5000) } })).toBe(0);
    const { stdout } = await verifyScript();
    expect(stdout).toMatch(/all intact/);
  }, 60_000);

  it('a failing audit store makes patient-data requests fail closed with 503, and they are served again once it recovers', async () => {
    const { pid } = await createPatientWithObservation();
    await flush();
    // Break the audit collection for real: a CHECK constraint on FerretDB's PostgreSQL table, a validator on MongoDB.
    const { breakStore, repair } = await storeBreaker();
    try {
      await breakStore();
      const queued = await http('GET', `${srv.base}/Patient/${pid}`); // its record is queued
      expect(queued.status).toBe(200);
      await flush();
      expect(srv.running.audit!.store.healthy).toBe(false);
      expectOutcome(await http('GET', `${srv.base}/Patient/${pid}`), 503);
      await repair();
      await flush();
      expect(srv.running.audit!.store.healthy).toBe(true);
      expect((await http('GET', `${srv.base}/Patient/${pid}`)).status).toBe(200);
      // The queued record was kept and stored once the store came back.
      const reads = await audits(`patient=Patient/${pid}&subtype=read`);
      expect(JSON.stringify(reads)).toContain(queued.headers.get('x-request-id')!);
    } finally {
      await repair().catch(() => undefined);
    }
  }, 60_000);
});
