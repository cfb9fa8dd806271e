/**
 * Search vectors: a fixed data set with edge cases (partial dates, Periods, time zones, several
 * identifiers, diacritics, UCUM units, components) and, for each query, the exact ids expected in order.
 * The default order is by resource key, so unsorted queries list ids alphabetically.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { http, startTestServer, type TestServer } from './support/server.js';

let srv: TestServer;
const LOINC = 'http://loinc.org';
const UCUM = 'http://unitsofmeasure.org';
const MRN = 'http://medivoy.example/mrn';

const qty = (value: number, code: string) => ({ value, unit: code, system: UCUM, code });
const obs = (id: string, patient: string, code: string, display: string, extra: Record<string, unknown>) => ({
  resourceType: 'Observation', id, status: 'final', code: { coding: [{ system: LOINC, code, display }], text: display },
  subject: { reference: `Patient/${patient}` }, ...extra,
});

const DATA: Record<string, unknown>[] = [
  {
    resourceType: 'Patient', id: 'p1', meta: { tag: [{ system: 'http://medivoy.example/tags', code: 'vip' }] }, active: true, gender: 'female', birthDate: '1980-05-12',
    name: [{ family: 'Müller', given: ['Anna'] }],
    identifier: [
      { system: MRN, value: 'A1' },
      { system: 'http://example.org/ssn', value: '111', type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'SS' }] } },
    ],
    telecom: [{ system: 'email', value: 'anna@example.org' }], address: [{ city: 'Zürich', country: 'CH' }],
    generalPractitioner: [{ reference: 'Practitioner/d1' }], managingOrganization: { reference: 'Organization/o1' },
  },
  {
    resourceType: 'Patient', id: 'p2', meta: { profile: ['http://example.org/StructureDefinition/research-patient'] }, gender: 'male', birthDate: '1980',
    name: [{ family: 'Muller', given: ['Bob'] }], identifier: [{ system: MRN, value: 'A2' }], address: [{ city: 'Boston' }],
    deceasedDateTime: '2020-03-01T10:00:00+02:00',
  },
  {
    resourceType: 'Patient', id: 'p3', meta: { security: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' }] }, gender: 'other', birthDate: '1975-12-31',
    name: [{ family: 'Smith', given: ['José'] }], identifier: [{ system: MRN, value: 'A3' }],
  },
  { resourceType: 'Patient', id: 'p4', meta: { source: 'http://lab.example/feed' }, active: false, gender: 'male', birthDate: '2001-07', name: [{ family: 'Smithson', given: ['Carl'] }], identifier: [{ system: MRN, value: 'A4' }] },
  { resourceType: 'Practitioner', id: 'd1', name: [{ family: 'House', given: ['Gregory'] }], identifier: [{ system: 'http://hl7.org/fhir/sid/us-npi', value: '123' }] },
  { resourceType: 'Practitioner', id: 'd2', name: [{ family: 'Wilson', given: ['James'] }] },
  { resourceType: 'Organization', id: 'o1', name: 'General Hospital', text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml">Has an Emergency department</div>' } },
  { resourceType: 'Organization', id: 'o2', name: 'Mercy Clinic', partOf: { reference: 'Organization/o1' } },
  { resourceType: 'Encounter', id: 'e1', status: 'finished', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' }, subject: { reference: 'Patient/p1' }, period: { start: '2021-03-04T09:00:00Z', end: '2021-03-04T11:00:00Z' } },
  obs('ob1', 'p1', '8867-4', 'Heart rate', { effectiveDateTime: '2021-03-04T10:00:00Z', valueQuantity: qty(72, '/min'), encounter: { reference: 'Encounter/e1' } }),
  obs('ob2', 'p1', '8867-4', 'Heart rate', { effectiveDateTime: '2021-03-05', valueQuantity: qty(90, '/min') }),
  obs('ob3', 'p2', '2339-0', 'Glucose', { status: 'preliminary', effectivePeriod: { start: '2021-01-01', end: '2021-01-31' }, valueQuantity: { value: 5.4, unit: 'mmol/L', system: UCUM, code: 'mmol/L' } }),
  obs('ob4', 'p3', '29463-7', 'Body weight', { effectiveDateTime: '2022', valueQuantity: qty(80, 'kg'), performer: [{ identifier: { system: 'http://hl7.org/fhir/sid/us-npi', value: '999' } }] }),
  obs('ob5', 'p1', '85354-9', 'Blood pressure', {
    effectiveDateTime: '2021-03-04T23:30:00-05:00',
    component: [
      { code: { coding: [{ system: LOINC, code: '8480-6' }] }, valueQuantity: qty(120, 'mm[Hg]') },
      { code: { coding: [{ system: LOINC, code: '8462-4' }] }, valueQuantity: qty(80, 'mm[Hg]') },
    ],
  }),
  obs('ob6', 'p3', '29463-7', 'Body weight', { effectiveDateTime: '2022-06-01', valueQuantity: qty(80000, 'g') }),
  { resourceType: 'RiskAssessment', id: 'ra1', status: 'final', subject: { reference: 'Patient/p1' }, prediction: [{ probabilityDecimal: 0.35 }] },
  { resourceType: 'RiskAssessment', id: 'ra2', status: 'final', subject: { reference: 'Patient/p2' }, prediction: [{ probabilityDecimal: 0.8 }] },
  { resourceType: 'ValueSet', id: 'vs1', status: 'active', url: 'http://example.org/fhir/ValueSet/colors' },
  { resourceType: 'ValueSet', id: 'vs2', status: 'active', url: 'http://example.org/fhir/ValueSet/colors/warm' },
  // Flag.subject may refer to nine types: a bare id finds a reference to any of them.
  { resourceType: 'Flag', id: 'f1', status: 'active', code: { text: 'fall risk' }, subject: { reference: 'Location/l1' } },
  { resourceType: 'Flag', id: 'f2', status: 'active', code: { text: 'isolation' }, subject: { reference: 'Group/l1' } },
  { resourceType: 'Flag', id: 'f3', status: 'active', code: { text: 'other' }, subject: { reference: 'Patient/p1' } },
  { resourceType: 'Appointment', id: 'a1', status: 'booked', start: '2024-03-05T09:00:00Z', end: '2024-03-05T09:30:00Z', participant: [{ actor: { reference: 'Patient/p1' }, status: 'accepted' }, { actor: { reference: 'Practitioner/d1' }, status: 'accepted' }] },
];

beforeAll(async () => {
  srv = await startTestServer();
  const res = await http('POST', srv.base, { body: { resourceType: 'Bundle', type: 'transaction', entry: DATA.map((r) => ({ resource: r, request: { method: 'PUT', url: `${r.resourceType}/${r.id}` } })) } });
  expect(res.status).toBe(200);
}, 60_000);
afterAll(async () => {
  await srv?.close();
});

const get = (path: string, headers: Record<string, string> = {}) => http('GET', `${srv.base}/${path}`, { headers });
const matchIds = (b: any) => (b.entry ?? []).filter((e: any) => e.search?.mode === 'match').map((e: any) => e.resource.id);
const includeIds = (b: any) => (b.entry ?? []).filter((e: any) => e.search?.mode === 'include').map((e: any) => `${e.resource.resourceType}/${e.resource.id}`).sort();

/** [query, expected ids in order]. */
const VECTORS: [string, string[]][] = [
  // string: starts-with, case- and accent-insensitive; :exact; :contains; HumanName and Address parts
  ['Patient?name=muller', ['p1', 'p2']],
  ['Patient?family=MÜL', ['p1', 'p2']],
  ['Patient?family:exact=Müller', ['p1']],
  ['Patient?family:exact=müller', []],
  ['Patient?family:contains=ITH', ['p3', 'p4']],
  ['Patient?given=jose', ['p3']],
  ['Patient?name=smith', ['p3', 'p4']],
  ['Patient?address-city=zurich', ['p1']],
  ['Patient?family=smith,muller', ['p1', 'p2', 'p3', 'p4']],
  ['Patient?family=smith&given=carl', ['p4']],
  ['Patient?name=abcdefghijklmnopqrstuvwxyz0123', []],
  // token: code, system|code, |code, system|, :not, :text, :of-type, booleans, ContactPoint
  ['Patient?gender=female', ['p1']],
  ['Patient?gender:not=female', ['p2', 'p3', 'p4']],
  ['Patient?identifier=http://medivoy.example/mrn|A1', ['p1']],
  ['Patient?identifier=A2', ['p2']],
  ['Patient?identifier=|A2', []],
  ['Patient?identifier=http://medivoy.example/mrn|', ['p1', 'p2', 'p3', 'p4']],
  ['Patient?identifier=A1,A3', ['p1', 'p3']],
  ['Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|SS|111', ['p1']],
  ['Observation?code:text=heart', ['ob1', 'ob2']],
  ['Observation?code=http://loinc.org|8867-4&status=final', ['ob1', 'ob2']],
  ['Observation?status=preliminary', ['ob3']],
  ['Patient?active=true', ['p1']],
  ['Patient?active=false', ['p4']],
  ['Patient?telecom=anna@example.org', ['p1']],
  ['Patient?identifier:not=http://example.org/ssn|', ['p2', 'p3', 'p4']],
  ['Patient?identifier=http://example.org/ssn|,A3', ['p1', 'p3']],
  // :missing on several types
  ['Patient?address:missing=true', ['p3', 'p4']],
  ['Patient?address-city:missing=false', ['p1', 'p2']],
  ['Observation?value-quantity:missing=true', ['ob5']],
  ['Patient?birthdate:missing=false', ['p1', 'p2', 'p3', 'p4']],
  ['Patient?general-practitioner:missing=false', ['p1']],
  // reference: Type/id, bare id, :Type, absolute URL (filled in below), :identifier
  ['Observation?subject=Patient/p1', ['ob1', 'ob2', 'ob5']],
  ['Observation?subject=p1', ['ob1', 'ob2', 'ob5']],
  ['Observation?subject:Patient=p3', ['ob4', 'ob6']],
  ['Observation?performer:identifier=http://hl7.org/fhir/sid/us-npi|999', ['ob4']],
  ['Organization?partof=Organization/o1', ['o2']],
  // a bare id of a parameter with one target type is a reference to that type (no bare-id key is stored)
  ['Organization?partof=o1', ['o2']],
  ['Patient?organization=o1', ['p1']],
  ['Patient?general-practitioner=d1', ['p1']],
  // a bare id of a parameter with several target types is a reference to any of them (still no bare-id key)
  ['Flag?subject=l1', ['f1', 'f2']],
  ['Flag?subject:Group=l1', ['f2']],
  ['Flag?subject=p1,Location/l1', ['f1', 'f3']],
  ['Observation?subject=p3', ['ob4', 'ob6']],
  // a patient reference with a code, category or status: one combined key
  ['Observation?patient=p1&code=8867-4', ['ob1', 'ob2']],
  ['Observation?subject=Patient/p1,Patient/p3&code=http://loinc.org|8867-4,http://loinc.org|29463-7&status=final', ['ob1', 'ob2', 'ob4', 'ob6']],
  ['Observation?patient=Patient/p2&status=final', []],
  ['Observation?patient=Patient/p2&status=preliminary', ['ob3']],
  // date: precision ranges, every prefix, Periods, time zones
  ['Patient?birthdate=1980', ['p1', 'p2']],
  ['Patient?birthdate=1980-05', ['p1']],
  ['Patient?birthdate=eq1980-05-12', ['p1']],
  ['Patient?birthdate=ne1980', ['p3', 'p4']],
  ['Patient?birthdate=lt1980', ['p3']],
  ['Patient?birthdate=gt1980', ['p4']],
  ['Patient?birthdate=ge1980-06', ['p2', 'p4']],
  ['Patient?birthdate=le1980-05-12', ['p1', 'p2', 'p3']],
  ['Patient?birthdate=sa1980-06-30', ['p4']],
  ['Patient?birthdate=eb1980', ['p3']],
  ['Patient?birthdate=ap1975-12-31', ['p1', 'p2', 'p3']],
  ['Patient?death-date=2020-03-01', ['p2']],
  ['Observation?date=2021-03-04', ['ob1']],
  ['Observation?date=2021-03-05', ['ob2', 'ob5']],
  ['Observation?date=2021-03', ['ob1', 'ob2', 'ob5']],
  ['Observation?date=2021-01-15', []],
  ['Observation?date=2021-01', ['ob3']],
  ['Observation?date=ge2022', ['ob4', 'ob6']],
  ['Observation?date=ge2021&date=lt2021-02', ['ob3']],
  ['Observation?date=2021-03-04T10:00:00Z', ['ob1']],
  ['Observation?date=2021-03-04T05:00:00-05:00', ['ob1']],
  ['Observation?date=2021-01-15,2022', ['ob4', 'ob6']],
  ['Encounter?date=2021-03-04', ['e1']],
  ['Appointment?date=ge2024-03-04&date=lt2024-03-11', ['a1']],
  ['Patient?_lastUpdated=gt2000-01-01', ['p1', 'p2', 'p3', 'p4']],
  ['Patient?_lastUpdated=lt2000-01-01', []],
  // number
  ['RiskAssessment?probability=0.35', ['ra1']],
  ['RiskAssessment?probability=gt0.5', ['ra2']],
  ['RiskAssessment?probability=le0.35', ['ra1']],
  ['RiskAssessment?probability=0.4', []],
  ['RiskAssessment?probability=ap0.34', ['ra1']],
  ['RiskAssessment?probability=ne0.35', ['ra2']],
  // quantity: number only, value|system|code with UCUM conversion, value||unit
  ['Observation?value-quantity=72', ['ob1']],
  ['Observation?value-quantity=gt85', ['ob2', 'ob6']],
  ['Observation?value-quantity=80|http://unitsofmeasure.org|kg', ['ob4', 'ob6']],
  ['Observation?value-quantity=80000|http://unitsofmeasure.org|g', ['ob4', 'ob6']],
  ['Observation?value-quantity=5.4||mmol/L', ['ob3']],
  ['Observation?value-quantity=lt100|http://unitsofmeasure.org|/min', ['ob1', 'ob2']],
  // composite
  ['Observation?code-value-quantity=http://loinc.org|8867-4$gt80', ['ob2']],
  ['Observation?component-code-value-quantity=http://loinc.org|8480-6$gt100', ['ob5']],
  ['Observation?component-code-value-quantity=http://loinc.org|8462-4$gt100', []],
  ['Observation?combo-code-value-quantity=8480-6$120', ['ob5']],
  // uri
  ['ValueSet?url=http://example.org/fhir/ValueSet/colors', ['vs1']],
  ['ValueSet?url:below=http://example.org/fhir/ValueSet/colors', ['vs1', 'vs2']],
  ['ValueSet?url:above=http://example.org/fhir/ValueSet/colors/warm', ['vs1', 'vs2']],
  // parameters for all resources
  ['Patient?_id=p1,p3', ['p1', 'p3']],
  ['Patient?_tag=http://medivoy.example/tags|vip', ['p1']],
  ['Patient?_profile=http://example.org/StructureDefinition/research-patient', ['p2']],
  ['Patient?_security=R', ['p3']],
  ['Patient?_source=http://lab.example/feed', ['p4']],
  ['Patient?_content=zurich', ['p1']],
  ['Organization?_text=emergency', ['o1']],
  // chaining, multi-level, reverse chaining (nested)
  ['Observation?subject:Patient.name=smith', ['ob4', 'ob6']],
  ['Observation?patient.general-practitioner.name=house', ['ob1', 'ob2', 'ob5']],
  ['Observation?subject:Patient.family=muller&code=8867-4', ['ob1', 'ob2']],
  ['Patient?_has:Observation:patient:code=2339-0', ['p2']],
  ['Patient?_has:Observation:subject:value-quantity=gt85', ['p1', 'p3']],
  ['Practitioner?_has:Patient:general-practitioner:_has:Observation:patient:code=8867-4', ['d1']],
  ['Patient?name=muller&_has:Observation:patient:code=2339-0', ['p2']],
  ['Patient?name=nobody&_has:Observation:patient:code=2339-0', []],
  ['Observation?subject:Patient.name=nobody', []],
  // sorting on several keys, descending
  ['Patient?_sort=birthdate', ['p3', 'p2', 'p1', 'p4']],
  ['Patient?_sort=-birthdate', ['p4', 'p2', 'p1', 'p3']],
  ['Patient?_sort=gender,-family', ['p1', 'p4', 'p2', 'p3']],
  ['Observation?subject=p1&_sort=-date', ['ob2', 'ob5', 'ob1']],
  ['Observation?_sort=value-quantity&code=8867-4', ['ob1', 'ob2']],
  ['Patient?_sort=-_id', ['p4', 'p3', 'p2', 'p1']],
  ['Patient?gender=male&_sort=-birthdate', ['p4', 'p2']],
  ['Patient?_sort=-_lastUpdated&_id=p1,p2', ['p2', 'p1']],
];

describe('search vectors', () => {
  it.each(VECTORS)('%s', async (query, expected) => {
    const res = await get(query);
    expect({ status: res.status, ids: matchIds(res.body) }).toEqual({ status: 200, ids: expected });
    expect(res.body.total).toBe(expected.length);
  });

  it('stores a reference as Type/id only: no bare-id key beside it', async () => {
    const doc = (await srv.running.mongo.db.collection('fhir_Flag').findOne({ _id: 'Flag/f1' } as never)) as unknown as { tk: string[] };
    const subject = doc.tk.filter((k) => k.startsWith('subject\u0001') && k !== 'subject\u0001\u0004'); // (\u0004: the :missing marker)
    expect(subject).toEqual(['subject\u0001Location/l1']);
  });

  it('takes an absolute reference to this server as a local one', async () => {
    expect(matchIds((await get(`Observation?patient=${srv.base}/Patient/p2`)).body)).toEqual(['ob3']);
  });
});

describe('results', () => {
  it('_include, _include:iterate, _include=* and _revinclude, marked search.mode=include', async () => {
    let b = (await get('Observation?_id=ob1&_include=Observation:patient')).body;
    expect(matchIds(b)).toEqual(['ob1']);
    expect(includeIds(b)).toEqual(['Patient/p1']);
    b = (await get('Observation?_id=ob1&_include=Observation:patient&_include:iterate=Patient:general-practitioner')).body;
    expect(includeIds(b)).toEqual(['Patient/p1', 'Practitioner/d1']);
    b = (await get('Observation?_id=ob1&_include=*')).body;
    expect(includeIds(b)).toEqual(['Encounter/e1', 'Patient/p1']);
    b = (await get('Patient?_id=p2&_revinclude=Observation:patient')).body;
    expect(includeIds(b)).toEqual(['Observation/ob3']);
    b = (await get('Appointment?practitioner=Practitioner/d1&_include=Appointment:patient')).body;
    expect(includeIds(b)).toEqual(['Patient/p1']);
  });

  it('_count pages with self/first/next/previous links that hold while others write', async () => {
    const page1 = (await get('Patient?_sort=family&_count=2&_total=accurate')).body;
    expect(matchIds(page1)).toEqual(['p1', 'p2']);
    expect(page1.total).toBe(4);
    const next = page1.link.find((l: any) => l.relation === 'next').url;
    expect(page1.link.map((l: any) => l.relation)).toEqual(['self', 'first', 'next']);
    // A write that sorts before the cursor must not shift the next page (a skip count would).
    await http('PUT', `${srv.base}/Patient/p0`, { body: { resourceType: 'Patient', id: 'p0', name: [{ family: 'Aaron' }] } });
    const page2 = (await http('GET', next)).body;
    expect(matchIds(page2)).toEqual(['p3', 'p4']);
    expect(page2.link.find((l: any) => l.relation === 'next')).toBeUndefined();
    const prev = page2.link.find((l: any) => l.relation === 'previous').url;
    const back = (await http('GET', prev)).body;
    expect(matchIds(back)).toEqual(['p1', 'p2']);
    expect(back.link.find((l: any) => l.relation === 'previous')).toBeDefined(); // p0 is now before them
    await http('DELETE', `${srv.base}/Patient/p0`);
  });

  it('a long _id list pages in id order, each id once, unknown ids skipped', async () => {
    const page1 = (await get('Patient?_id=p4,p2,missing,p1,p3,p2&_count=2')).body;
    expect(matchIds(page1)).toEqual(['p1', 'p2']);
    const page2 = (await http('GET', page1.link.find((l: any) => l.relation === 'next').url)).body;
    expect(matchIds(page2)).toEqual(['p3', 'p4']);
    expect(page2.link.find((l: any) => l.relation === 'next')).toBeUndefined();
    const back = (await http('GET', page2.link.find((l: any) => l.relation === 'previous').url)).body;
    expect(matchIds(back)).toEqual(['p1', 'p2']);
    expect(matchIds((await get('Patient?_id=p4,p2,missing,p1,p3&active=false&_count=2')).body)).toEqual(['p4']);
  });

  it('a tampered paging link is a 400, one for another search a 400', async () => {
    const page1 = (await get('Patient?_sort=family&_count=1')).body;
    const next = new URL(page1.link.find((l: any) => l.relation === 'next').url);
    const cursor = next.searchParams.get('_cursor')!;
    const tampered = `${cursor.slice(0, 5)}${cursor[5] === 'A' ? 'B' : 'A'}${cursor.slice(6)}`;
    let res = await get(`Patient?_sort=family&_count=1&_cursor=${encodeURIComponent(tampered)}`);
    expect(res.status).toBe(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
    res = await get(`Patient?_sort=birthdate&_count=1&_cursor=${encodeURIComponent(cursor)}`);
    expect(res.status).toBe(400);
  });

  it('_count=0 and _summary=count give only the total; _total=none leaves it out', async () => {
    let b = (await get('Patient?_count=0')).body;
    expect(b.total).toBe(4);
    expect(b.entry).toBeUndefined();
    b = (await get('Patient?_summary=count&gender=male')).body;
    expect(b.total).toBe(2);
    expect(b.entry).toBeUndefined();
    b = (await get('Patient?_total=none&_count=2')).body;
    expect(b.total).toBeUndefined();
    expect(matchIds(b)).toHaveLength(2);
    // A first page that holds every match reports its total whatever the default.
    b = (await get('Patient?_count=5')).body;
    expect(b.total).toBe(4);
  });

  it('_total=estimate says so in an outcome entry', async () => {
    const b = (await get('Observation?date=2021&_total=estimate&_count=1')).body;
    const oo = b.entry.find((e: any) => e.search.mode === 'outcome').resource;
    expect(JSON.stringify(oo)).toMatch(/estimate/);
  });

  it('_summary and _elements return subsets tagged SUBSETTED', async () => {
    let b = (await get('Patient?_id=p1&_elements=gender')).body;
    const r = b.entry[0].resource;
    expect(Object.keys(r).sort()).toEqual(['gender', 'id', 'meta', 'resourceType']);
    expect(r.meta.tag.map((t: any) => t.code)).toContain('SUBSETTED');
    b = (await get('Organization?_id=o1&_summary=true')).body;
    expect(b.entry[0].resource.text).toBeUndefined();
    expect(b.entry[0].resource.name).toBe('General Hospital');
    b = (await get('Organization?_id=o1&_summary=data')).body;
    expect(b.entry[0].resource.text).toBeUndefined();
    b = (await get('Organization?_id=o1&_summary=text')).body;
    expect(b.entry[0].resource.text).toBeDefined();
    expect(b.entry[0].resource.name).toBeUndefined();
  });

  it('POST _search with a form body, system search over _type, compartment search', async () => {
    let res = await http('POST', `${srv.base}/Patient/_search`, { raw: 'family=smith&given=carl', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(matchIds(res.body)).toEqual(['p4']);
    res = await get('?_type=Patient,Practitioner&_id=p1,d1');
    expect(res.status).toBe(200);
    expect(res.body.entry.map((e: any) => `${e.resource.resourceType}/${e.resource.id}`).sort()).toEqual(['Patient/p1', 'Practitioner/d1']);
    res = await get('Patient/p1/Observation?code=8867-4');
    expect(matchIds(res.body)).toEqual(['ob1', 'ob2']);
    res = await get('Patient/p1/Encounter');
    expect(matchIds(res.body)).toEqual(['e1']);
    res = await get('Patient/p1/Organization');
    expect(res.status).toBe(400);
  });

  it('conditional writes accept any search criteria', async () => {
    const res = await http('POST', `${srv.base}/Patient`, {
      body: { resourceType: 'Patient', name: [{ family: 'Smith' }] },
      headers: { 'If-None-Exist': 'family=smith&birthdate=1975-12-31' },
    });
    expect(res.status).toBe(200);
    expect(res.body.id).toBe('p3');
  });
});

describe('never silently wrong', () => {
  it('an unknown parameter is ignored with an outcome entry (lenient) or refused (strict)', async () => {
    let res = await get('Patient?foo=bar&gender=female');
    expect(res.status).toBe(200);
    expect(matchIds(res.body)).toEqual(['p1']);
    const oo = res.body.entry.find((e: any) => e.search.mode === 'outcome').resource;
    expect(oo.issue[0].details.text).toMatch(/foo/);
    expect(res.body.link[0].url).not.toMatch(/foo/);
    res = await get('Patient?foo=bar', { Prefer: 'handling=strict' });
    expect(res.status).toBe(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
    res = await get('Patient?gender:in=http://x', { Prefer: 'handling=strict' });
    expect(res.status).toBe(400);
  });

  it.each([
    'Patient?birthdate=xx2020', 'Patient?birthdate=2020-13', 'Patient?birthdate=2021-02-30', 'Observation?value-quantity=abc',
    'RiskAssessment?probability=gt', 'Patient?active:missing=maybe', 'Patient?_count=-1', 'Patient?_count=abc', 'Patient?_total=some',
    'Patient?_summary=maybe', 'Observation?code-value-quantity=8867-4', 'Patient?general-practitioner=not a reference',
  ])('malformed value %s is a 400 OperationOutcome', async (query) => {
    const res = await get(query);
    expect(res.status).toBe(400);
    expect(res.body.resourceType).toBe('OperationOutcome');
  });

  it('NoSQL operators in the query string are plain text, never operators', async () => {
    let res = await get('Patient?name[$gt]=&gender=female');
    expect(res.status).toBe(400); // not a parameter name at all, even under lenient handling
    expect(res.body.resourceType).toBe('OperationOutcome');
    res = await get('Patient?$where=1');
    expect(res.status).toBe(400);
    res = await get('Patient?name=$gt');
    expect(matchIds(res.body)).toEqual([]);
    res = await get(`Patient?_id=${encodeURIComponent('{"$ne":null}')}`);
    expect(matchIds(res.body)).toEqual([]);
    res = await get(`Patient?family=${encodeURIComponent('.*')}`);
    expect(matchIds(res.body)).toEqual([]);
    res = await get(`Patient?family:contains=${encodeURIComponent('.*')}`);
    expect(matchIds(res.body)).toEqual([]);
  });

  it('declares every search parameter it serves, and serves every one it declares', async () => {
    const cs = (await get('metadata')).body;
    const sample = cs.rest[0].resource.filter((r: any) => ['Patient', 'Observation', 'Appointment', 'Slot', 'Coverage', 'MedicationRequest', 'Invoice'].includes(r.type));
    for (const r of sample) {
      for (const p of r.searchParam) {
        const res = await get(`${r.type}?${p.name}:missing=false&_count=0`, { Prefer: 'handling=strict' });
        expect({ param: `${r.type}.${p.name}`, status: res.status }).toEqual({ param: `${r.type}.${p.name}`, status: 200 });
      }
    }
  });
});
