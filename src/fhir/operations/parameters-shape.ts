import { errors } from '../outcomes.js';

/** value[x] types whose JSON form is a string, a number or a boolean (R4 primitive types); the rest are objects. */
const STRING_VALUES = new Set([
  'valueString', 'valueCode', 'valueUri', 'valueUrl', 'valueCanonical', 'valueId', 'valueOid', 'valueUuid', 'valueMarkdown',
  'valueBase64Binary', 'valueDate', 'valueDateTime', 'valueInstant', 'valueTime',
]);
const NUMBER_VALUES = new Set(['valueInteger', 'valuePositiveInt', 'valueUnsignedInt', 'valueDecimal']);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Checks the structure of a Parameters body before any operation reads it: `parameter` is a list of objects
 * with a name and at most one of value[x], resource or part (R4 inv-1), each value of its JSON type, parts
 * likewise. Operations can then read values without guarding against `{"$gt": …}` objects or a `parameter`
 * that is not a list; a malformed body is a 400 naming the first bad element.
 */
export function checkParametersShape(body: unknown): void {
  if (!isObject(body) || body.resourceType !== 'Parameters') return;
  checkList(body.parameter, 'Parameters.parameter');
}

function checkList(list: unknown, path: string): void {
  if (list === undefined) return;
  if (!Array.isArray(list)) throw errors.badRequest(`${path} must be a list`, [path]);
  list.forEach((p, i) => checkParameter(p, `${path}[${i}]`));
}

function checkParameter(p: unknown, path: string): void {
  if (!isObject(p)) throw errors.badRequest(`${path} must be an object`, [path]);
  if (typeof p.name !== 'string' || !p.name) throw errors.badRequest(`${path} needs a name`, [`${path}.name`]);
  const values = Object.keys(p).filter((k) => k.startsWith('value'));
  const kinds = values.length + (p.resource !== undefined ? 1 : 0) + (p.part !== undefined ? 1 : 0);
  if (kinds > 1) throw errors.badRequest(`${path} (${p.name}) may have only one of value[x], resource and part`, [path]);
  for (const key of values) {
    const v = p[key];
    const ok = STRING_VALUES.has(key) ? typeof v === 'string' : NUMBER_VALUES.has(key) ? typeof v === 'number' && Number.isFinite(v) : key === 'valueBoolean' ? typeof v === 'boolean' : isObject(v);
    if (!ok) throw errors.badRequest(`${path}.${key} (${p.name}) has the wrong type`, [`${path}.${key}`]);
  }
  if (p.resource !== undefined && (!isObject(p.resource) || typeof p.resource.resourceType !== 'string')) {
    throw errors.badRequest(`${path}.resource (${p.name}) must be a resource`, [`${path}.resource`]);
  }
  checkList(p.part, `${path}.part`);
}
