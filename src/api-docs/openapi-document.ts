import type { CapabilityStatement } from '@medplum/fhirtypes';
import type { BusinessOperation } from '../fhir/operations/registry.js';
import { sharedComponents } from './components.js';
import { compartmentPath, systemPaths, typeInteractionPaths } from './interaction-paths.js';
import { operationPaths } from './operation-paths.js';
import { CORE_ROUTES } from './core-operations.js';
import { errorResponses } from './components.js';
import { ref, type OpenApiDocument, type ParameterObject, type PathItem } from './openapi-types.js';

/** What the document takes of the SMART discovery document (/.well-known/smart-configuration). */
export interface SmartEndpoints {
  authorization_endpoint: string;
  token_endpoint: string;
  scopes_supported: string[];
}

export interface OpenApiSources {
  /** The runtime CapabilityStatement (GET /metadata). */
  capability: CapabilityStatement;
  /** The registered business operations (their OperationDefinitions give the parameters). */
  operations: readonly BusinessOperation[];
  smart: SmartEndpoints;
  /** Resource types of the Patient compartment (`Patient/[id]/[type]`). */
  compartmentTypes: string[];
}

/** What a scope grants, for the authorization dialog (SMART App Launch 2, scopes and launch context). */
function scopeDescription(scope: string): string {
  const fixed: Record<string, string> = {
    openid: 'OpenID Connect sign-in (id_token)', fhirUser: 'The signed-in user\'s FHIR resource', profile: 'The user\'s profile',
    launch: 'EHR launch context', 'launch/patient': 'Pick a patient at launch', 'launch/encounter': 'Encounter in context',
    offline_access: 'A refresh token that outlives the session', online_access: 'A refresh token for the session',
  };
  if (fixed[scope]) return fixed[scope];
  const m = /^(patient|user|system)\/([^.]+)\.(.+)$/.exec(scope);
  if (!m) return scope;
  const who = { patient: 'the patient in context', user: 'what the signed-in user may see', system: 'everything (backend services)' }[m[1] as 'user'];
  const what = m[3] === 'read' || m[3] === 'rs' ? 'read and search' : m[3] === '*' || m[3] === 'cruds' || m[3] === 'write' ? 'create, read, update, delete and search' : m[3];
  return `${m[2] === '*' ? 'All resource types' : m[2]}: ${what}, for ${who}`;
}

/**
 * An OpenAPI 3.1 description of this server generated from its CapabilityStatement and operation registry:
 * every interaction and search parameter of every resource type, the system interactions, every operation
 * with its parameters, and the SMART security schemes. Shared parameters, responses and schemas are
 * components, so the document stays a few MB for ~145 types.
 */
export function buildOpenApiDocument(src: OpenApiSources): OpenApiDocument {
  const rest = src.capability.rest?.[0];
  if (!rest) throw new Error('The CapabilityStatement has no rest entry');
  const common = (rest.searchParam ?? []).map((p) => p.name!);
  const types = (rest.resource ?? []).map((r) => r.type);
  const components = sharedComponents(types, rest.searchParam ?? [], src.compartmentTypes);
  const paths: Record<string, PathItem> = {};
  systemPaths(rest, common, paths);
  const own: Record<string, ParameterObject> = {};
  for (const r of rest.resource ?? []) typeInteractionPaths(r, common, own, paths);
  if (types.includes('Patient') && (rest.resource ?? []).find((r) => r.type === 'Patient')?.interaction?.some((i) => i.code === 'search-type')) compartmentPath(paths);
  operationPaths(rest, src.operations, paths, components.schemas);
  // --- bulk: begin (plain routes of modules under the FHIR base: Bulk Data status and files) ---
  for (const r of CORE_ROUTES) {
    (paths[r.path] ??= {})[r.method] = {
      operationId: r.operationId, summary: r.summary, description: r.description, tags: ['System'],
      parameters: r.parameters.map((p) => ({ name: p.name, in: 'path' as const, required: true, description: p.description, schema: { type: 'string' } })),
      responses: {
        ...Object.fromEntries(Object.entries(r.responses).map(([status, x]) => [status, {
          description: x.description,
          ...(x.headers ? { headers: Object.fromEntries(Object.entries(x.headers).map(([h, d]) => [h, { description: d, schema: { type: 'string' } }])) } : {}),
          ...(x.contentType ? { content: { [x.contentType]: { schema: x.contentType === 'application/fhir+json' ? ref('schemas', 'OperationOutcome') : x.contentType === 'application/json' ? { type: 'object' } : { type: 'string' } } } } : {}),
        }])),
        ...errorResponses(...r.errors),
      },
    };
  }
  // --- bulk: end ---
  Object.assign(components.parameters, own);
  components.schemas.CapabilityStatement ??= { type: 'object' };
  const scopes = Object.fromEntries(src.smart.scopes_supported.map((s) => [s, scopeDescription(s)]));
  components.securitySchemes = {
    smart: {
      type: 'oauth2',
      description: 'SMART on FHIR (App Launch 2 with PKCE, and Backend Services). Any `patient/`, `user/` or `system/` scope may name one resource type instead of `*` (e.g. `patient/Observation.rs`).',
      flows: {
        authorizationCode: { authorizationUrl: src.smart.authorization_endpoint, tokenUrl: src.smart.token_endpoint, refreshUrl: src.smart.token_endpoint, scopes },
        clientCredentials: { tokenUrl: src.smart.token_endpoint, scopes },
      },
    },
    bearer: { type: 'http', scheme: 'bearer', description: 'Paste an access token obtained from the authorization server (any SMART flow).' },
  };
  const software = src.capability.software;
  const base = src.capability.implementation?.url ?? '/fhir';
  return {
    openapi: '3.1.0',
    info: {
      title: `${software?.name ?? 'Medivoy'} FHIR R4 API`,
      version: software?.version ?? '0',
      description:
        `Generated from this server's CapabilityStatement (\`${base}/metadata\`) and its operation registry. Every request needs an access token ` +
        '(Authorize: paste a bearer token, or use the SMART OAuth2 flows with a registered client). Bodies are FHIR JSON (`application/fhir+json`); ' +
        'errors are OperationOutcome resources.',
    },
    servers: [{ url: base, description: 'This server\'s FHIR base' }],
    security: [{ smart: [] }, { bearer: [] }],
    tags: [
      { name: 'System', description: 'Whole-server interactions' },
      { name: 'Authorization', description: 'SMART discovery' },
      ...types.map((t) => ({ name: t, externalDocs: { url: `http://hl7.org/fhir/R4/${t.toLowerCase()}.html` } })),
    ],
    paths,
    components,
    externalDocs: { url: 'http://hl7.org/fhir/R4/http.html', description: 'FHIR R4 RESTful API' },
  };
}
