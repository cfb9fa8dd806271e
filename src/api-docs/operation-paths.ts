import type { CapabilityStatementRest } from '@medplum/fhirtypes';
import { operationDefinitions, type BusinessOperation, type OperationLevel, type OperationParameterSpec } from '../fhir/operations/registry.js';
import { CORE_OPERATIONS, type DocumentedOperation } from './core-operations.js';
import { errorResponses, P } from './components.js';
import { addOperation } from './interaction-paths.js';
import { fhirContent, ref, type OperationObject, type ParameterObject, type PathItem, type Schema } from './openapi-types.js';

/** FHIR primitive types as JSON Schema (R4 2.24.0.1 JSON representation). */
const PRIMITIVES: Record<string, Schema> = {
  string: { type: 'string' }, code: { type: 'string' }, id: { type: 'string' }, uri: { type: 'string' }, url: { type: 'string' },
  canonical: { type: 'string' }, markdown: { type: 'string' }, oid: { type: 'string' }, uuid: { type: 'string' }, base64Binary: { type: 'string' },
  boolean: { type: 'boolean' }, integer: { type: 'integer' }, positiveInt: { type: 'integer', minimum: 1 }, unsignedInt: { type: 'integer', minimum: 0 },
  decimal: { type: 'number' }, date: { type: 'string', format: 'date' }, dateTime: { type: 'string' }, instant: { type: 'string', format: 'date-time' },
  time: { type: 'string' },
};

const EXAMPLES: Record<string, unknown> = { boolean: true, integer: 1, positiveInt: 1, unsignedInt: 0, decimal: 1.5, date: '2030-01-01', dateTime: '2030-01-01T09:00:00Z', instant: '2030-01-01T09:00:00Z' };

/** The operation as documented: a registered one with its OperationDefinition's parameters for that type, or a core one. */
interface Resolved {
  op: DocumentedOperation;
  parameters: OperationParameterSpec[];
}

function fromRegistry(op: BusinessOperation, type: string | undefined): Resolved {
  const def = operationDefinitions(op).find((d) => (type ? d.resource?.[0] === type : d.system));
  if (!def) throw new Error(`$${op.name} has no OperationDefinition for ${type ?? 'the system level'}`);
  const parameters = (def.parameter ?? []).map((p) => ({ name: p.name!, use: p.use!, min: p.min ?? 0, max: p.max ?? '1', type: p.type, documentation: p.documentation }));
  return { op: { ...op, parameters }, parameters };
}

/** Finds what documents `$name` on a type (or the system level); undocumented operations fail the build. */
function resolve(name: string, type: string | undefined, registered: readonly BusinessOperation[]): Resolved {
  const level = (o: { levels: OperationLevel[] }) => (type ? o.levels.some((l) => l !== 'system') : o.levels.includes('system'));
  const reg = registered.find((o) => o.name === name && level(o) && (!type || o.resourceTypes?.includes(type)));
  if (reg) return fromRegistry(reg, type);
  const core = CORE_OPERATIONS.find((o) => o.name === name && level(o) && (!type || !o.resourceTypes || o.resourceTypes.includes(type)));
  if (core) return { op: core, parameters: core.parameters };
  throw new Error(`$${name}${type ? ` on ${type}` : ''} is served but not documented: register it (fhir/operations/registry.ts) or describe it in api-docs/core-operations.ts`);
}

/** The `value[x]` (or `resource`) key and schema of a parameter of a FHIR type. */
function valueOf(p: OperationParameterSpec, resourceTypes: Set<string>): { key: string; schema: Schema } {
  const t = p.type ?? 'string';
  if (t === 'Resource' || resourceTypes.has(t)) return { key: 'resource', schema: ref('schemas', resourceTypes.has(t) ? t : 'Resource') };
  return { key: `value${t[0]!.toUpperCase()}${t.slice(1)}`, schema: PRIMITIVES[t] ?? { type: 'object', description: `A FHIR ${t}` } };
}

function example(p: OperationParameterSpec, resourceTypes: Set<string>): unknown {
  const t = p.type ?? 'string';
  if (t === 'Reference') {
    const target = `${p.name[0]!.toUpperCase()}${p.name.slice(1)}`;
    return { reference: `${resourceTypes.has(target) ? target : 'Resource'}/example` };
  }
  if (t === 'Resource' || resourceTypes.has(t)) return { resourceType: t === 'Resource' ? 'Basic' : t };
  if (t === 'code' && p.documentation?.includes('|')) return p.documentation.split('|')[0]!.trim();
  return EXAMPLES[t] ?? 'text';
}

/** A Parameters body with the operation's input parameters, each as its own schema branch. */
function parametersBody(inputs: OperationParameterSpec[], resourceTypes: Set<string>): { schema: Schema; example: unknown } {
  const items = inputs.map((p) => {
    const v = valueOf(p, resourceTypes);
    return { type: 'object', required: ['name', v.key], properties: { name: { const: p.name }, [v.key]: v.schema }, ...(p.documentation ? { description: p.documentation } : {}) };
  });
  const schema: Schema = {
    type: 'object', required: ['resourceType'],
    properties: { resourceType: { const: 'Parameters' }, parameter: { type: 'array', items: items.length ? { oneOf: items } : { type: 'object' } } },
  };
  const required = inputs.filter((p) => p.min > 0);
  const shown = required.length ? required : inputs.slice(0, 1);
  return { schema, example: { resourceType: 'Parameters', parameter: shown.map((p) => ({ name: p.name, [valueOf(p, resourceTypes).key]: example(p, resourceTypes) })) } };
}

/** The parameter table of the operation's description. */
function table(params: OperationParameterSpec[]): string {
  if (!params.length) return '';
  const rows = params.map((p) => `| ${p.name} | ${p.use} | ${p.min}..${p.max} | ${p.type ?? ''} | ${(p.documentation ?? '').replace(/\|/g, '\\|')} |`);
  return ['', '', '| Parameter | Use | Card. | Type | Description |', '|---|---|---|---|---|', ...rows].join('\n');
}

/** Registers a schema as a component under `name` (or `name.type` when another type's differs) and refers to it. */
function shared(schemas: Record<string, Schema>, name: string, type: string | undefined, schema: Schema): Schema {
  const json = JSON.stringify(schema);
  for (const key of [name, `${name}.${type ?? 'system'}`]) {
    if (!schemas[key]) schemas[key] = schema;
    if (JSON.stringify(schemas[key]) === json) return ref('schemas', key);
  }
  throw new Error(`Two different input schemas for $${name} on ${type}`);
}

function operationObject(r: Resolved, type: string | undefined, level: OperationLevel, method: string, resourceTypes: Set<string>, canonical: string | undefined, schemas: Record<string, Schema>): OperationObject {
  const { op } = r;
  const inputs = r.parameters.filter((p) => p.use === 'in' && (level === 'type' || !op.typeLevelOnly?.includes(p.name)));
  const outputs = r.parameters.filter((p) => p.use === 'out');
  const target = type ? (level === 'instance' ? `${type}/[id]/` : `${type}/`) : '';
  const single = outputs.length === 1 && outputs[0]!.name === 'return' && outputs[0]!.type ? outputs[0]!.type : undefined;
  const result = single && (single === 'Resource' || resourceTypes.has(single)) ? single : 'Parameters';
  const o: OperationObject = {
    operationId: `op-${op.name}-${type ?? 'system'}-${level}-${method.toLowerCase()}`,
    summary: `${target}$${op.name}`,
    description: `${op.description}${op.affectsState ? '' : ' Reads only.'}${canonical ? ` OperationDefinition: ${canonical}` : ''}${table(r.parameters.filter((p) => p.use === 'out' || inputs.includes(p)))}`,
    tags: [type ?? 'System'],
    responses: { '200': { description: outputs.map((p) => p.name).join(', ') || 'Done', content: fhirContent(ref('schemas', result)) }, ...errorResponses('400', '404', '409', '422') },
  };
  if (method === 'POST') {
    const body = parametersBody(inputs, resourceTypes);
    const params = shared(schemas, `${op.name}.in`, type, body.schema);
    const asResource = op.body === 'resource' && type ? { oneOf: [ref('schemas', type), params] } : params;
    o.requestBody = { required: inputs.some((p) => p.min > 0), content: fhirContent(asResource, op.body === 'resource' && type ? { resourceType: type } : body.example) };
  } else {
    // GET (and DELETE) carry primitive parameters in the query only (R4 3.1.0.11.1).
    o.parameters = inputs.filter((p) => !p.type || PRIMITIVES[p.type]).map((p): ParameterObject => ({
      name: p.name, in: 'query', required: p.min > 0, description: p.documentation, schema: PRIMITIVES[p.type ?? 'string']!,
    }));
  }
  if (level === 'instance') o.parameters = [P.id, ...(o.parameters ?? [])];
  return o;
}

/**
 * The paths of every operation: those the CapabilityStatement lists per type and at system level, and every
 * registered one, at each of its levels and methods. Input schemas go to `schemas` (shared across types where equal).
 */
export function operationPaths(rest: CapabilityStatementRest, registered: readonly BusinessOperation[], paths: Record<string, PathItem>, schemas: Record<string, Schema>): void {
  const resourceTypes = new Set((rest.resource ?? []).map((r) => r.type));
  for (const r of rest.resource ?? []) {
    const canonicals = new Map((r.operation ?? []).map((o) => [o.name, o.definition]));
    const names = new Set([...canonicals.keys(), ...registered.filter((o) => o.resourceTypes?.includes(r.type)).map((o) => o.name)]);
    for (const name of [...names].sort()) {
      const resolved = resolve(name, r.type, registered);
      for (const level of resolved.op.levels.filter((l) => l !== 'system')) {
        for (const method of resolved.op.methods) {
          const path = level === 'type' ? `/${r.type}/$${name}` : `/${r.type}/{id}/$${name}`;
          addOperation(paths, path, method.toLowerCase() as 'get', operationObject(resolved, r.type, level, method, resourceTypes, canonicals.get(name), schemas));
        }
      }
    }
  }
  const system = new Map<string, string | undefined>((rest.operation ?? []).map((o) => [o.name, o.definition]));
  for (const o of registered) if (o.levels.includes('system')) system.set(o.name, system.get(o.name));
  for (const [name, canonical] of [...system].sort(([a], [b]) => a.localeCompare(b))) {
    const resolved = resolve(name, undefined, registered);
    for (const method of resolved.op.methods) addOperation(paths, `/$${name}`, method.toLowerCase() as 'get', operationObject(resolved, undefined, 'system', method, resourceTypes, canonical, schemas));
  }
}
