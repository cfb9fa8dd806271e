import type { OperationDefinition, Parameters, ParametersParameter, Resource } from '@medplum/fhirtypes';
import type { AccessContext } from '../../auth/access-policy.js';
import type { FhirRepository } from '../storage/repository.js';
import { errors } from '../outcomes.js';

/** Where an operation is invoked: `[base]/$op`, `[base]/Type/$op`, `[base]/Type/id/$op` (R4 OperationDefinition.system/type/instance). */
export type OperationLevel = 'system' | 'type' | 'instance';

/** One parameter of an operation, as its OperationDefinition declares it. */
export interface OperationParameterSpec {
  name: string;
  use: 'in' | 'out';
  min: number;
  /** `'1'`, `'*'`, … */
  max: string;
  /** FHIR type of the value (`string`, `Reference`, `dateTime`, `Parameters`, …). */
  type?: string;
  documentation?: string;
}

/** What an operation is invoked on and with: no trace of the HTTP request or of the REST handler types. */
export interface OperationInput {
  /** The operation's resource type (type and instance level) and id (instance level). */
  target: { type?: string; id?: string };
  /**
   * The input parameters: those of a Parameters body (its shape already checked, see parameters-shape.ts)
   * followed by the query parameters as `valueString`. Read them with {@link paramValue}/{@link paramValues}.
   */
  parameters: Parameters;
  /** The body when it is not a Parameters resource (operations declared with `body: 'resource'`). */
  resource?: Resource;
  /** `GET` or `POST` (or `DELETE` for operations that cancel something). */
  method: string;
  /** Request headers the operation may honour (lower-cased), e.g. `prefer`. */
  headers: Record<string, string | undefined>;
}

/** Who calls, with what: the caller's repository carries their access policy (auth/scoped-repository.ts). */
export interface OperationContext {
  repo: FhirRepository;
  /** The caller's access context (from the access token). */
  access?: AccessContext;
  /** This server's FHIR base URL, without a trailing slash. */
  baseUrl: string;
  /** Logs an error that the operation survives (e.g. a follow-up step after the main write committed). */
  reportError: (err: unknown) => void;
}

/** An operation's answer: a resource (or stored JSON text) with a status, or nothing (e.g. 202 Accepted). Errors are thrown as OperationOutcomeError. */
export interface OperationResult {
  status?: number;
  resource?: Resource | { json: string };
  headers?: Record<string, string>;
}

/**
 * A business operation as its module registers it: the REST layer serves it at every level and method
 * declared, the CapabilityStatement lists it and an OperationDefinition describes it, all from this one value.
 */
export interface BusinessOperation {
  /** Without the `$`. */
  name: string;
  levels: OperationLevel[];
  /** Types it is defined on (type and instance levels); required unless the operation is system-level only. */
  resourceTypes?: string[];
  methods: ('GET' | 'POST' | 'DELETE')[];
  /** False for operations that only read (R4 OperationDefinition.affectsState). */
  affectsState: boolean;
  /** One sentence for the OperationDefinition and API documentation. */
  description: string;
  parameters?: OperationParameterSpec[];
  /** What the body may be: a Parameters resource (default), or any resource (passed as `input.resource`). */
  body?: 'parameters' | 'resource';
  /** Refuses callers before any input is read (throws 403/401 outcomes); the repository still applies their scopes. */
  access?: (access: AccessContext | undefined, target: OperationInput['target']) => void;
  handler: (input: OperationInput, ctx: OperationContext) => Promise<OperationResult>;
  /** Canonical of the OperationDefinition when it is not ours (HL7's own operations). */
  canonical?: (type: string | undefined) => string;
}

/** Canonical namespace of the product's own OperationDefinitions. */
export const OPERATION_DEFINITION_BASE = 'http://medivoy.example/fhir/OperationDefinition';

/** The operations a server serves beyond the core interactions; filled by the composition root (server.ts). */
export class OperationRegistry {
  private readonly ops: BusinessOperation[] = [];

  register(...ops: BusinessOperation[]): this {
    for (const op of ops) {
      if (!/^[a-z][a-z0-9-]*$/.test(op.name)) throw new Error(`Operation name '${op.name}' must be lower-case letters, digits and dashes`);
      if (op.levels.some((l) => l !== 'system') && !op.resourceTypes?.length) throw new Error(`$${op.name} needs resourceTypes for type or instance level`);
      for (const existing of this.ops) {
        const clash = existing.name === op.name && existing.levels.some((l) => op.levels.includes(l)) &&
          (l(existing).some((t) => l(op).includes(t)));
        if (clash) throw new Error(`$${op.name} is registered twice for the same level and type`);
      }
      this.ops.push(op);
    }
    return this;
  }

  list(): readonly BusinessOperation[] {
    return this.ops;
  }
}

const l = (op: BusinessOperation) => op.resourceTypes ?? ['*'];

/** Id of the OperationDefinition of an operation on a type (`Appointment-book`) or at system level (`book`). */
export function operationDefinitionId(op: BusinessOperation, type?: string): string {
  return type ? `${type}-${op.name}` : op.name;
}

/** The canonical URL the CapabilityStatement gives for an operation on a type (or at system level). */
export function operationCanonical(op: BusinessOperation, type?: string): string {
  return op.canonical?.(type) ?? `${OPERATION_DEFINITION_BASE}/${operationDefinitionId(op, type)}`;
}

/**
 * The OperationDefinitions of an operation: one per resource type (so each can be read at the canonical the
 * CapabilityStatement names), plus one for its system level.
 */
export function operationDefinitions(op: BusinessOperation): OperationDefinition[] {
  const typed = op.levels.some((x) => x !== 'system');
  const targets: (string | undefined)[] = [...(typed ? op.resourceTypes ?? [] : []), ...(op.levels.includes('system') ? [undefined] : [])];
  return targets.map((type) => ({
    resourceType: 'OperationDefinition',
    id: operationDefinitionId(op, type),
    url: operationCanonical(op, type),
    name: `${(type ?? 'System')}${op.name.replace(/(^|-)([a-z])/g, (_m, _d, c: string) => c.toUpperCase())}`,
    status: 'active',
    kind: 'operation',
    description: op.description,
    affectsState: op.affectsState,
    code: op.name,
    ...(type ? { resource: [type as 'Patient'] } : {}),
    system: type === undefined,
    type: !!type && op.levels.includes('type'),
    instance: !!type && op.levels.includes('instance'),
    parameter: (op.parameters ?? []).map((p) => ({
      name: p.name,
      use: p.use,
      min: p.min,
      max: p.max,
      ...(p.type ? { type: p.type as 'string' } : {}),
      ...(p.documentation ? { documentation: p.documentation } : {}),
    })),
  }) satisfies OperationDefinition);
}

/** The first value of an input parameter as a string (primitive values, or a Reference's `reference`). */
export function paramValue(input: Pick<OperationInput, 'parameters'>, name: string): string | undefined {
  return paramValues(input, name)[0];
}

/** Every value of an input parameter as strings, in order (later ones are the query string's). */
export function paramValues(input: Pick<OperationInput, 'parameters'>, name: string): string[] {
  return (input.parameters.parameter ?? []).filter((p) => p.name === name).map(primitiveValue).filter((v): v is string => v !== undefined);
}

/** A parameter's value[x] as a string, or undefined when it has no primitive or Reference value. */
export function primitiveValue(p: ParametersParameter): string | undefined {
  for (const [key, v] of Object.entries(p)) {
    if (!key.startsWith('value')) continue;
    if (typeof v === 'string') return v;
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    if (key === 'valueReference' && typeof (v as { reference?: unknown }).reference === 'string') return (v as { reference: string }).reference;
  }
  return undefined;
}

/**
 * The operation's input from a body and query string: a Parameters body (or none) plus the query as string
 * parameters. A body that is not Parameters is refused unless the operation takes a resource.
 */
export function operationInput(op: BusinessOperation, args: { target: OperationInput['target']; method: string; body: unknown; query: Iterable<[string, string]>; headers: OperationInput['headers'] }): OperationInput {
  const query = [...args.query].map(([name, value]) => ({ name, valueString: value }));
  const body = args.body;
  const hasBody = body !== undefined && body !== null && !(typeof body === 'object' && !Array.isArray(body) && Object.keys(body).length === 0);
  if (!hasBody) return { target: args.target, method: args.method, headers: args.headers, parameters: { resourceType: 'Parameters', parameter: query } };
  if (typeof body !== 'object' || Array.isArray(body)) throw errors.badRequest(`The body of $${op.name} must be a Parameters resource`);
  const type = (body as { resourceType?: unknown }).resourceType;
  if (type === 'Parameters') {
    const params = body as Parameters;
    return { target: args.target, method: args.method, headers: args.headers, parameters: { ...params, parameter: [...(params.parameter ?? []), ...query] } };
  }
  if (op.body === 'resource' && typeof type === 'string') {
    return { target: args.target, method: args.method, headers: args.headers, resource: body as Resource, parameters: { resourceType: 'Parameters', parameter: query } };
  }
  throw errors.badRequest(`The body of $${op.name} must be a Parameters resource${op.body === 'resource' ? ' or a resource' : ''}`);
}
