import type { CapabilityStatementRestResourceSearchParam } from '@medplum/fhirtypes';
import { fhirContent, ref, type OpenApiDocument, type ParameterObject, type Ref, type ResponseObject, type Schema } from './openapi-types.js';

/** How each search parameter type is written in a URL (R4 3.1.1.5), for its description. */
const SEARCH_SYNTAX: Record<string, string> = {
  token: '`[system]|[code]`, `[code]` or `[system]|`; modifiers `:not`, `:text`, `:missing`',
  string: 'starts with, case- and accent-insensitive; `:exact`, `:contains`, `:missing`',
  date: 'a date, dateTime or instant with an optional prefix `eq ne gt lt ge le sa eb ap` (e.g. `ge2024-01-01`)',
  reference: '`[type]/[id]`, `[id]` or an absolute URL; chains such as `subject.name=…`; `:[type]`, `:missing`',
  number: 'a number with an optional prefix `eq ne gt lt ge le sa eb ap`',
  quantity: '`[prefix][number]|[system]|[code]`',
  uri: 'the exact URI; `:below`, `:above`',
  composite: 'components joined by `$`',
  special: 'parameter-specific syntax',
};

/** Error statuses the server answers with an OperationOutcome (outcomes.ts), as shared responses. */
export const ERROR_RESPONSES: Record<string, { name: string; description: string }> = {
  '400': { name: 'BadRequest', description: 'The request is malformed (bad parameter, body or header)' },
  '401': { name: 'Unauthorized', description: 'No valid access token (send `Authorization: Bearer <token>`)' },
  '403': { name: 'Forbidden', description: 'The token\'s scopes or the caller\'s access policy do not allow this' },
  '404': { name: 'NotFound', description: 'No such resource, type or operation' },
  '409': { name: 'Conflict', description: 'A conflicting write happened (e.g. a version conflict, or a booking rule)' },
  '410': { name: 'Gone', description: 'The resource was deleted' },
  '412': { name: 'PreconditionFailed', description: 'If-Match does not name the current version, or conditional criteria matched more than one resource' },
  '415': { name: 'UnsupportedMediaType', description: 'The Content-Type is not one this interaction takes' },
  '422': { name: 'Unprocessable', description: 'The resource does not validate, or a business rule refuses it' },
  '429': { name: 'TooManyRequests', description: 'Rate limit reached: retry after `Retry-After` seconds' },
};

/** Component name of a type's own search parameter (`Patient.birthdate`). */
export const searchParamName = (type: string, code: string) => `${type}.${code}`;

/** A query parameter of a search, with the syntax of its type. */
export function searchParameter(p: Pick<CapabilityStatementRestResourceSearchParam, 'name' | 'type' | 'definition' | 'documentation'>): ParameterObject {
  const syntax = SEARCH_SYNTAX[p.type ?? 'special'] ?? SEARCH_SYNTAX.special;
  const doc = [p.documentation, `${p.type} search parameter: ${syntax}.`, p.definition ? `Definition: ${p.definition}` : undefined].filter(Boolean).join(' ');
  return { name: p.name!, in: 'query', description: doc, required: false, schema: { type: 'string' } };
}

/** Result parameters of every search (R4 3.1.1.5.x) that the search engine implements. */
const RESULT_PARAMETERS: ParameterObject[] = [
  { name: '_count', in: 'query', description: 'Page size (the server caps it; `0` answers the total only)', schema: { type: 'integer', minimum: 0 } },
  { name: '_sort', in: 'query', description: 'Comma-separated search parameter codes, `-` for descending (e.g. `-_lastUpdated,name`)', schema: { type: 'string' } },
  { name: '_include', in: 'query', description: 'Adds resources the matches refer to: `[type]:[param]`, `[type]:[param]:[target]` or `*`; `_include:iterate` follows further', schema: { type: 'string' } },
  { name: '_revinclude', in: 'query', description: 'Adds resources that refer to the matches: `[type]:[param]`', schema: { type: 'string' } },
  { name: '_summary', in: 'query', description: 'Summary forms of the matches', schema: { type: 'string', enum: ['true', 'false', 'text', 'data', 'count'] } },
  { name: '_elements', in: 'query', description: 'Comma-separated top-level elements to return', schema: { type: 'string' } },
  { name: '_total', in: 'query', description: 'How precisely Bundle.total is counted', schema: { type: 'string', enum: ['none', 'estimate', 'accurate'] } },
];

/** Parameters of the history interactions (R4 3.1.0.10). */
const HISTORY_PARAMETERS: ParameterObject[] = [
  { name: '_count', in: 'query', description: 'Page size', schema: { type: 'integer', minimum: 1 } },
  { name: '_since', in: 'query', description: 'Only versions created at or after this instant', schema: { type: 'string', format: 'date-time' } },
  { name: '_at', in: 'query', description: 'Only versions current at some point within this date or dateTime', schema: { type: 'string' } },
];

const HEADER_PARAMETERS: Record<string, ParameterObject> = {
  'If-Match': { name: 'If-Match', in: 'header', description: 'Version-aware write: the ETag of the current version (`W/"3"`), else 412', schema: { type: 'string' } },
  'If-None-Match': { name: 'If-None-Match', in: 'header', description: 'The ETag you hold: 304 Not Modified when it is still current', schema: { type: 'string' } },
  'If-Modified-Since': { name: 'If-Modified-Since', in: 'header', description: 'An HTTP date: 304 Not Modified when unchanged since', schema: { type: 'string' } },
  'If-None-Exist': { name: 'If-None-Exist', in: 'header', description: 'Conditional create: search criteria (`identifier=…`); nothing is created when one resource matches, 412 when several do', schema: { type: 'string' } },
  'Prefer-return': { name: 'Prefer', in: 'header', description: 'What a write answers with', schema: { type: 'string', enum: ['return=representation', 'return=minimal', 'return=OperationOutcome'] } },
  'Prefer-handling': { name: 'Prefer', in: 'header', description: '`handling=strict` refuses unknown search parameters (400) instead of ignoring them', schema: { type: 'string', enum: ['handling=lenient', 'handling=strict'] } },
  'Idempotency-Key': { name: 'Idempotency-Key', in: 'header', description: 'Safe retries: a POST with the same key and body is executed once and answered the same way', schema: { type: 'string', maxLength: 255 } },
};

/** The shared `$ref`s operations use. */
export const P = {
  id: ref('parameters', 'id'),
  vid: ref('parameters', 'vid'),
  compartment: ref('parameters', 'compartment'),
  result: RESULT_PARAMETERS.map((p) => ref('parameters', `result.${p.name}`)),
  history: HISTORY_PARAMETERS.map((p) => ref('parameters', `history.${p.name}`)),
  header: (name: keyof typeof HEADER_PARAMETERS): Ref => ref('parameters', `header.${name}`),
  common: (code: string): Ref => ref('parameters', `common.${code}`),
  type: (type: string, code: string): Ref => ref('parameters', searchParamName(type, code)),
};

/** Responses (by status) that are an OperationOutcome, as `$ref`s. */
export function errorResponses(...statuses: (keyof typeof ERROR_RESPONSES)[]): Record<string, Ref> {
  return Object.fromEntries(['401', '403', '429', ...statuses].sort().map((s) => [s, ref('responses', ERROR_RESPONSES[s]!.name)]));
}

const BASE_SCHEMAS: Record<string, Schema> = {
  Resource: {
    type: 'object',
    description: 'Any FHIR R4 resource (JSON representation); every resource type has its own schema named after it.',
    required: ['resourceType'],
    properties: {
      resourceType: { type: 'string' },
      id: { type: 'string', pattern: '^[A-Za-z0-9\\-.]{1,64}$' },
      meta: { type: 'object', properties: { versionId: { type: 'string' }, lastUpdated: { type: 'string', format: 'date-time' }, profile: { type: 'array', items: { type: 'string' } } } },
    },
    additionalProperties: true,
  },
  OperationOutcome: {
    type: 'object',
    required: ['resourceType', 'issue'],
    properties: {
      resourceType: { const: 'OperationOutcome' },
      issue: {
        type: 'array',
        items: {
          type: 'object',
          required: ['severity', 'code'],
          properties: {
            severity: { enum: ['fatal', 'error', 'warning', 'information'] },
            code: { type: 'string' },
            details: { type: 'object', properties: { text: { type: 'string' } } },
            diagnostics: { type: 'string' },
            expression: { type: 'array', items: { type: 'string' } },
          },
        },
      },
    },
    externalDocs: { url: 'http://hl7.org/fhir/R4/operationoutcome.html' },
  },
  Bundle: {
    type: 'object',
    required: ['resourceType', 'type'],
    properties: {
      resourceType: { const: 'Bundle' },
      type: { enum: ['document', 'message', 'transaction', 'transaction-response', 'batch', 'batch-response', 'history', 'searchset', 'collection'] },
      total: { type: 'integer' },
      link: { type: 'array', items: { type: 'object', properties: { relation: { type: 'string' }, url: { type: 'string' } } } },
      entry: {
        type: 'array',
        items: {
          type: 'object',
          properties: {
            fullUrl: { type: 'string' },
            resource: { $ref: '#/components/schemas/Resource' },
            search: { type: 'object', properties: { mode: { enum: ['match', 'include', 'outcome'] } } },
            request: { type: 'object', properties: { method: { enum: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH'] }, url: { type: 'string' }, ifMatch: { type: 'string' }, ifNoneExist: { type: 'string' } } },
            response: { type: 'object', properties: { status: { type: 'string' }, location: { type: 'string' }, etag: { type: 'string' }, outcome: { $ref: '#/components/schemas/OperationOutcome' } } },
          },
        },
      },
    },
    externalDocs: { url: 'http://hl7.org/fhir/R4/bundle.html' },
  },
  Parameters: {
    type: 'object',
    required: ['resourceType'],
    properties: {
      resourceType: { const: 'Parameters' },
      parameter: { type: 'array', items: { type: 'object', required: ['name'], properties: { name: { type: 'string' }, resource: { $ref: '#/components/schemas/Resource' } }, additionalProperties: true } },
    },
    externalDocs: { url: 'http://hl7.org/fhir/R4/parameters.html' },
  },
  JsonPatch: {
    type: 'array',
    description: 'RFC 6902 JSON Patch operations on the resource\'s JSON',
    items: {
      type: 'object',
      required: ['op', 'path'],
      properties: { op: { enum: ['add', 'remove', 'replace', 'move', 'copy', 'test'] }, path: { type: 'string' }, from: { type: 'string' }, value: {} },
    },
  },
};

/** The schema of one resource type: any resource whose resourceType is that type (its elements per the R4 spec page). */
function resourceSchema(type: string): Schema {
  return {
    allOf: [{ $ref: '#/components/schemas/Resource' }],
    type: 'object',
    properties: { resourceType: { const: type } },
    externalDocs: { url: `http://hl7.org/fhir/R4/${type.toLowerCase()}.html` },
  };
}

/** Shared components: the resource schemas, common parameters and responses. */
export function sharedComponents(types: string[], commonSearch: CapabilityStatementRestResourceSearchParam[], compartmentTypes: string[]): OpenApiDocument['components'] {
  const schemas: Record<string, Schema> = { ...BASE_SCHEMAS };
  for (const t of types) schemas[t] ??= resourceSchema(t);
  const parameters: Record<string, ParameterObject> = {
    id: { name: 'id', in: 'path', required: true, description: 'Logical id of the resource', schema: { type: 'string', pattern: '^[A-Za-z0-9\\-.]{1,64}$' } },
    vid: { name: 'vid', in: 'path', required: true, description: 'Version id (meta.versionId)', schema: { type: 'string' } },
    compartment: { name: 'compartment', in: 'path', required: true, description: 'A resource type of the Patient compartment', schema: { type: 'string', enum: compartmentTypes } },
  };
  for (const p of RESULT_PARAMETERS) parameters[`result.${p.name}`] = p;
  for (const p of HISTORY_PARAMETERS) parameters[`history.${p.name}`] = p;
  for (const [k, p] of Object.entries(HEADER_PARAMETERS)) parameters[`header.${k}`] = p;
  for (const p of commonSearch) parameters[`common.${p.name}`] = searchParameter(p);
  const responses: Record<string, ResponseObject> = {};
  for (const { name, description } of Object.values(ERROR_RESPONSES)) responses[name] = { description, content: fhirContent(ref('schemas', 'OperationOutcome')) };
  const headers = {
    ETag: { description: 'Version of the resource (`W/"<versionId>"`)', schema: { type: 'string' } },
    Location: { description: 'URL of the version written (`[base]/[type]/[id]/_history/[vid]`)', schema: { type: 'string' } },
    'Last-Modified': { description: 'meta.lastUpdated as an HTTP date', schema: { type: 'string' } },
  };
  return { schemas, parameters, responses, headers, securitySchemes: {} };
}
