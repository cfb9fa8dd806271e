import type { Parameters, ParametersParameter } from '@medplum/fhirtypes';

/**
 * Plain figures → FHIR Parameters: an object becomes a parameter with one part per key, an array one
 * parameter per element under the array's name, an integer `valueInteger`, another number `valueDecimal`,
 * a string `valueString` (a `Type/id` string `valueReference`), `{value, currency}` `valueMoney`.
 */
export function toParameters(figures: object): Parameters {
  return { resourceType: 'Parameters', parameter: partsOf(figures) };
}

function partsOf(o: object): ParametersParameter[] {
  const out: ParametersParameter[] = [];
  for (const [name, v] of Object.entries(o)) {
    if (v === undefined || v === null) continue;
    if (Array.isArray(v)) for (const x of v) out.push(one(name, x));
    else out.push(one(name, v));
  }
  return out;
}

function one(name: string, v: unknown): ParametersParameter {
  if (typeof v === 'number') return Number.isInteger(v) ? { name, valueInteger: v } : { name, valueDecimal: v };
  if (typeof v === 'boolean') return { name, valueBoolean: v };
  if (typeof v === 'string') return /^[A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64}$/.test(v) ? { name, valueReference: { reference: v } } : { name, valueString: v };
  if (v && typeof v === 'object' && Object.keys(v).length === 2 && typeof (v as { value?: unknown }).value === 'number' && typeof (v as { currency?: unknown }).currency === 'string') {
    return { name, valueMoney: v as NonNullable<ParametersParameter['valueMoney']> };
  }
  return { name, part: partsOf(v as object) };
}
