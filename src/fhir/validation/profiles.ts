import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ElementDefinition, StructureDefinition } from '@medplum/fhirtypes';
import { getStructure, loadDefinitions } from '../definitions.js';

const DEFAULT_DIR = new URL('../../../profiles/', import.meta.url).pathname;
const profiles = new Map<string, StructureDefinition>();

/**
 * Loads the product's profiles (`profiles/*.json`): constraint StructureDefinitions written as a
 * differential on an R4 base. The snapshot the validator needs is derived here from the base snapshot,
 * so the files stay short and cannot drift from the base. Fails loudly on a malformed profile.
 */
export function loadProfiles(dir = DEFAULT_DIR): StructureDefinition[] {
  loadDefinitions();
  profiles.clear();
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.json')).sort()) {
    const sd = JSON.parse(readFileSync(join(dir, name), 'utf8')) as StructureDefinition;
    if (sd.resourceType !== 'StructureDefinition' || !sd.url || sd.derivation !== 'constraint' || !sd.type) {
      throw new Error(`profiles/${name} must be a constraint StructureDefinition with url and type`);
    }
    profiles.set(sd.url, withSnapshot(sd, name));
  }
  return [...profiles.values()];
}

export function getProfile(url: string): StructureDefinition | undefined {
  return profiles.get(url.split('|')[0]!);
}

export function listProfiles(): StructureDefinition[] {
  return [...profiles.values()];
}

/** Applies the differential's cardinality and constraints to a copy of the base snapshot. */
function withSnapshot(sd: StructureDefinition, file: string): StructureDefinition {
  const base = getStructure(sd.type!);
  if (!base?.snapshot?.element) throw new Error(`profiles/${file}: unknown base type ${sd.type}`);
  const elements = structuredClone(base.snapshot.element) as ElementDefinition[];
  for (const diff of sd.differential?.element ?? []) {
    const target = elements.find((e) => e.path === diff.path);
    if (!target) throw new Error(`profiles/${file}: element ${diff.path} is not in ${sd.type}`);
    if (diff.min !== undefined) target.min = diff.min;
    if (diff.max !== undefined) target.max = diff.max;
    if (diff.mustSupport !== undefined) target.mustSupport = diff.mustSupport;
    if (diff.constraint) target.constraint = [...(target.constraint ?? []), ...diff.constraint];
  }
  return { ...sd, snapshot: { element: elements } };
}
