import { patientCompartment } from '../fhir/search/compartment.js';

type Obj = Record<string, unknown>;

const refOf = (v: unknown): string | undefined => {
  if (!v || typeof v !== 'object') return undefined;
  const r = (v as Obj).reference;
  return typeof r === 'string' ? r : undefined;
};

/**
 * The patients a resource belongs to: a Patient itself, or the `Patient/…` references of the resource's
 * top-level elements and their first level (subject, patient, beneficiary, participant[].actor, …) for types of
 * the R4 Patient compartment. Cheap (no FHIRPath); types outside the compartment belong to nobody.
 */
export function patientsOf(type: string, id: string, json: string | null): string[] {
  if (type === 'Patient') return [id];
  if (!json || !patientCompartment().has(type)) return [];
  const out = new Set<string>();
  const add = (v: unknown) => {
    const r = refOf(v);
    if (r?.startsWith('Patient/')) out.add(r.slice(8).split('/')[0]!);
  };
  const visit = (v: unknown, depth: number) => {
    if (Array.isArray(v)) {
      for (const x of v) visit(x, depth);
      return;
    }
    if (!v || typeof v !== 'object') return;
    add(v);
    if (depth > 0) for (const [k, x] of Object.entries(v as Obj)) if (k !== 'contained' && k !== 'text') visit(x, depth - 1);
  };
  let resource: Obj;
  try {
    resource = JSON.parse(json) as Obj;
  } catch {
    return [];
  }
  for (const [k, v] of Object.entries(resource)) if (k !== 'contained' && k !== 'text' && k !== 'meta') visit(v, 1);
  return [...out];
}
