/**
 * Search benchmark: loads a deterministic synthetic population through the real server (200 Practitioners,
 * then one transaction Bundle of ≈50 resources per patient: Patient, Encounters, Observations, Conditions,
 * MedicationRequests, Appointments) and times typical searches at several concurrencies.
 *   MONGODB_URI=mongodb://127.0.0.1:27017/bench_search npm run bench-search -- [--patients 10000] [--concurrency 1,8]
 *     [--requests 200] [--skip-load] [--db NAME] [--warmup 5]
 * The database is --db, else the URI's path, else bench_search. A load replaces it (only if it is empty or an
 * earlier load of this script); --skip-load reuses the last completed load, whose patient ids (taken from the
 * transaction responses' Location) are kept in its bench_search_meta collection.
 * Prints requests/s, p50/p95/p99 and the share of non-200 answers per query and concurrency (with the first
 * error body); exits 1 if any request was not answered 200.
 */
import { parseArgs } from 'node:util';
import { MongoClient, type Db } from 'mongodb';
import { percentiles, runConcurrent } from './lib/stats.js';
import { progressBar } from './lib/progress.js';
import { startServerProcess } from './lib/server-process.js';
import { serviceTokenSource } from './lib/service-token.js';
import { SEP, tokenQueryKey } from '../src/fhir/search/index-entry.js';
import { dateRange, fold, instantKey } from '../src/fhir/search/values.js';

const { values } = parseArgs({
  options: {
    patients: { type: 'string', default: '10000' },
    concurrency: { type: 'string', default: '1,8' },
    requests: { type: 'string', default: '200' },
    'skip-load': { type: 'boolean', default: false },
    db: { type: 'string' },
    warmup: { type: 'string', default: '5' },
  },
});
if (!process.env.MONGODB_URI) {
  console.error('Set MONGODB_URI: the benchmark measures a real engine, never an embedded one.');
  process.exit(2);
}
const count = (name: string, v: string, min: number) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) {
    console.error(`--${name} must be an integer of at least ${min}, not ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return n;
};
const PATIENTS = count('patients', values.patients!, 1);
const REQUESTS = count('requests', values.requests!, 1);
const WARMUP = count('warmup', values.warmup!, 0);
const CONCURRENCY = values.concurrency!.split(',').map((c) => count('concurrency', c.trim(), 1));
const uriDb = /^mongodb(?:\+srv)?:\/\/[^/?#]+\/([^?#]+)/.exec(process.env.MONGODB_URI)?.[1];
const dbName = values.db ?? (uriDb ? decodeURIComponent(uriDb) : 'bench_search');
const META = 'bench_search_meta';
/** The Backend Services token every request carries (set once the server runs). */
let token: () => Promise<string> = async () => '';
/** Set once connected: whether the engine is FerretDB (the server then reports totals only for complete first pages). */
let FERRET = false;
/** Bump when the generated data changes: a --skip-load of an older load then warns. */
const GENERATOR_VERSION = 1;
const PRACTITIONERS = 200;
const LOAD_CLIENTS = 4;

// ---------------------------------------------------------------------------------------------------------
// Deterministic data: every patient's Bundle comes from a PRNG seeded with its number, so a patient's data
// (and the query parameters drawn from it) are the same on every run, whatever the load order.

type Rng = ReturnType<typeof rng>;
/** mulberry32, seeded by an FNV-1a hash of the parts. */
function rng(...parts: number[]) {
  let a = 2166136261;
  for (const p of parts) a = Math.imul(a ^ p, 16777619) >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const hex = (n: number) => Math.floor(next() * 16 ** n).toString(16).padStart(n, '0');
  return {
    next,
    /** An integer in [lo, hi]. */
    int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!,
    chance: (p: number) => next() < p,
    uuid: () => `${hex(8)}-${hex(4)}-4${hex(3)}-${'89ab'[Math.floor(next() * 4)]}${hex(3)}-${hex(12)}`,
  };
}
const SEED = { demographics: 1, bundle: 2, practitioner: 3, query: 4 };

const FAMILIES = ['Müller', 'García', 'Smith', 'Nguyễn', 'Okafor', 'Kowalski', 'Yılmaz', 'Silva', 'Chen', "O'Brien", 'Johansson', 'Dubois', 'Hernández', 'Rossi', 'Novák', 'Søndergaard', 'Papadopoulos', 'Kim', 'Singh', 'Ivanova', 'Brown', 'Martínez', 'Schröder', 'Van der Berg', 'Łukasik', 'Haddad', 'Tanaka', 'Öztürk', 'Williams', 'Fernández'];
const GIVEN_F = ['Ana', 'Mei', 'Zofia', 'Ayşe', 'Siobhán', 'Chloé', 'Maria', 'Zoë', 'Emma', 'Inès', 'Fatima', 'Yuki', 'Hanna', 'Léa', 'Priya'];
const GIVEN_M = ['José', 'John', 'Jürgen', 'Chidi', 'João', 'Li', 'Björn', 'Ahmed', 'Luca', 'René', 'Tomáš', 'Kenji', 'Omar', 'Søren', 'David'];
const MRN = 'http://medivoy.example/mrn';
const LOINC = 'http://loinc.org';
const SNOMED = 'http://snomed.info/sct';
const RXNORM = 'http://www.nlm.nih.gov/research/umls/rxnorm';
const UCUM = 'http://unitsofmeasure.org';
type Vital = { code: string; display: string; unit: string; ucum: string; min: number; max: number; digits: number; lab?: boolean };
const V = {
  hr: { code: '8867-4', display: 'Heart rate', unit: 'beats/minute', ucum: '/min', min: 50, max: 110, digits: 0 },
  sbp: { code: '8480-6', display: 'Systolic blood pressure', unit: 'mmHg', ucum: 'mm[Hg]', min: 100, max: 165, digits: 0 },
  dbp: { code: '8462-4', display: 'Diastolic blood pressure', unit: 'mmHg', ucum: 'mm[Hg]', min: 60, max: 100, digits: 0 },
  rr: { code: '9279-1', display: 'Respiratory rate', unit: 'breaths/minute', ucum: '/min', min: 12, max: 22, digits: 0 },
  temp: { code: '8310-5', display: 'Body temperature', unit: 'Cel', ucum: 'Cel', min: 36, max: 38.5, digits: 1 },
  weight: { code: '29463-7', display: 'Body weight', unit: 'kg', ucum: 'kg', min: 45, max: 120, digits: 1 },
  spo2: { code: '59408-5', display: 'Oxygen saturation in Arterial blood by Pulse oximetry', unit: '%', ucum: '%', min: 92, max: 100, digits: 0 },
  glucose: { code: '2339-0', display: 'Glucose [Mass/volume] in Blood', unit: 'mg/dL', ucum: 'mg/dL', min: 70, max: 200, digits: 0, lab: true },
  chol: { code: '2093-3', display: 'Cholesterol [Mass/volume] in Serum or Plasma', unit: 'mg/dL', ucum: 'mg/dL', min: 140, max: 260, digits: 0, lab: true },
  a1c: { code: '4548-4', display: 'Hemoglobin A1c/Hemoglobin.total in Blood', unit: '%', ucum: '%', min: 4.5, max: 9, digits: 1, lab: true },
} satisfies Record<string, Vital>;
const CONDITIONS = [
  ['44054006', 'Diabetes mellitus type 2'], ['38341003', 'Hypertensive disorder'], ['195967001', 'Asthma'], ['55822004', 'Hyperlipidemia'],
  ['35489007', 'Depressive disorder'], ['40055000', 'Chronic sinusitis'], ['10509002', 'Acute bronchitis'], ['444814009', 'Viral sinusitis'],
  ['271737000', 'Anemia'], ['162864005', 'Body mass index 30+ - obesity'],
] as const;
const MEDICATIONS = [
  ['860975', '24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet'], ['314076', 'lisinopril 10 MG Oral Tablet'],
  ['197361', 'amlodipine 5 MG Oral Tablet'], ['310798', 'Hydrochlorothiazide 25 MG Oral Tablet'], ['313782', 'Acetaminophen 325 MG Oral Tablet'],
  ['895994', '120 ACTUAT fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler'], ['308136', 'amlodipine 2.5 MG Oral Tablet'],
  ['259255', 'atorvastatin 80 MG Oral Tablet'],
] as const;

const DAY = 86_400_000;
const iso = (ms: number) => new Date(ms).toISOString();
const pad = (n: number) => String(n).padStart(2, '0');
const cc = (system: string, code: string, display: string) => ({ coding: [{ system, code, display }], text: display });
const practitionerId = (i: number) => `bench-prac-${i}`;

/** What the queries need to know of patient n without generating its whole Bundle. */
function demographics(n: number) {
  const r = rng(SEED.demographics, n);
  const female = r.chance(0.5);
  return {
    family: r.pick(FAMILIES),
    given: r.pick(female ? GIVEN_F : GIVEN_M),
    gender: female ? 'female' : 'male',
    birthDate: `${r.int(1940, 2010)}-${pad(r.int(1, 12))}-${pad(r.int(1, 28))}`,
    gp: r.int(0, PRACTITIONERS - 1),
  };
}

type Entry = { fullUrl?: string; resource: Record<string, unknown>; request: { method: string; url: string } };
type Bundle = { resourceType: 'Bundle'; type: 'transaction'; entry: Entry[] };

function practitionersBundle(): Bundle {
  const r = rng(SEED.practitioner);
  return {
    resourceType: 'Bundle', type: 'transaction',
    entry: Array.from({ length: PRACTITIONERS }, (_, i) => {
      const female = r.chance(0.5);
      const id = practitionerId(i);
      return {
        resource: {
          resourceType: 'Practitioner', id, active: true,
          identifier: [{ system: 'http://hl7.org/fhir/sid/us-npi', value: String(1000000000 + i) }],
          name: [{ use: 'official', family: r.pick(FAMILIES), given: [r.pick(female ? GIVEN_F : GIVEN_M)], prefix: ['Dr.'] }],
          gender: female ? 'female' : 'male',
        },
        request: { method: 'PUT', url: `Practitioner/${id}` },
      };
    }),
  };
}

/** Patient n's transaction: every resource a POST, referring to the others by urn:uuid. */
function patientBundle(n: number): Bundle {
  const d = demographics(n);
  const r = rng(SEED.bundle, n);
  const entry: Entry[] = [];
  const add = (resource: Record<string, unknown>) => {
    const fullUrl = `urn:uuid:${r.uuid()}`;
    entry.push({ fullUrl, resource, request: { method: 'POST', url: String(resource.resourceType) } });
    return fullUrl;
  };
  const patient = add({
    resourceType: 'Patient', active: true,
    identifier: [{ use: 'usual', type: cc('http://terminology.hl7.org/CodeSystem/v2-0203', 'MR', 'Medical record number'), system: MRN, value: `MRN-${n}` }],
    name: [{ use: 'official', family: d.family, given: [d.given] }],
    gender: d.gender,
    birthDate: d.birthDate,
    generalPractitioner: [{ reference: `Practitioner/${practitionerId(d.gp)}` }],
  });
  const subject = { reference: patient };
  const doctor = () => `Practitioner/${practitionerId(r.chance(0.6) ? d.gp : r.int(0, PRACTITIONERS - 1))}`;
  const diabetic = r.chance(0.4);
  const from = Date.UTC(2019, 0, 1);
  const span = Date.UTC(2025, 0, 1) - from;
  const visits = Array.from({ length: r.int(4, 6) }, () => Math.floor((from + r.next() * span) / DAY) * DAY + r.int(8 * 60, 17 * 60) * 60_000).sort((a, b) => a - b);

  const encounters = visits.map((start) => {
    const ref = add({
      resourceType: 'Encounter', status: 'finished',
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB', display: 'ambulatory' },
      type: [cc(SNOMED, '185349003', 'Encounter for check up (procedure)')],
      subject,
      participant: [{ individual: { reference: doctor() } }],
      period: { start: iso(start), end: iso(start + 30 * 60_000) },
    });
    return { ref, start };
  });

  const observation = (v: Vital, at: number, encounter: string) =>
    add({
      resourceType: 'Observation', status: 'final',
      category: [cc('http://terminology.hl7.org/CodeSystem/observation-category', v.lab ? 'laboratory' : 'vital-signs', v.lab ? 'Laboratory' : 'Vital Signs')],
      code: cc(LOINC, v.code, v.display),
      subject,
      encounter: { reference: encounter },
      effectiveDateTime: iso(at),
      issued: iso(at + (v.lab ? DAY : 0)),
      valueQuantity: { value: Number((v.min + r.next() * (v.max - v.min)).toFixed(v.digits)), unit: v.unit, system: UCUM, code: v.ucum },
    });
  for (const e of encounters) {
    const at = e.start + 5 * 60_000;
    for (const v of [V.hr, V.sbp, V.dbp, V.rr, V.temp, V.weight]) observation(v, at, e.ref);
    if (r.chance(0.5)) observation(V.spo2, at, e.ref);
    if (diabetic && r.chance(0.4)) observation(V.glucose, at + 15 * 60_000, e.ref);
    if (r.chance(0.2)) observation(V.chol, at + 15 * 60_000, e.ref);
    if (diabetic && r.chance(0.2)) observation(V.a1c, at + 15 * 60_000, e.ref);
  }

  const conditions = r.int(3, 7);
  for (let i = 0; i < conditions; i++) {
    const e = r.pick(encounters);
    const [code, display] = diabetic && i === 0 ? CONDITIONS[0] : r.pick(CONDITIONS);
    add({
      resourceType: 'Condition',
      clinicalStatus: cc('http://terminology.hl7.org/CodeSystem/condition-clinical', r.chance(0.7) ? 'active' : 'resolved', 'Clinical status'),
      verificationStatus: cc('http://terminology.hl7.org/CodeSystem/condition-ver-status', 'confirmed', 'Confirmed'),
      category: [cc('http://terminology.hl7.org/CodeSystem/condition-category', 'encounter-diagnosis', 'Encounter Diagnosis')],
      code: cc(SNOMED, code, display),
      subject,
      encounter: { reference: e.ref },
      onsetDateTime: iso(e.start),
      recordedDate: iso(e.start),
    });
  }

  const prescriptions = r.int(2, 6);
  for (let i = 0; i < prescriptions; i++) {
    const e = r.pick(encounters);
    const [code, display] = r.pick(MEDICATIONS);
    add({
      resourceType: 'MedicationRequest', status: e.start > Date.UTC(2024, 0, 1) || r.chance(0.3) ? 'active' : 'completed', intent: 'order',
      medicationCodeableConcept: cc(RXNORM, code, display),
      subject,
      encounter: { reference: e.ref },
      authoredOn: iso(e.start + 20 * 60_000),
      requester: { reference: doctor() },
      dosageInstruction: [{ sequence: 1, text: 'Take one tablet daily', timing: { repeat: { frequency: 1, period: 1, periodUnit: 'd' } } }],
    });
  }

  const appointments = r.int(1, 3);
  for (let i = 0; i < appointments; i++) {
    // 2024-01-01 is a Monday: week w's weekdays, 08:00-16:30 in half hours.
    const start = Date.UTC(2024, 0, 1) + (r.int(0, 51) * 7 + r.int(0, 4)) * DAY + r.int(16, 33) * 30 * 60_000;
    add({
      resourceType: 'Appointment', status: 'booked',
      serviceType: [cc(SNOMED, '394814009', 'General practice')],
      description: 'Follow-up visit',
      start: iso(start),
      end: iso(start + 30 * 60_000),
      minutesDuration: 30,
      participant: [
        { actor: { reference: patient, display: `${d.given} ${d.family}` }, required: 'required', status: 'accepted' },
        { actor: { reference: doctor() }, required: 'required', status: 'accepted' },
      ],
    });
  }
  return { resourceType: 'Bundle', type: 'transaction', entry };
}

// ---------------------------------------------------------------------------------------------------------
// Queries. Each draws its parameters for every request from the loaded population (a different patient or
// practitioner per request), with a seeded PRNG, before timing starts.

type Population = { patients: number; patientIds: string[] };
interface Query<P> {
  name: string;
  params: (r: Rng, pop: Population) => P;
  /** The search, relative to the FHIR base. */
  url: (p: P) => string;
  /**
   * The same search done directly with the MongoDB driver on the server's database: the hand-written
   * queries over the stored index fields that give the same first page (JSON parsed) and the same total,
   * as scripts/bench.ts does for reads. Run with the same parameters and concurrency, timed the same way,
   * and printed as a "driver" row with the HTTP/driver ratio.
   */
  driver?: (db: Db, p: P) => Promise<unknown>;
}
type AnyQuery = Query<any>;

/**
 * First page of 20 (JSON parsed), and the total only when the engine reports one by default: MongoDB counts
 * every search; on FerretDB the server gives a total only when the first page holds every match.
 */
async function pageAndTotal(db: Db, type: string, filter: Record<string, unknown>, sort: Record<string, 1 | -1>) {
  const col = db.collection<any>(`fhir_${type}`);
  const f = { ...filter, del: false };
  const docs = await col.find(f).sort(sort).limit(21).toArray();
  for (const d of docs.slice(0, 20)) JSON.parse(d.json);
  const total = docs.length <= 20 ? docs.length : FERRET ? undefined : await col.countDocuments(f);
  return { docs: docs.slice(0, 20), total };
}

/** `date=geA&date=ltB` over the stored [start, end) ranges (the server checks the same elements exactly). */
function dateBetween(code: string, ge: string, lt: string): Record<string, unknown>[] {
  const p = `${code}${SEP}`;
  return [
    { dh: { $elemMatch: { $gte: `${p}${instantKey(dateRange(ge)!.lo)}\u0002`, $lt: `${p}\uffff` } } },
    { dt: { $elemMatch: { $gte: p, $lt: `${p}${instantKey(dateRange(lt)!.lo)}` } } },
  ];
}
const q = <P>(query: Query<P>): AnyQuery => query;
const enc = encodeURIComponent;
const anyPatient = (r: Rng, pop: Population) => r.int(0, pop.patients - 1);
/** The first three characters (code points) of a family name. */
const prefixOf = (family: string) => Array.from(family).slice(0, 3).join('');

const QUERIES: AnyQuery[] = [
  q({
    name: 'patient-by-name',
    params: (r, pop) => ({ prefix: prefixOf(demographics(anyPatient(r, pop)).family) }),
    url: (p) => `Patient?name=${enc(p.prefix)}`,
    driver: (db, p) => pageAndTotal(db, 'Patient', { st: `name${SEP}${fold(p.prefix)}` }, { _id: 1 }),
  }),
  q({
    name: 'patient-by-identifier',
    params: (r, pop) => ({ mrn: `MRN-${anyPatient(r, pop)}` }),
    url: (p) => `Patient?identifier=${enc(`${MRN}|${p.mrn}`)}`,
    driver: (db, p) => pageAndTotal(db, 'Patient', { tk: tokenQueryKey('identifier', `${MRN}|${p.mrn}`) }, { _id: 1 }),
  }),
  q({
    name: 'obs-for-patient',
    params: (r, pop) => ({ patient: `Patient/${pop.patientIds[anyPatient(r, pop)]}`, code: V.hr.code, ge: '2021-01-01', lt: '2023-01-01' }),
    url: (p) => `Observation?patient=${enc(p.patient)}&code=${enc(`${LOINC}|${p.code}`)}&date=ge${p.ge}&date=lt${p.lt}&_sort=-date`,
    driver: (db, p) =>
      pageAndTotal(db, 'Observation', { tk: `patient${SEP}${p.patient}`, $and: [{ tk: tokenQueryKey('code', `${LOINC}|${p.code}`) }, ...dateBetween('date', p.ge, p.lt)] }, { 'sd.date': -1, _id: 1 }),
  }),
  q({
    name: 'appointments-week-include',
    params: (r) => ({ practitioner: `Practitioner/${practitionerId(r.int(0, PRACTITIONERS - 1))}`, ge: '2024-03-04', lt: '2024-03-11' }),
    url: (p) => `Appointment?practitioner=${enc(p.practitioner)}&date=ge${p.ge}&date=lt${p.lt}&_include=Appointment:patient`,
    driver: async (db, p) => {
      const page = await pageAndTotal(db, 'Appointment', { tk: `practitioner${SEP}${p.practitioner}`, $and: dateBetween('date', p.ge, p.lt) }, { _id: 1 });
      const patients = new Set(page.docs.flatMap((d: any) => (d.tk as string[]).filter((k) => k.startsWith(`patient${SEP}Patient/`)).map((k) => k.slice(8))));
      const col = db.collection<any>('fhir_Patient');
      return Promise.all([...patients].map((key) => col.findOne({ _id: key, del: false }).then((d) => d && JSON.parse(d.json))));
    },
  }),
  q({
    name: 'has-reverse-chain',
    params: (r, pop) => ({ code: V.glucose.code, family: demographics(anyPatient(r, pop)).family }),
    url: (p) => `Patient?_has:Observation:patient:code=${enc(`${LOINC}|${p.code}`)}&name=${enc(p.family)}`,
    driver: async (db, p) => {
      // The patients of that name, then which of them have such an Observation (one lookup each).
      const named = await db.collection<any>('fhir_Patient').find({ st: `name${SEP}${fold(p.family).slice(0, 24)}`, del: false }, { projection: { _id: 1 } }).toArray();
      const obs = db.collection<any>('fhir_Observation');
      const code = tokenQueryKey('code', `${LOINC}|${p.code}`);
      const hits = await Promise.all(named.map((n) => obs.findOne({ tk: `patient${SEP}${n._id}`, $and: [{ tk: code }] }, { projection: { _id: 1 } }).then((o) => (o ? n._id : undefined))));
      const keys = hits.filter(Boolean).sort().slice(0, 20);
      return Promise.all(keys.map((k) => db.collection<any>('fhir_Patient').findOne({ _id: k }).then((d) => JSON.parse(d.json))));
    },
  }),
];

// ---------------------------------------------------------------------------------------------------------

type LoadMeta = {
  _id: string;
  version: number;
  patients: number;
  practitioners: number;
  /** Resources in the patients' Bundles (the Practitioners not included) and the time their load took. */
  resources: number;
  seconds: number;
  patientIds: string[];
  completedAt: Date;
};

async function postBundle(base: string, bundle: Bundle): Promise<{ entry?: { response?: { status?: string; location?: string } }[] }> {
  const r = await fetch(`${base}/fhir`, { method: 'POST', headers: { 'content-type': 'application/fhir+json', prefer: 'return=minimal', authorization: `Bearer ${await token()}` }, body: JSON.stringify(bundle) });
  const text = await r.text();
  if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${text.slice(0, 2000)}`);
  return JSON.parse(text);
}

/** The Patient's server id, from its entry's response.location (`[base/]Patient/<id>/_history/<v>`). */
function patientIdOf(reply: Awaited<ReturnType<typeof postBundle>>): string {
  for (const e of reply.entry ?? []) {
    const m = /(?:^|\/)Patient\/([A-Za-z0-9.-]{1,64})(?:\/_history\/[^/]+)?$/.exec(e.response?.location ?? '');
    if (m) return m[1]!;
  }
  throw new Error(`no Patient location in the transaction response: ${JSON.stringify(reply).slice(0, 1000)}`);
}

async function load(base: string, db: Db, patients: number): Promise<LoadMeta> {
  let t = performance.now();
  await postBundle(base, practitionersBundle());
  const pracSeconds = (performance.now() - t) / 1000;
  console.log(`loaded ${PRACTITIONERS} Practitioners (one transaction of PUTs) in ${pracSeconds.toFixed(1)} s`);

  const patientIds: string[] = new Array(patients);
  const bar = progressBar('load', patients);
  let done = 0;
  let resources = 0;
  let failure: Error | undefined;
  t = performance.now();
  await runConcurrent(patients, LOAD_CLIENTS, async (n) => {
    if (failure) return; // stop the other clients after the first failure
    try {
      const bundle = patientBundle(n);
      patientIds[n] = patientIdOf(await postBundle(base, bundle));
      resources += bundle.entry.length;
      bar.update(++done, `${(resources / ((performance.now() - t) / 1000)).toFixed(0)} resources/s`);
    } catch (err) {
      failure ??= new Error(`loading patient ${n}: ${(err as Error).message}`);
    }
  });
  bar.done();
  if (failure) throw failure;
  const seconds = (performance.now() - t) / 1000;
  console.log(`loaded ${patients} patients, ${resources} resources (${(resources / patients).toFixed(1)}/patient) with ${LOAD_CLIENTS} clients in ${seconds.toFixed(1)} s: ${(resources / seconds).toFixed(0)} resources/s, ${(patients / seconds).toFixed(1)} Bundles/s`);
  const meta: LoadMeta = { _id: 'load', version: GENERATOR_VERSION, patients, practitioners: PRACTITIONERS, resources, seconds, patientIds, completedAt: new Date() };
  await db.collection<LoadMeta>(META).replaceOne({ _id: 'load' }, meta, { upsert: true });
  return meta;
}

async function printRowCounts(db: Db) {
  const names = (await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name).sort();
  let total = 0;
  let current = 0;
  console.log(`\ndatabase ${dbName}: documents per collection`);
  for (const name of names) {
    // FerretDB 1.x counts by decoding every document (minutes for 350k); collStats counts in SQL.
    const stats = await db.command({ collStats: name }).catch(() => undefined);
    const n = typeof stats?.count === 'number' ? stats.count : await db.collection(name).estimatedDocumentCount();
    total += n;
    if (name.startsWith('fhir_') && !name.endsWith('_history')) current += n;
    console.log(`  ${name.padEnd(32)} ${String(n).padStart(10)}`);
  }
  console.log(`  ${'total'.padEnd(32)} ${String(total).padStart(10)}   (current resources in fhir_<Type>: ${current})`);
}

type Run = { seconds: number; ms: number[]; failures: number; statuses: Map<string, number>; firstError?: string; matches: number };

/** Runs `one(i)` for each request at the given concurrency; a failure is counted, never thrown. */
async function timed(n: number, concurrency: number, one: (i: number) => Promise<{ status: string; error?: string; matches?: number }>): Promise<Run> {
  const run: Run = { seconds: 0, ms: [], failures: 0, statuses: new Map(), matches: 0 };
  const t = performance.now();
  run.ms = await runConcurrent(n, concurrency, async (i) => {
    let res: Awaited<ReturnType<typeof one>>;
    try {
      res = await one(i);
    } catch (err) {
      res = { status: 'error', error: (err as Error).message };
    }
    run.statuses.set(res.status, (run.statuses.get(res.status) ?? 0) + 1);
    if (res.error !== undefined) {
      run.failures++;
      run.firstError ??= res.error;
    }
    run.matches += res.matches ?? 0;
  });
  run.seconds = (performance.now() - t) / 1000;
  return run;
}

async function httpSearch(base: string, url: string) {
  const r = await fetch(`${base}/fhir/${url}`, { headers: { accept: 'application/fhir+json', authorization: `Bearer ${await token()}` } });
  const text = await r.text();
  if (r.status !== 200) return { status: String(r.status), error: `HTTP ${r.status} for GET /fhir/${decodeURIComponent(url)}\n      ${text.slice(0, 800)}` };
  const bundle = JSON.parse(text) as { entry?: { search?: { mode?: string } }[] };
  return { status: '200', matches: (bundle.entry ?? []).filter((e) => (e.search?.mode ?? 'match') === 'match').length };
}

// ---------------------------------------------------------------------------------------------------------

const client = await new MongoClient(process.env.MONGODB_URI).connect();
const engine = await client.db('admin').command({ buildInfo: 1 }).then((b) => (b.ferretdbVersion ? `FerretDB ${b.ferretdbVersion}` : `MongoDB ${b.version}`));
FERRET = engine.startsWith('FerretDB');
const db = client.db(dbName);
let meta = await db.collection<LoadMeta>(META).findOne({ _id: 'load' });
if (values['skip-load']) {
  if (!meta) {
    console.error(`--skip-load: database ${dbName} holds no completed load (no ${META}); run once without --skip-load.`);
    await client.close();
    process.exit(2);
  }
  if (meta.version !== GENERATOR_VERSION) console.warn(`warning: the load in ${dbName} was made by generator version ${meta.version}, this is ${GENERATOR_VERSION}: query parameters may not match the data.`);
  if (meta.patients !== PATIENTS && process.argv.some((a) => a.startsWith('--patients'))) console.warn(`warning: --patients ${PATIENTS} ignored: reusing the ${meta.patients} patients loaded.`);
} else {
  // A load starts from an empty database, so loading again is idempotent; never replace a database this script did not fill.
  const existing = (await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name);
  if (existing.length && !existing.includes(META)) {
    console.error(`database ${dbName} holds ${existing.length} collections but no ${META}: not a database of this benchmark, so it is not replaced. Choose another with --db or the URI's path.`);
    await client.close();
    process.exit(2);
  }
  if (existing.length) {
    console.log(`dropping database ${dbName} (an earlier load of this benchmark)`);
    await db.dropDatabase();
  }
  meta = null;
}

// The server runs in its own process, as in production, so the load generator does not share its event loop.
const server = await startServerProcess({ MONGODB_DB: dbName, LOG_LEVEL: 'silent' });
token = await serviceTokenSource(db, server.url);
try {
  console.log(`engine: ${engine}  database: ${dbName}  node ${process.version}  server: ${server.url}`);
  if (!meta) meta = await load(server.url, db, PATIENTS);
  else console.log(`reusing the load of ${meta.completedAt.toISOString()}: ${meta.patients} patients with ${meta.resources} resources, loaded at ${(meta.resources / meta.seconds).toFixed(0)} resources/s, and ${meta.practitioners} Practitioners`);
  const pop: Population = { patients: meta.patients, patientIds: meta.patientIds };
  await printRowCounts(db);

  console.log(`\nsearches: ${REQUESTS} requests per query and concurrency, after ${WARMUP} untimed warm-up requests per query; e.g.`);
  for (const query of QUERIES) console.log(`  ${query.name.padEnd(26)} GET /fhir/${decodeURIComponent(query.url(query.params(rng(SEED.query, 0), pop)))}`);
  const base = server.url;
  const warm = rng(SEED.query, 0);
  for (const query of QUERIES) for (let i = 0; i < WARMUP; i++) await httpSearch(base, query.url(query.params(warm, pop))).catch(() => undefined);

  let anyFailure = false;
  const shown = new Map<string, Set<string>>();
  console.log('\nquery                      |   c | path   |   req/s |  p50 ms |  p95 ms |  p99 ms | non-200              | matches/req');
  for (const [ci, concurrency] of CONCURRENCY.entries()) {
    for (const [qi, query] of QUERIES.entries()) {
      const r = rng(SEED.query, 1 + qi, 1 + ci);
      const params = Array.from({ length: REQUESTS }, () => query.params(r, pop));
      const row = (path: string, run: Run, tail: string) => {
        const p = percentiles(run.ms);
        const statuses = [...run.statuses].filter(([s]) => s !== '200' && s !== 'ok').map(([s, k]) => `${s}×${k}`).join(' ');
        const bad = run.failures ? `${((run.failures / REQUESTS) * 100).toFixed(1)}% (${statuses})` : '0%';
        console.log(`${query.name.padEnd(26)} | ${String(concurrency).padStart(3)} | ${path.padEnd(6)} | ${(REQUESTS / run.seconds).toFixed(1).padStart(7)} | ${p.p50.toFixed(1).padStart(7)} | ${p.p95.toFixed(1).padStart(7)} | ${p.p99.toFixed(1).padStart(7)} | ${bad.padEnd(20)} | ${tail}`);
        if (!run.firstError) return;
        anyFailure = true;
        // The first error body of a query is printed once, not again at each concurrency.
        const seen = shown.get(`${query.name}/${path}`) ?? new Set<string>();
        const key = run.firstError.split('\n').slice(1).join('\n') || run.firstError; // the body, not the URL
        if (!seen.has(key)) console.log(`    first error: ${run.firstError}`);
        shown.set(`${query.name}/${path}`, seen.add(key));
      };
      const http = await timed(REQUESTS, concurrency, (i) => httpSearch(base, query.url(params[i])));
      const ok = http.statuses.get('200');
      row('HTTP', http, ok ? (http.matches / ok).toFixed(1) : '-');
      if (query.driver) {
        const driver = await timed(REQUESTS, concurrency, async (i) => {
          await query.driver!(db, params[i]);
          return { status: 'ok' };
        });
        // A ratio against failed HTTP requests would mean nothing.
        row('driver', driver, http.failures ? 'HTTP/driver: n/a (HTTP not all 200)' : `HTTP/driver throughput ${((driver.seconds / http.seconds) * 100).toFixed(0)}%`);
      }
    }
  }
  if (anyFailure) {
    console.log('\nSome requests were not answered 200: see the non-200 column and the first errors above.');
    process.exitCode = 1;
  }
} finally {
  await server.stop();
  await client.close();
}
