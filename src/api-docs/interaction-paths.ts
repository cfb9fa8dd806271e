import type { CapabilityStatementRest, CapabilityStatementRestResource } from '@medplum/fhirtypes';
import { errorResponses, P, searchParameter, searchParamName } from './components.js';
import { fhirContent, ref, type OperationObject, type ParameterObject, type PathItem, type Ref, type ResponseObject } from './openapi-types.js';

const versionHeaders = { ETag: ref('headers', 'ETag'), 'Last-Modified': ref('headers', 'Last-Modified') };
const writeHeaders = { ...versionHeaders, Location: ref('headers', 'Location') };
const bundleOk = (what: string): ResponseObject => ({ description: what, content: fhirContent(ref('schemas', 'Bundle')) });
const outcomeOk = (what: string): ResponseObject => ({ description: what, content: fhirContent(ref('schemas', 'OperationOutcome')) });
const FORM = 'application/x-www-form-urlencoded';

/** Adds an operation to a path, creating the path item. */
export function addOperation(paths: Record<string, PathItem>, path: string, method: keyof Omit<PathItem, 'parameters'>, op: OperationObject): void {
  const item = (paths[path] ??= {});
  if (item[method]) throw new Error(`${method.toUpperCase()} ${path} is documented twice`);
  item[method] = op;
}

/**
 * The type's own search parameters (registered once in components, referenced by every search of the type)
 * and the `$ref`s of a search's query: the parameters all types have, the type's own and the result parameters.
 */
function searchQuery(r: CapabilityStatementRestResource, common: string[], own: Record<string, ParameterObject>): Ref[] {
  for (const p of r.searchParam ?? []) own[searchParamName(r.type, p.name)] = searchParameter(p);
  return [...common.map(P.common), ...(r.searchParam ?? []).map((p) => P.type(r.type, p.name))];
}

/** The same parameters as a form body (POST [type]/_search): one string field each. */
function searchForm(names: string[]): { description: string; content: Record<string, { schema: Record<string, unknown> }> } {
  return {
    description: 'The search parameters form-encoded (the same as in the query of GET)',
    content: { [FORM]: { schema: { type: 'object', properties: Object.fromEntries(names.map((n) => [n, { type: 'string' }])) } } },
  };
}

/**
 * The paths of one resource type's interactions as its CapabilityStatement entry declares them
 * (R4 3.1.0: read, vread, update, patch, delete, history, create, search, and the conditional variants).
 */
export function typeInteractionPaths(r: CapabilityStatementRestResource, common: string[], own: Record<string, ParameterObject>, paths: Record<string, PathItem>): void {
  const t = r.type;
  const has = new Set((r.interaction ?? []).map((i) => i.code));
  const body = { required: true, content: fhirContent(ref('schemas', t), { resourceType: t }) };
  const resourceOk = (what: string, headers = versionHeaders): ResponseObject => ({ description: what, headers, content: fhirContent(ref('schemas', t)) });
  const tags = [t];
  const criteria = has.has('search-type') ? searchQuery(r, common, own) : [];
  const criteriaNames = [...common, ...(r.searchParam ?? []).map((p) => p.name)];
  if (has.has('search-type')) {
    const include: ParameterObject = {
      name: '_include', in: 'query', schema: { type: 'string', ...(r.searchInclude?.length ? { examples: r.searchInclude } : {}) },
      description: `Adds resources the matches refer to: ${(r.searchInclude ?? []).map((i) => `\`${i}\``).join(', ')}; \`_include:iterate\` follows further`,
    };
    own[searchParamName(t, '_include')] = include;
    const query = [...criteria, ...P.result.filter((p) => !p.$ref.endsWith('._include')), P.type(t, '_include'), P.header('Prefer-handling')];
    const responses = { '200': bundleOk(`A searchset Bundle of ${t} resources (and included ones), with paging links`), ...errorResponses('400') };
    addOperation(paths, `/${t}`, 'get', { operationId: `search-${t}`, summary: `Search ${t}`, tags, parameters: query, responses });
    addOperation(paths, `/${t}/_search`, 'post', {
      operationId: `search-post-${t}`, summary: `Search ${t} (parameters in a form body)`, tags, parameters: [P.header('Prefer-handling')],
      requestBody: searchForm([...criteriaNames, '_count', '_sort', '_include', '_revinclude', '_summary', '_elements', '_total']), responses,
    });
  }
  if (has.has('create')) {
    addOperation(paths, `/${t}`, 'post', {
      operationId: `create-${t}`, summary: `Create a ${t}`, description: 'The server assigns the id. With If-None-Exist, an existing match is answered instead (200).', tags,
      parameters: [P.header('If-None-Exist'), P.header('Prefer-return'), P.header('Idempotency-Key')], requestBody: body,
      responses: { '201': resourceOk('Created', writeHeaders), '200': resourceOk('An existing resource matched If-None-Exist'), ...errorResponses('400', '412', '415', '422') },
    });
  }
  if (r.conditionalUpdate && has.has('update')) {
    addOperation(paths, `/${t}`, 'put', {
      operationId: `conditional-update-${t}`, summary: `Update the ${t} the criteria match (or create it)`, tags,
      description: 'Conditional update: no match creates, one match updates, several are refused with 412.',
      parameters: [...criteria, P.header('If-Match'), P.header('Prefer-return')], requestBody: body,
      responses: { '200': resourceOk('Updated', writeHeaders), '201': resourceOk('Created', writeHeaders), ...errorResponses('400', '409', '412', '415', '422') },
    });
  }
  if (r.conditionalDelete && r.conditionalDelete !== 'not-supported' && has.has('delete')) {
    addOperation(paths, `/${t}`, 'delete', {
      operationId: `conditional-delete-${t}`, summary: `Delete the ${t} the criteria match`, tags, description: 'Conditional delete of a single match; several matches are refused with 412.',
      parameters: criteria, responses: { '200': outcomeOk('Deleted, or nothing matched'), ...errorResponses('400', '412') },
    });
  }
  if (has.has('history-type')) {
    addOperation(paths, `/${t}/_history`, 'get', {
      operationId: `history-type-${t}`, summary: `History of every ${t}`, tags, parameters: P.history,
      responses: { '200': bundleOk('A history Bundle, newest first'), ...errorResponses('400') },
    });
  }
  const instance = `/${t}/{id}`;
  if (has.has('read')) {
    addOperation(paths, instance, 'get', {
      operationId: `read-${t}`, summary: `Read a ${t}`, tags, parameters: [P.header('If-None-Match'), P.header('If-Modified-Since')],
      responses: { '200': resourceOk('The current version'), '304': { description: 'Not modified' }, ...errorResponses('404', '410') },
    });
  }
  if (has.has('update')) {
    addOperation(paths, instance, 'put', {
      operationId: `update-${t}`, summary: `Update (or create with this id) a ${t}`, tags, parameters: [P.header('If-Match'), P.header('Prefer-return')], requestBody: body,
      responses: { '200': resourceOk('Updated', writeHeaders), '201': resourceOk('Created with this id', writeHeaders), ...errorResponses('400', '409', '412', '415', '422') },
    });
  }
  if (has.has('patch')) {
    addOperation(paths, instance, 'patch', {
      operationId: `patch-${t}`, summary: `Patch a ${t} (JSON Patch)`, tags, parameters: [P.header('If-Match'), P.header('Prefer-return')],
      requestBody: { required: true, content: { 'application/json-patch+json': { schema: ref('schemas', 'JsonPatch'), example: [{ op: 'replace', path: '/status', value: 'active' }] } } },
      responses: { '200': resourceOk('Patched', writeHeaders), ...errorResponses('400', '404', '409', '412', '415', '422') },
    });
  }
  if (has.has('delete')) {
    addOperation(paths, instance, 'delete', {
      operationId: `delete-${t}`, summary: `Delete a ${t}`, tags, description: 'Writes a deletion version; deleting what is absent is not an error.', parameters: [P.header('If-Match')],
      responses: { '200': outcomeOk('Deleted (or there was nothing to delete)'), ...errorResponses('409', '412') },
    });
  }
  if (has.has('history-instance')) {
    addOperation(paths, `${instance}/_history`, 'get', {
      operationId: `history-instance-${t}`, summary: `Versions of a ${t}`, tags, parameters: P.history,
      responses: { '200': bundleOk('A history Bundle, newest first'), ...errorResponses('400', '404') },
    });
  }
  if (has.has('vread')) {
    addOperation(paths, `${instance}/_history/{vid}`, 'get', {
      operationId: `vread-${t}`, summary: `Read one version of a ${t}`, tags,
      responses: { '200': resourceOk('That version'), ...errorResponses('404', '410') },
    });
  }
  for (const path of [instance, `${instance}/_history`, `${instance}/_history/{vid}`]) {
    if (paths[path]) paths[path].parameters = path.endsWith('{vid}') ? [P.id, P.vid] : [P.id];
  }
}

/** The Patient compartment search, `Patient/[id]/[type]` (R4 3.1.0.9, served for Patient). */
export function compartmentPath(paths: Record<string, PathItem>): void {
  addOperation(paths, '/Patient/{id}/{compartment}', 'get', {
    operationId: 'search-compartment-Patient', summary: 'Search one resource type within a patient\'s compartment', tags: ['Patient'],
    description: 'The search parameters of the chosen type apply as in its own search.',
    parameters: [P.id, P.compartment, ...P.result],
    responses: { '200': bundleOk('A searchset Bundle'), ...errorResponses('400', '404') },
  });
}

/** The system-level interactions the CapabilityStatement declares (batch/transaction, history, search) and /metadata. */
export function systemPaths(rest: CapabilityStatementRest, common: string[], paths: Record<string, PathItem>): void {
  const has = new Set((rest.interaction ?? []).map((i) => i.code));
  const tags = ['System'];
  if (has.has('batch') || has.has('transaction')) {
    const kinds = ['batch', 'transaction'].filter((k) => has.has(k as 'batch'));
    addOperation(paths, '/', 'post', {
      operationId: 'batch-transaction', summary: `Run a ${kinds.join(' or ')} Bundle`, tags,
      description: 'A `transaction` commits all entries or none; a `batch` runs each entry on its own.',
      parameters: [P.header('Idempotency-Key')],
      requestBody: { required: true, content: fhirContent(ref('schemas', 'Bundle'), { resourceType: 'Bundle', type: kinds[kinds.length - 1], entry: [{ request: { method: 'GET', url: 'Patient?_count=1' } }] }) },
      responses: { '200': bundleOk(`A ${kinds.map((k) => `${k}-response`).join(' or ')} Bundle`), ...errorResponses('400', '409', '412', '422') },
    });
  }
  if (has.has('history-system')) {
    addOperation(paths, '/_history', 'get', {
      operationId: 'history-system', summary: 'History of every resource', tags, parameters: P.history,
      responses: { '200': bundleOk('A history Bundle, newest first'), ...errorResponses('400') },
    });
  }
  if (has.has('search-system')) {
    const type: ParameterObject = { name: '_type', in: 'query', description: 'Comma-separated resource types to search', schema: { type: 'string' } };
    const responses = { '200': bundleOk('A searchset Bundle'), ...errorResponses('400') };
    addOperation(paths, '/', 'get', { operationId: 'search-system', summary: 'Search across resource types', tags, parameters: [type, ...common.map(P.common), ...P.result], responses });
    addOperation(paths, '/_search', 'post', {
      operationId: 'search-system-post', summary: 'Search across resource types (parameters in a form body)', tags,
      requestBody: searchForm(['_type', ...common, '_count', '_sort', '_include', '_revinclude', '_summary', '_elements', '_total']), responses,
    });
  }
  addOperation(paths, '/metadata', 'get', {
    operationId: 'capabilities', summary: 'The CapabilityStatement', tags, security: [],
    responses: { '200': { description: 'What this server supports', content: fhirContent(ref('schemas', 'CapabilityStatement')) } },
  });
  addOperation(paths, '/.well-known/smart-configuration', 'get', {
    operationId: 'smart-configuration', summary: 'SMART App Launch discovery', tags: ['Authorization'], security: [],
    responses: { '200': { description: 'The authorization endpoints, grant types, scopes and capabilities', content: { 'application/json': { schema: { type: 'object' } } } } },
  });
}
