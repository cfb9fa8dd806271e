/**
 * Patient onboarding and prescriptions over HTTP against FerretDB, Redis and a local SMTP server: a patient
 * records allergies, medications, history, height and weight (the server computes the BMI), an emergency
 * contact and a verified insurance; `$onboarding-status` follows each item; the welcome and completion
 * e-mails go out once each. Prescriptions are written only by the practitioner of the patient's encounter,
 * with the dosage the product profile asks for, readable by the patient, on `$everything`, and mailed.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { http, startTestServer, type TestServer } from './support/server.js';
import { userToken } from './support/browser.js';
import { expectOutcome, historyTotal } from './support/outcomes.js';
import { startSmtp } from './support/smtp.js';
import { waitFor } from './support/wait.js';

const EXT = 'http://medivoy.example/fhir/StructureDefinition/';
const CLASS = 'http://terminology.hl7.org/CodeSystem/coverage-class';
const LOINC = 'http://loinc.org';
const PASSWORD = 'Amber-Falcon-93!';
const PROFILE = 'https://medivoy.org/fhir/StructureDefinition/medivoy-medicationrequest';
const WELCOME = 'Welcome to Medivoy: complete your health profile';
const COMPLETE = 'Medivoy: your health profile is complete';
const PRESCRIPTION = 'Medivoy: a new prescription for you';

let srv: TestServer;
let smtp: Awaited<ReturnType<typeof startSmtp>>;
let desk: string;
let payor: string;

interface Person {
  ref: string;
  id: string;
  token: string;
  email: string;
}

/** Polls until `fn` gives a value (a bound for a loaded machine, not a timing assertion). */
const until = <T>(what: string, fn: () => Promise<T | undefined | false>, ms = 50_000): Promise<T> => waitFor(what, fn, ms);

const mails = (to: string, subject: string) => smtp.inbox.filter((m) => m.to.includes(to) && m.subject === subject);

/** Waits until no onboarding look at the patient is pending (the job's document is gone once it ran). */
const onboardingSettled = (p: Person) => until(`onboarding jobs of ${p.ref}`, async () => !(await srv.running.mongo.db.collection('jobs').findOne({ _id: `onboarding:${p.ref}` as never })));

let n = 0;
async function registerPatient(given: string): Promise<Person> {
  const email = `${given.toLowerCase()}${++n}@patients.example`;
  const reg = await http('POST', `${srv.url}/auth/register`, { body: { email, password: PASSWORD, givenName: given, familyName: 'Onboard' }, headers: { 'content-type': 'application/json' }, token: false });
  expect(reg.status).toBe(201);
  const token = (await userToken(srv.running, email, PASSWORD, 'openid fhirUser user/*.cruds')).access_token;
  return { ref: reg.body.fhirUser, id: reg.body.fhirUser.slice(8), token, email };
}

async function practitioner(given: string): Promise<Person> {
  const email = `${given.toLowerCase()}@clinic.example`;
  const a = await srv.running.accounts.createAccount({ kind: 'practitioner', email, password: PASSWORD, person: { givenName: given, familyName: 'Doc' } });
  const token = (await userToken(srv.running, email, PASSWORD, 'openid fhirUser user/*.cruds')).access_token;
  return { ref: a.fhirUser!, id: a.fhirUser!.slice(13), token, email };
}

async function post(body: Record<string, unknown>, token: string): Promise<any> {
  const res = await http('POST', `${srv.base}/${body.resourceType}`, { body, token });
  expect({ status: res.status, body: res.text.slice(0, 400) }).toMatchObject({ status: 201 });
  return res.body;
}

const status = async (p: Person, token = p.token) => {
  const res = await http('GET', `${srv.base}/Patient/${p.id}/$onboarding-status`, { token });
  expect({ status: res.status, body: res.text.slice(0, 300) }).toMatchObject({ status: 200 });
  const items = Object.fromEntries(res.body.parameter.filter((x: any) => x.name === 'item').map((x: any) => [x.part.find((q: any) => q.name === 'code').valueCode, x.part.find((q: any) => q.name === 'status').valueCode]));
  return { complete: res.body.parameter.find((x: any) => x.name === 'complete').valueBoolean as boolean, items, body: res.body };
};

const obs = (p: Person, code: string, value: number, unit: string, effective: string) => ({
  resourceType: 'Observation', status: 'final', category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
  code: { coding: [{ system: LOINC, code }] }, subject: { reference: p.ref }, effectiveDateTime: effective, valueQuantity: { value, unit, system: 'http://unitsofmeasure.org', code: unit },
});

const bmiOf = async (p: Person) => (await http('GET', `${srv.base}/Observation?subject=${p.ref}&code=${LOINC}|39156-5`, { token: p.token })).body.entry?.map((e: any) => e.resource) ?? [];

beforeAll(async () => {
  smtp = await startSmtp();
  srv = await startTestServer({ SMTP_URL: smtp.url, JOBS_POLL_MS: '200' });
  await srv.running.accounts.createAccount({ kind: 'system-admin', email: 'desk@clinic.example', password: PASSWORD });
  desk = (await userToken(srv.running, 'desk@clinic.example', PASSWORD, 'openid fhirUser user/*.cruds')).access_token;
  payor = `Organization/${(await post({ resourceType: 'Organization', name: 'Acme Health', extension: [{ url: `${EXT}payer-rules`, extension: [{ url: 'in-force', valueBoolean: true }, { url: 'copay', valueMoney: { value: 20, currency: 'EUR' } }] }] }, desk)).id}`;
}, 90_000);
afterAll(async () => {
  await srv?.close();
  await smtp?.close();
});

describe('onboarding', () => {
  let pat: Person;
  beforeAll(async () => {
    pat = await registerPatient('Olive');
  });

  it('starts with every item missing, for the patient and for staff; others do not see it', async () => {
    const s = await status(pat);
    expect(s.complete).toBe(false);
    expect(s.items).toEqual({ allergies: 'missing', medications: 'missing', history: 'missing', height: 'missing', weight: 'missing', bmi: 'missing', 'emergency-contact': 'missing', insurance: 'missing' });
    expect((await status(pat, desk)).items).toEqual(s.items);
    const other = await registerPatient('Nosy');
    expectOutcome(await http('GET', `${srv.base}/Patient/${pat.id}/$onboarding-status`, { token: other.token }), 404);
    expectOutcome(await http('GET', `${srv.base}/Patient/nobody/$onboarding-status`, { token: desk }), 404);
  });

  it('the first record sends the welcome e-mail with what is missing', async () => {
    await post({ resourceType: 'AllergyIntolerance', patient: { reference: pat.ref }, code: { coding: [{ system: 'http://snomed.info/sct', code: '91936005', display: 'Allergy to penicillin' }] }, clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical', code: 'active' }] } }, pat.token);
    const [welcome] = await until('welcome mail', async () => (mails(pat.email, WELCOME).length ? mails(pat.email, WELCOME) : undefined));
    expect(welcome!.body).toContain('Hello Olive');
    expect(welcome!.body).toContain('Current medications');
    expect(welcome!.body).not.toContain('Allergies');
    expect((await status(pat)).items.allergies).toBe('complete');
  });

  it('height and weight give a BMI computed by the server, kept current', async () => {
    await post({ resourceType: 'MedicationStatement', status: 'active', subject: { reference: pat.ref }, medicationCodeableConcept: { text: 'Ibuprofen 400 mg' } }, pat.token);
    await post({ resourceType: 'Condition', subject: { reference: pat.ref }, code: { text: 'Asthma' } }, pat.token);
    const height = await post(obs(pat, '8302-2', 180, 'cm', '2026-03-01'), pat.token);
    expect(await bmiOf(pat)).toEqual([]);
    expect((await status(pat)).items).toMatchObject({ medications: 'complete', history: 'complete', height: 'complete', weight: 'missing', bmi: 'missing' });
    const weight = await post(obs(pat, '29463-7', 81, 'kg', '2026-03-01'), pat.token);
    let [bmi] = await bmiOf(pat);
    expect(bmi).toMatchObject({ status: 'final', valueQuantity: { value: 25, code: 'kg/m2' }, derivedFrom: [{ reference: `Observation/${height.id}` }, { reference: `Observation/${weight.id}` }] });
    expect(bmi.code.coding[0]).toMatchObject({ system: LOINC, code: '39156-5' });
    // A newer weight (in pounds) moves the same BMI to a new version.
    const heavier = await post(obs(pat, '29463-7', 200, '[lb_av]', '2026-03-05'), pat.token);
    const all = await bmiOf(pat);
    expect(all).toHaveLength(1);
    [bmi] = all;
    expect(bmi.valueQuantity.value).toBe(28); // 90.72 kg / 1.8² = 28.0
    expect(bmi.meta.versionId).toBe('2');
    expect(bmi.derivedFrom[1].reference).toBe(`Observation/${heavier.id}`);
    expect((await status(pat)).items).toMatchObject({ weight: 'complete', bmi: 'complete' });
  });

  it.each([
    ['an implausible height', () => obs(pat, '8302-2', 1800, 'cm', '2026-03-06'), 'not plausible'],
    ['a weight in an unknown unit', () => obs(pat, '29463-7', 12, 'stone', '2026-03-06'), 'kg, g or [lb_av]'],
    ['a height without a value', () => ({ ...obs(pat, '8302-2', 1, 'cm', '2026-03-06'), valueQuantity: undefined, valueString: 'tall' }), 'valueQuantity'],
  ])('%s is refused (422); neither it nor a BMI is stored', async (_what, body, text) => {
    const before = await historyTotal(srv.base, 'Observation');
    const res = await http('POST', `${srv.base}/Observation`, { body: body(), token: pat.token });
    expectOutcome(res, 422);
    expect(res.body.issue[0].details.text).toContain(text);
    expect(await historyTotal(srv.base, 'Observation')).toBe(before);
  });

  it('emergency contact and a verified insurance complete it: the completion e-mail goes out once', async () => {
    const me = (await http('GET', `${srv.base}/${pat.ref}`, { token: pat.token })).body;
    const contact = { relationship: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0131', code: 'C' }] }], name: { family: 'Onboard', given: ['Oscar'] }, telecom: [{ system: 'phone', value: '+49 30 1234567' }] };
    expect((await http('PUT', `${srv.base}/${pat.ref}`, { token: pat.token, body: { ...me, contact: [contact] } })).status).toBe(200);
    const cov = await post({
      resourceType: 'Coverage', status: 'active', beneficiary: { reference: pat.ref }, subscriber: { reference: pat.ref }, subscriberId: 'OL-1', payor: [{ reference: payor }],
      type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'EHCPOL' }] }, class: [{ type: { coding: [{ system: CLASS, code: 'plan' }] }, value: 'STANDARD' }],
    }, pat.token);
    let s = await status(pat);
    expect(s.items).toMatchObject({ 'emergency-contact': 'complete', insurance: 'missing' });
    expect(s.complete).toBe(false);
    const submitted = await http('POST', `${srv.base}/CoverageEligibilityRequest/$submit`, {
      token: pat.token,
      body: { resourceType: 'CoverageEligibilityRequest', status: 'active', purpose: ['validation'], patient: { reference: pat.ref }, created: '2026-03-06', insurer: { reference: payor }, insurance: [{ coverage: { reference: `Coverage/${cov.id}` } }] },
    });
    expect(submitted.status).toBe(201);
    s = await status(pat);
    expect(s.complete).toBe(true);
    expect(Object.values(s.items).every((v) => v === 'complete')).toBe(true);
    const [done] = await until('completion mail', async () => (mails(pat.email, COMPLETE).length ? mails(pat.email, COMPLETE) : undefined));
    expect(done!.body).toContain('Hello Olive');
    await onboardingSettled(pat);

    // A second completion (another record while complete) sends nothing more.
    // Counted on every instance: with TEST_SERVERS=2 the job may run in either.
    const runs = () => srv.instances.reduce((n, r) => n + r.jobs.runs('onboarding-check'), 0);
    const looks = runs();
    await post({ resourceType: 'Condition', subject: { reference: pat.ref }, code: { text: 'Hay fever' } }, pat.token);
    await onboardingSettled(pat); // the look the new record queued has run (its job is gone)
    expect(runs()).toBeGreaterThan(looks);
    expect((await status(pat)).complete).toBe(true);
    expect(mails(pat.email, COMPLETE)).toHaveLength(1);
    expect(mails(pat.email, WELCOME)).toHaveLength(1);
  }, 180_000);
});

describe('prescriptions', () => {
  let pat: Person;
  let other: Person;
  let dr: Person;
  let dr2: Person;
  let encounter: string;
  let otherEncounter: string;
  const rx = (over: Record<string, unknown> = {}) => ({
    resourceType: 'MedicationRequest', status: 'active', intent: 'order', subject: { reference: pat.ref }, encounter: { reference: encounter }, authoredOn: '2026-03-06',
    medicationCodeableConcept: { coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code: '308191', display: 'Amoxicillin 500 MG Oral Capsule' }], text: 'Amoxicillin 500 mg capsules' },
    dosageInstruction: [{ timing: { repeat: { frequency: 3, period: 1, periodUnit: 'd', boundsDuration: { value: 7, unit: 'days', system: 'http://unitsofmeasure.org', code: 'd' } } }, route: { text: 'oral' }, doseAndRate: [{ doseQuantity: { value: 1, unit: 'capsule' } }] }],
    ...over,
  });

  beforeAll(async () => {
    pat = await registerPatient('Rita');
    other = await registerPatient('Otto');
    dr = await practitioner('Greta');
    dr2 = await practitioner('Hans');
    const enc = (p: Person, who: Person) => post({ resourceType: 'Encounter', status: 'finished', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' }, subject: { reference: p.ref }, participant: [{ individual: { reference: who.ref } }], period: { start: '2026-03-06T09:00:00Z', end: '2026-03-06T09:30:00Z' } }, desk);
    encounter = `Encounter/${(await enc(pat, dr)).id}`;
    otherEncounter = `Encounter/${(await enc(other, dr)).id}`;
    await enc(pat, dr2); // dr2 also sees the patient (another encounter), but is not on `encounter`
  });

  let written: any;
  it('the practitioner of the encounter prescribes: requester and the product profile are set; the patient is mailed', async () => {
    written = await post(rx(), dr.token);
    expect(written.requester).toEqual({ reference: dr.ref });
    expect(written.meta.profile).toContain(PROFILE);
    const [mail] = await until('prescription mail', async () => (mails(pat.email, PRESCRIPTION).length ? mails(pat.email, PRESCRIPTION) : undefined));
    expect(mail!.body).toContain('Amoxicillin 500 mg capsules');
    expect(mail!.body).toContain('1 capsule, 3 time(s) per 1 d, oral');
    expect(mail!.body).toContain('Greta Doc');
  });

  it('is readable by the patient, in their searches and on their $everything; not by another patient', async () => {
    expect((await http('GET', `${srv.base}/MedicationRequest/${written.id}`, { token: pat.token })).status).toBe(200);
    const mine = await http('GET', `${srv.base}/MedicationRequest?subject=${pat.ref}`, { token: pat.token });
    expect(mine.body.entry.map((e: any) => e.resource.id)).toEqual([written.id]);
    const everything = await http('GET', `${srv.base}/Patient/${pat.id}/$everything`, { token: pat.token });
    expect(everything.status).toBe(200);
    expect(everything.body.entry.map((e: any) => `${e.resource.resourceType}/${e.resource.id}`)).toContain(`MedicationRequest/${written.id}`);
    expectOutcome(await http('GET', `${srv.base}/MedicationRequest/${written.id}`, { token: other.token }), 404);
  });

  it.each<[string, () => Person | string, () => Record<string, unknown>, number, string]>([
    ['another practitioner (not on the encounter)', () => dr2, () => rx(), 403, 'not a participant'],
    ['the patient', () => pat, () => rx(), 403, 'practitioner'],
    ['a system administrator', () => desk, () => rx(), 403, 'practitioner'],
    ['a requester other than the writer', () => dr, () => rx({ requester: { reference: dr2.ref } }), 403, 'requester'],
    ['no encounter', () => dr, () => rx({ encounter: undefined }), 422, 'encounter'],
    ['an unknown encounter', () => dr, () => rx({ encounter: { reference: 'Encounter/none' } }), 422, 'not known'],
    ["another patient's encounter", () => dr, () => rx({ encounter: { reference: otherEncounter } }), 422, 'is not an encounter of'],
    ['no dosage instruction', () => dr, () => rx({ dosageInstruction: undefined }), 400, 'dosageInstruction'],
    ['a dosage without timing', () => dr, () => rx({ dosageInstruction: [{ doseAndRate: [{ doseQuantity: { value: 1, unit: 'capsule' } }] }] }), 400, 'mvy-rx-3'],
    ['a dosage without dose', () => dr, () => rx({ dosageInstruction: [{ timing: { code: { text: 'BID' } } }] }), 400, 'mvy-rx-3'],
    ['a zero dose', () => dr, () => rx({ dosageInstruction: [{ timing: { code: { text: 'BID' } }, doseAndRate: [{ doseQuantity: { value: 0, unit: 'capsule' } }] }] }), 400, 'mvy-rx-4'],
    ['a frequency without period', () => dr, () => rx({ dosageInstruction: [{ timing: { repeat: { frequency: 2 } }, doseAndRate: [{ doseQuantity: { value: 1, unit: 'capsule' } }] }] }), 400, 'mvy-rx-5'],
    ['an inverted dose range', () => dr, () => rx({ dosageInstruction: [{ timing: { code: { text: 'BID' } }, doseAndRate: [{ doseRange: { low: { value: 3, unit: 'capsule' }, high: { value: 1, unit: 'capsule' } } }] }] }), 400, 'mvy-rx-6'],
    ['no authoredOn', () => dr, () => rx({ authoredOn: undefined }), 400, 'authoredOn'],
  ])('refused for %s, nothing stored, no mail', async (_what, who, body, code, text) => {
    const before = await historyTotal(srv.base, 'MedicationRequest');
    // Only prescription notices: account welcome mails of the setup may still be arriving.
    const notices = () => smtp.inbox.filter((m) => m.subject === PRESCRIPTION).length;
    const mailed = notices();
    const w = who();
    const res = await http('POST', `${srv.base}/MedicationRequest`, { body: body(), token: typeof w === 'string' ? w : w.token });
    expectOutcome(res, code);
    expect(JSON.stringify(res.body.issue)).toContain(text);
    expect(await historyTotal(srv.base, 'MedicationRequest')).toBe(before);
    expect(notices()).toBe(mailed);
    // …nor a notice queued (it would be queued before the answer).
    expect(await srv.running.mongo.db.collection('jobs').countDocuments({ name: 'prescription-notice', _id: { $ne: `prescription:MedicationRequest/${written.id}` as never } })).toBe(0);
  });

  it('only the prescriber changes or deletes it; a change sends no second notice', async () => {
    const changed = { ...written, status: 'completed' };
    expectOutcome(await http('PUT', `${srv.base}/MedicationRequest/${written.id}`, { body: changed, token: dr2.token }), 403);
    expectOutcome(await http('PATCH', `${srv.base}/MedicationRequest/${written.id}`, { raw: JSON.stringify([{ op: 'replace', path: '/status', value: 'completed' }]), headers: { 'content-type': 'application/json-patch+json' }, token: dr2.token }), 403);
    expectOutcome(await http('DELETE', `${srv.base}/MedicationRequest/${written.id}`, { token: dr2.token }), 403);
    // The dosage rules hold on updates too.
    expectOutcome(await http('PUT', `${srv.base}/MedicationRequest/${written.id}`, { body: { ...written, dosageInstruction: [{ text: 'as needed' }] }, token: dr.token }), 400);
    const ok = await http('PUT', `${srv.base}/MedicationRequest/${written.id}`, { body: changed, token: dr.token });
    expect({ status: ok.status, body: ok.text.slice(0, 300) }).toMatchObject({ status: 200 });
    expect(ok.body.meta.versionId).toBe('2');
    await until('prescription jobs', async () => !(await srv.running.mongo.db.collection('jobs').findOne({ name: 'prescription-notice' })));
    expect(mails(pat.email, PRESCRIPTION)).toHaveLength(1);
  });

  it('a participant through their PractitionerRole prescribes too', async () => {
    const role = await post({ resourceType: 'PractitionerRole', active: true, practitioner: { reference: dr.ref } }, desk);
    const enc = await post({ resourceType: 'Encounter', status: 'in-progress', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' }, subject: { reference: other.ref }, participant: [{ individual: { reference: `PractitionerRole/${role.id}` } }] }, desk);
    const res = await http('POST', `${srv.base}/MedicationRequest`, { token: dr.token, body: rx({ subject: { reference: other.ref }, encounter: { reference: `Encounter/${enc.id}` } }) });
    expect({ status: res.status, body: res.text.slice(0, 300) }).toMatchObject({ status: 201 });
    expectOutcome(await http('POST', `${srv.base}/MedicationRequest`, { token: dr2.token, body: rx({ subject: { reference: other.ref }, encounter: { reference: `Encounter/${enc.id}` } }) }), 403);
  });
});
