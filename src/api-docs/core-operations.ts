import type { OperationLevel, OperationParameterSpec } from '../fhir/operations/registry.js';

/** What the documentation needs of an operation: where, how and with what it is invoked. */
export interface DocumentedOperation {
  name: string;
  levels: OperationLevel[];
  methods: ('GET' | 'POST' | 'DELETE')[];
  description: string;
  affectsState: boolean;
  /** Types at type/instance level; undefined for all (e.g. $validate). */
  resourceTypes?: string[];
  /** `resource`: the body may be the resource itself instead of a Parameters. */
  body?: 'parameters' | 'resource';
  parameters: OperationParameterSpec[];
  /** Input parameters that apply at type level only (e.g. `_id` of Patient/$everything). */
  typeLevelOnly?: string[];
}

/**
 * The HL7 operations the FHIR core serves itself (fhir/rest/routes.ts), which the operation registry does
 * not describe: their parameters as this server implements them (a subset of HL7's OperationDefinitions).
 * An operation the CapabilityStatement lists that is neither here nor registered has no documentation, and
 * building the OpenAPI document fails rather than leave it out.
 */
export const CORE_OPERATIONS: DocumentedOperation[] = [
  {
    name: 'validate',
    levels: ['type', 'instance'],
    methods: ['POST'],
    affectsState: false,
    description: 'Validates a resource against the R4 definitions and the server\'s profiles; nothing is stored.',
    body: 'resource',
    parameters: [
      { name: 'resource', use: 'in', min: 1, max: '1', type: 'Resource', documentation: 'The resource to check (or send the resource itself as the body)' },
      { name: 'return', use: 'out', min: 1, max: '1', type: 'OperationOutcome', documentation: 'The issues found, or one informational issue' },
    ],
  },
  {
    name: 'everything',
    levels: ['type', 'instance'],
    methods: ['GET'],
    resourceTypes: ['Patient'],
    affectsState: false,
    description: 'The patient, every resource in their compartment and the practitioners, organizations, medications and locations those refer to, page by page.',
    parameters: [
      { name: '_id', use: 'in', min: 0, max: '1', type: 'id', documentation: 'The patient (type level; at instance level the id is in the path)' },
      { name: '_since', use: 'in', min: 0, max: '1', type: 'instant', documentation: 'Only resources updated at or after this instant' },
      { name: '_type', use: 'in', min: 0, max: '1', type: 'string', documentation: 'Comma-separated resource types to include' },
      { name: '_count', use: 'in', min: 0, max: '1', type: 'integer', documentation: 'Page size' },
      { name: 'return', use: 'out', min: 1, max: '1', type: 'Bundle', documentation: 'A searchset Bundle with paging links' },
    ],
    typeLevelOnly: ['_id'],
  },
];

// --- bulk: begin ---
/** A plain route a module serves under the FHIR base outside the operation registry (not an operation). */
export interface DocumentedRoute {
  /** Relative to the FHIR base, with `{name}` path parameters. */
  path: string;
  method: 'get' | 'delete';
  operationId: string;
  summary: string;
  description: string;
  parameters: { name: string; description: string }[];
  /** Success responses: status → description, media type and headers (errors are OperationOutcomes). */
  responses: Record<string, { description: string; contentType?: string; headers?: Record<string, string> }>;
  errors: ('400' | '404' | '410')[];
}

const BULK_ID = { name: 'id', description: 'The bulk request (from the kick-off\'s Content-Location)' };

/** The Bulk Data status and file endpoints (src/bulk/routes.ts): they need a token of the client that started the request. */
export const CORE_ROUTES: DocumentedRoute[] = [
  {
    path: '/_bulk/status/{id}', method: 'get', operationId: 'bulkStatus', summary: 'Bulk Data status: progress, or the manifest when done',
    description: 'Polls a `$export` or `$import` request. In progress: 202 with `X-Progress` and `Retry-After`. Done: 200 with the manifest (JSON: transactionTime, request, requiresAccessToken, output, error), with `Expires`.',
    parameters: [BULK_ID],
    responses: {
      200: { description: 'The manifest', contentType: 'application/json', headers: { Expires: 'When the files are removed' } },
      202: { description: 'In progress', contentType: 'application/fhir+json', headers: { 'X-Progress': 'Resources done of all', 'Retry-After': 'Seconds to wait before polling again' } },
    },
    errors: ['404'],
  },
  {
    path: '/_bulk/status/{id}', method: 'delete', operationId: 'bulkCancel', summary: 'Cancels a bulk request (or cleans up a finished one) and removes its files',
    description: 'Afterwards the status URL answers 404.',
    parameters: [BULK_ID],
    responses: { 202: { description: 'Cancelled', contentType: 'application/fhir+json' } },
    errors: ['404'],
  },
  {
    path: '/_bulk/files/{id}/{file}', method: 'get', operationId: 'bulkFile', summary: 'One NDJSON file of a finished bulk request',
    description: 'A file named in the manifest\'s output or error (one resource per line).',
    parameters: [BULK_ID, { name: 'file', description: 'The file name, as the manifest\'s url ends' }],
    responses: { 200: { description: 'The file', contentType: 'application/fhir+ndjson', headers: { Expires: 'When the file is removed' } } },
    errors: ['404'],
  },
];
// --- bulk: end ---
