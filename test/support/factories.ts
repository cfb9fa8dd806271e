/**
 * Valid minimal R4 resources for tests, each with overrides. They carry only what the base
 * StructureDefinitions require (plus what their invariants demand), so a test states what it cares about.
 */

type Json = Record<string, unknown>;

/** Patient: nothing is required by R4; a name and birth date make it realistic. */
export function patient(overrides: Json = {}): Json {
  return { resourceType: 'Patient', name: [{ family: 'Testperson', given: ['Alex'] }], birthDate: '1980-02-29', ...overrides };
}

/** Observation: status and code are 1..1. */
export function observation(overrides: Json = {}): Json {
  return {
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
    valueQuantity: { value: 72, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
    ...overrides,
  };
}

/** Appointment: status and participant (with its status) are required; app-3 wants start/end unless proposed. */
export function appointment(overrides: Json = {}): Json {
  return {
    resourceType: 'Appointment',
    status: 'booked',
    start: '2030-01-15T09:00:00Z',
    end: '2030-01-15T09:30:00Z',
    participant: [{ actor: { reference: 'Patient/example' }, status: 'accepted' }],
    ...overrides,
  };
}

/** Coverage: status, beneficiary and payor are required. */
export function coverage(overrides: Json = {}): Json {
  return {
    resourceType: 'Coverage',
    status: 'active',
    beneficiary: { reference: 'Patient/example' },
    payor: [{ reference: 'Organization/example' }],
    ...overrides,
  };
}

/** Invoice: only status is required. */
export function invoice(overrides: Json = {}): Json {
  return { resourceType: 'Invoice', status: 'issued', ...overrides };
}

/** Practitioner: nothing is required. */
export function practitioner(overrides: Json = {}): Json {
  return { resourceType: 'Practitioner', name: [{ family: 'Doctor', given: ['Dana'] }], ...overrides };
}

/** Organization: org-1 wants a name or an identifier. */
export function organization(overrides: Json = {}): Json {
  return { resourceType: 'Organization', name: 'Example Clinic', ...overrides };
}

/** MedicationRequest: status, intent, medication[x] and subject are required. */
export function medicationRequest(overrides: Json = {}): Json {
  return {
    resourceType: 'MedicationRequest',
    status: 'active',
    intent: 'order',
    medicationCodeableConcept: { text: 'Amoxicillin 500 mg' },
    subject: { reference: 'Patient/example' },
    ...overrides,
  };
}

/** Factories by resource type, for tests that iterate over types. */
export const factories: Record<string, (overrides?: Json) => Json> = {
  Patient: patient,
  Observation: observation,
  Appointment: appointment,
  Coverage: coverage,
  Invoice: invoice,
  Practitioner: practitioner,
  Organization: organization,
  MedicationRequest: medicationRequest,
};

/** A JSON Patch request body and its content type. */
export function jsonPatch(ops: unknown, headers: Record<string, string> = {}): { raw: string; headers: Record<string, string> } {
  return { raw: JSON.stringify(ops), headers: { 'content-type': 'application/json-patch+json', ...headers } };
}
