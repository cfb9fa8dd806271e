/**
 * Real FHIR client libraries against the protected API with a SMART Backend Services token: fhir-kit-client
 * (Vermonster) and @medplum/core's MedplumClient, each doing create, read, search with paging, a transaction
 * and reading the CapabilityStatement, as an integrating system would.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Client } from 'fhir-kit-client';
import { MedplumClient } from '@medplum/core';
import { startTestServer, type TestServer } from './support/server.js';
import { backendToken, registerBackendClient } from './support/auth.js';

let srv: TestServer;
let token: string;
let readOnlyToken: string;

beforeAll(async () => {
  srv = await startTestServer();
  const c = await registerBackendClient(srv.running, 'system/Patient.cruds system/Observation.cruds', 'RS384');
  token = (await backendToken(srv.running, c, 'system/Patient.cruds system/Observation.cruds')).access_token;
  const ro = await registerBackendClient(srv.running, 'system/Patient.rs');
  readOnlyToken = (await backendToken(srv.running, ro, 'system/Patient.rs')).access_token;
}, 60_000);
afterAll(async () => {
  await srv?.close();
});

const patient = (family: string, given: string) => ({ resourceType: 'Patient', name: [{ family, given: [given] }], birthDate: '1980-02-03' });

describe('fhir-kit-client', () => {
  it('discovers the SMART endpoints and reads the CapabilityStatement', async () => {
    const client = new Client({ baseUrl: srv.base, bearerToken: token });
    const meta = await client.smartAuthMetadata();
    expect(String(meta.tokenUrl)).toBe(`${srv.running.auth.issuer}/token`);
    expect(String(meta.authorizeUrl)).toBe(`${srv.running.auth.issuer}/authorize`);
    const cs: any = await client.capabilityStatement();
    expect(cs.resourceType).toBe('CapabilityStatement');
    expect(cs.fhirVersion).toBe('4.0.1');
    expect(cs.rest[0].resource.find((r: any) => r.type === 'Patient').interaction.map((i: any) => i.code)).toEqual(expect.arrayContaining(['read', 'create', 'search-type']));
  });

  it('creates, reads, searches page by page and runs a transaction', async () => {
    const client = new Client({ baseUrl: srv.base, bearerToken: token });
    const family = `Kit${randomBytes(4).toString('hex')}`;
    const created: any = await client.create({ resourceType: 'Patient', body: patient(family, 'Ann') });
    expect(created.id).toEqual(expect.any(String));
    expect(created.meta.versionId).toBe('1');
    const read: any = await client.read({ resourceType: 'Patient', id: created.id });
    expect(read.name[0].family).toBe(family);

    for (const given of ['Ben', 'Cy', 'Di', 'Ed']) await client.create({ resourceType: 'Patient', body: patient(family, given) });
    let page: any = await client.search({ resourceType: 'Patient', searchParams: { family, _count: 2, _sort: 'given' } });
    const seen: string[] = [];
    for (let i = 0; page && i < 10; i++) {
      seen.push(...page.entry.map((e: any) => e.resource.name[0].given[0]));
      page = await client.nextPage({ bundle: page });
    }
    expect(seen).toEqual(['Ann', 'Ben', 'Cy', 'Di', 'Ed']);

    const tx: any = await client.transaction({
      body: {
        resourceType: 'Bundle', type: 'transaction', entry: [
          { fullUrl: 'urn:uuid:5f4d0e4c-1111-4a4a-9a9a-000000000001', resource: patient(family, 'Flo'), request: { method: 'POST', url: 'Patient' } },
          { resource: { resourceType: 'Observation', status: 'final', code: { text: 'weight' }, subject: { reference: 'urn:uuid:5f4d0e4c-1111-4a4a-9a9a-000000000001' }, valueQuantity: { value: 70, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' } }, request: { method: 'POST', url: 'Observation' } },
        ],
      },
    });
    expect(tx.type).toBe('transaction-response');
    expect(tx.entry.map((e: any) => e.response.status)).toEqual([expect.stringMatching(/^201/), expect.stringMatching(/^201/)]);
    const [, obsId] = /Observation\/([^/]+)/.exec(tx.entry[1].response.location)!;
    const [, patientId] = /Patient\/([^/]+)/.exec(tx.entry[0].response.location)!;
    const obs: any = await client.read({ resourceType: 'Observation', id: obsId! });
    expect(obs.subject.reference).toBe(`Patient/${patientId}`); // the urn:uuid reference resolved
  });

  it('surfaces the server\'s errors: a missing resource is a 404 and a write beyond the token\'s scopes a 403', async () => {
    const client = new Client({ baseUrl: srv.base, bearerToken: token });
    const missing: any = await client.read({ resourceType: 'Patient', id: 'does-not-exist' }).catch((e: unknown) => e);
    expect(missing.response?.status).toBe(404);
    expect(missing.response.data.resourceType).toBe('OperationOutcome');
    const readOnly = new Client({ baseUrl: srv.base, bearerToken: readOnlyToken });
    const denied: any = await readOnly.create({ resourceType: 'Patient', body: patient('No', 'Write') }).catch((e: unknown) => e);
    expect(denied.response?.status).toBe(403);
    const anonymous: any = await new Client({ baseUrl: srv.base }).search({ resourceType: 'Patient' }).catch((e: unknown) => e);
    expect(anonymous.response?.status).toBe(401);
  });
});

describe('@medplum/core MedplumClient', () => {
  const medplum = () => {
    const m = new MedplumClient({ baseUrl: `${srv.url}/`, fhirUrlPath: 'fhir', fetch: (url: any, init: any) => fetch(url, init), cacheTime: 0 });
    m.setAccessToken(token);
    return m;
  };

  it('creates, reads, searches page by page, runs a transaction and reads the CapabilityStatement', async () => {
    const m = medplum();
    const family = `Med${randomBytes(4).toString('hex')}`;
    const created = await m.createResource(patient(family, 'Gil') as any);
    expect(created.id).toEqual(expect.any(String));
    const read: any = await m.readResource('Patient', created.id!);
    expect(read.name[0].family).toBe(family);
    for (const given of ['Hal', 'Ida']) await m.createResource(patient(family, given) as any);
    const seen: string[] = [];
    for await (const page of m.searchResourcePages('Patient', { family, _count: '2', _sort: 'given' })) seen.push(...page.map((p: any) => p.name[0].given[0]));
    expect(seen).toEqual(['Gil', 'Hal', 'Ida']);
    const tx: any = await m.executeBatch({ resourceType: 'Bundle', type: 'transaction', entry: [{ resource: patient(family, 'Jo') as any, request: { method: 'POST', url: 'Patient' } }] });
    expect(tx.type).toBe('transaction-response');
    expect(tx.entry[0].response.status).toMatch(/^201/);
    const cs: any = await m.get(m.fhirUrl('metadata'));
    expect(cs.resourceType).toBe('CapabilityStatement');
  });
});
