import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { getResourceTypes } from '../src/fhir/definitions.js';
import { loadProfiles } from '../src/fhir/validation/profiles.js';
import { validateResource } from '../src/fhir/validation/validate-resource.js';

const P = 'https://medivoy.org/fhir/StructureDefinition/';
const example = (file: string) => JSON.parse(readFileSync(new URL(`../node_modules/hl7.fhir.r4.examples/${file}`, import.meta.url), 'utf8'));
const errorsOf = (r: unknown) => validateResource(r).filter((i) => i.severity === 'error');
const where = (r: unknown) => errorsOf(r).flatMap((i) => i.expression ?? []);

beforeAll(() => {
  loadProfiles();
});

describe('R4 base validation', () => {
  it('knows exactly the 146 resource types of FHIR 4.0.1', () => {
    const types = getResourceTypes();
    expect(types).toHaveLength(146);
    expect(types).toEqual(expect.arrayContaining(['Patient', 'Appointment', 'Slot', 'Invoice', 'Coverage', 'Bundle', 'Parameters']));
    expect(types).not.toContain('SubscriptionStatus');
  });

  it.each(['Patient-example.json', 'Practitioner-example.json', 'Organization-hl7.json', 'Appointment-example.json', 'MedicationRequest-medrx0301.json', 'Invoice-example.json', 'Coverage-9876B1.json', 'Observation-example.json'])(
    'accepts the official example %s',
    (file) => {
      expect(errorsOf(example(file))).toEqual([]);
    },
  );

  it('takes base64Binary with whitespace between its groups (R4 allows it) and still refuses what is not base64', () => {
    expect(errorsOf(example('DiagnosticReport-gingival-mass.json'))).toEqual([]);
    const binary = (data: string) => ({ resourceType: 'Binary', contentType: 'text/plain', data });
    expect(errorsOf(binary('aGVs\nbG8g\r\n d29y bGQ='))).toEqual([]);
    expect(where(binary('aGVs bG8*'))).toEqual(['Binary.data']);
    expect(where(binary('not base64 at all!'))).toEqual(['Binary.data']);
  });

  it('points at unknown elements, wrong JSON types, cardinality and invariants', () => {
    expect(where({ resourceType: 'Patient', foo: 1 })).toEqual(['Patient.foo']);
    expect(where({ resourceType: 'Patient', birthDate: 19800101 })).toEqual(['Patient.birthDate']);
    expect(where({ resourceType: 'Patient', active: [true, false] })).toContain('Patient.active');
    expect(where({ resourceType: 'Observation', status: 'final' })).toContain('Observation.code');
    expect(errorsOf({ resourceType: 'Patient', contact: [{ gender: 'male' }] }).some((i) => i.code === 'invariant')).toBe(true);
  });

  it('checks required bindings the structural validator skips, in datatypes, backbone elements and contained resources', () => {
    expect(where({ resourceType: 'Patient', gender: 'xx' })).toEqual(['Patient.gender']);
    expect(where({ resourceType: 'Patient', telecom: [{ system: 'fax2', value: '1' }] })).toEqual(['Patient.telecom[0].system']);
    expect(where({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, valueQuantity: { value: 1, comparator: '<<' } })).toEqual(['Observation.valueQuantity.comparator']);
    expect(where({ resourceType: 'PractitionerRole', availableTime: [{ daysOfWeek: ['mon', 'someday'] }] })).toEqual(['PractitionerRole.availableTime[0].daysOfWeek[1]']);
    expect(where({ resourceType: 'Observation', status: 'final', code: { text: 'x' }, contained: [{ resourceType: 'Patient', id: 'p', gender: 'bad' }] })).toEqual(['Observation.contained[0].gender']);
    expect(errorsOf({ resourceType: 'Patient', gender: 'female', telecom: [{ system: 'fax', value: '1' }] })).toEqual([]);
    // Bindings to external or filtered value sets (e.g. languages) are not enumerable: never refused wrongly.
    expect(errorsOf({ resourceType: 'Patient', communication: [{ language: { coding: [{ system: 'urn:ietf:bcp:47', code: 'tr' }] } }] })).toEqual([]);
  });

  it('refuses an unknown resourceType and an invalid id', () => {
    expect(errorsOf({ resourceType: 'Patients' })[0]?.expression).toEqual(['resourceType']);
    expect(where({ resourceType: 'Patient', id: 'not valid!' })).toEqual(['Patient.id']);
    expect(errorsOf([])).toHaveLength(1);
  });
});

describe('product profiles in profiles/', () => {
  it('loads every profile with a snapshot derived from its base', () => {
    const urls = loadProfiles().map((p) => p.url);
    expect(urls.sort()).toEqual([`${P}medivoy-appointment`, `${P}medivoy-medicationrequest`, `${P}medivoy-patient`, `${P}medivoy-practitioner`]);
  });

  it('medivoy-patient requires name and birthDate', () => {
    const meta = { profile: [`${P}medivoy-patient`] };
    expect(where({ resourceType: 'Patient', meta })).toEqual(['Patient.name', 'Patient.birthDate']);
    expect(errorsOf({ resourceType: 'Patient', meta, name: [{ family: 'Öz' }], birthDate: '1990-05-01' })).toEqual([]);
    // Without the claim, the base rules alone apply.
    expect(errorsOf({ resourceType: 'Patient' })).toEqual([]);
  });

  it('medivoy-appointment requires start, end and a Patient participant', () => {
    const meta = { profile: [`${P}medivoy-appointment`] };
    const base = { resourceType: 'Appointment', meta, status: 'proposed', participant: [{ actor: { reference: 'Patient/1' }, status: 'needs-action' }] };
    expect(where(base)).toEqual(['Appointment.start', 'Appointment.end']);
    const timed = { ...base, start: '2026-01-05T09:00:00Z', end: '2026-01-05T09:30:00Z' };
    expect(errorsOf(timed)).toEqual([]);
    const noPatient = { ...timed, participant: [{ actor: { reference: 'Practitioner/1' }, status: 'accepted' }] };
    expect(errorsOf(noPatient).map((i) => i.details?.text)).toEqual([expect.stringContaining('mvy-appt-1')]);
  });

  it('medivoy-practitioner requires a name and an identifier', () => {
    const meta = { profile: [`${P}medivoy-practitioner`] };
    expect(where({ resourceType: 'Practitioner', meta })).toEqual(['Practitioner.identifier', 'Practitioner.name']);
    expect(errorsOf({ resourceType: 'Practitioner', meta, name: [{ family: 'Okafor' }], identifier: [{ system: 'urn:lic', value: '1' }] })).toEqual([]);
  });

  it('warns about a claimed profile it does not know instead of pretending it checked it', () => {
    const issues = validateResource({ resourceType: 'Patient', meta: { profile: ['http://example.org/unknown'] } });
    expect(issues).toEqual([expect.objectContaining({ severity: 'warning', expression: ['Patient.meta.profile'] })]);
  });
});
