import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { http, startTestServer, type TestServer } from './support/server.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(async () => {
  await srv?.close();
});

const EXAMPLES = dirname(createRequire(import.meta.url).resolve('hl7.fhir.r4.examples/package.json'));

/**
 * Official R4 examples, chosen so that between them they carry narrative, extensions, `_field` primitive
 * extensions, contained resources and non-ASCII text. All of them pass R4 validation as published.
 */
const FILES = [
  'Patient-example.json', // _birthDate extension, contact, narrative
  'Patient-glossy.json',
  'Practitioner-example.json',
  'Practitioner-f001.json',
  'Organization-hl7.json',
  'Organization-f001.json',
  'Appointment-example.json',
  'MedicationRequest-medrx0302.json', // contained Medication
  'MedicationRequest-medrx0301.json',
  'Invoice-example.json',
  'Coverage-9876B1.json',
  'Coverage-SP1234.json',
  'Observation-example.json',
  'Observation-blood-pressure.json', // components, interpretation
  'Observation-f001.json',
  'DiagnosticReport-gingival-mass.json', // base64Binary with whitespace between its groups (R4 allows it)
];

function example(file: string): Record<string, any> {
  return JSON.parse(readFileSync(join(EXAMPLES, file), 'utf8'));
}

/** The content a server must keep: everything but the id and the server-assigned meta fields. */
function content(resource: Record<string, any>): Record<string, any> {
  const { id: _id, meta, ...rest } = resource;
  const { versionId: _v, lastUpdated: _l, ...otherMeta } = (meta ?? {}) as Record<string, unknown>;
  return Object.keys(otherMeta).length ? { ...rest, meta: otherMeta } : rest;
}

describe('official R4 examples round-trip', () => {
  it('covers the features the round trip is meant to prove', () => {
    const all = FILES.map((f) => readFileSync(join(EXAMPLES, f), 'utf8'));
    expect(all.some((t) => /"contained"/.test(t))).toBe(true);
    expect(all.some((t) => /"_[a-zA-Z]+"\s*:/.test(t))).toBe(true);
    expect(all.some((t) => /"extension"/.test(t))).toBe(true);
    expect(all.some((t) => /[^\x00-\x7f]/.test(t))).toBe(true);
  });

  it.each(FILES)('%s: POST then GET returns the same content', async (file) => {
    const original = example(file);
    const created = await http('POST', `${srv.base}/${original.resourceType}`, { body: original });
    expect({ status: created.status, body: created.text.slice(0, 500) }).toMatchObject({ status: 201 });
    expect(created.body.id).not.toBe(original.id);
    const read = await http('GET', `${srv.base}/${original.resourceType}/${created.body.id}`);
    expect(read.status).toBe(200);
    expect(content(read.body)).toEqual(content(original));
    expect(read.body).toEqual(created.body);
    // Key order is the client's too: the stored text serializes the content exactly as it was sent.
    expect(JSON.stringify(content(read.body))).toBe(JSON.stringify(content(original)));
  });

  it.each(FILES)('%s: PUT with its own id creates it (update-as-create) with the same content', async (file) => {
    const original = example(file);
    const url = `${srv.base}/${original.resourceType}/${original.id}`;
    const put = await http('PUT', url, { body: original });
    expect({ status: put.status, body: put.text.slice(0, 500) }).toMatchObject({ status: 201 });
    expect(put.body.id).toBe(original.id);
    expect(put.body.meta.versionId).toBe('1');
    const read = await http('GET', url);
    expect(read.status).toBe(200);
    expect(read.body.id).toBe(original.id);
    expect(content(read.body)).toEqual(content(original));
    const again = await http('PUT', url, { body: original });
    expect(again.status).toBe(200);
    // The same content again is a no-op update: no new version.
    expect(again.body.meta.versionId).toBe('1');
    expect(content(again.body)).toEqual(content(original));
  });
});

describe('unicode and primitive extensions', () => {
  const tricky = {
    resourceType: 'Patient',
    extension: [{ url: 'http://example.org/fhir/StructureDefinition/nickname', valueString: '😀 ñ ü 中文 한국어 العربية עברית' }],
    identifier: [{ system: 'urn:example:unicode', value: 'ID-ß-Ω-🆔' }],
    name: [
      { use: 'official', family: '山田', given: ['太郎'], text: '山田 太郎 🏥' },
      {
        // Decomposed forms (e + U+0301, o + U+0308) must not be normalized to é / ö.
        family: 'Zoe\u0308 Ame\u0301lie',
        given: ['Åsa', 'Łukasz'],
        _given: [null, { extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/iso21090-EN-qualifier', valueCode: 'CL' }] }],
      },
    ],
    birthDate: '1990-01-01',
    _birthDate: {
      id: 'bd',
      extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/patient-birthTime', valueDateTime: '1990-01-01T08:30:00+09:00' }],
    },
    address: [{ line: ['Straße 1', '👩‍👩‍👧‍👦 "quoted" \\ back\u2028slash\ttab'], city: 'Zürich', _city: { extension: [{ url: 'http://example.org/fhir/StructureDefinition/city-note', valueString: '🇨🇭' }] } }],
  };
  const strings = ['😀 ñ ü 中文 한국어 العربية עברית', '山田 太郎 🏥', 'Zoe\u0308 Ame\u0301lie', '👩‍👩‍👧‍👦 "quoted" \\ back\u2028slash\ttab', 'ID-ß-Ω-🆔', '🇨🇭'];

  async function check(res: { status: number; text: string; body: any }, status: number) {
    expect({ status: res.status, body: res.text.slice(0, 500) }).toMatchObject({ status });
    expect(JSON.stringify(content(res.body))).toBe(JSON.stringify(tricky));
    const bytes = Buffer.from(res.text, 'utf8');
    for (const s of strings) expect(bytes.includes(Buffer.from(JSON.stringify(s).slice(1, -1), 'utf8'))).toBe(true);
    expect(res.body.name[1].family).not.toBe(res.body.name[1].family.normalize('NFC'));
  }

  it('keeps every character and every _field extension on create, read, vread, update and history', async () => {
    const created = await http('POST', `${srv.base}/Patient`, { body: tricky });
    await check(created, 201);
    const id = created.body.id;
    await check(await http('GET', `${srv.base}/Patient/${id}`), 200);
    await check(await http('GET', `${srv.base}/Patient/${id}/_history/1`), 200);
    await check(await http('PUT', `${srv.base}/Patient/${id}`, { body: { ...tricky, id } }), 200);
    const history = await http('GET', `${srv.base}/Patient/${id}/_history`);
    for (const e of history.body.entry) expect(JSON.stringify(content(e.resource))).toBe(JSON.stringify(tricky));
    const found = await http('GET', `${srv.base}/Patient?identifier=${encodeURIComponent('urn:example:unicode|ID-ß-Ω-🆔')}`);
    expect(found.body.entry.map((e: { resource: { id: string } }) => e.resource.id)).toEqual([id]);
  });
});
