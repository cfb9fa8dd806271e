import type { OperationOutcome, Resource } from '@medplum/fhirtypes';
import { errors } from '../../outcomes.js';
import type { Handler } from '../types.js';
import { requireResourceBody } from './body.js';
import { validateResource } from '../../validation/validate-resource.js';

/**
 * POST [type]/$validate and [type]/[id]/$validate: the OperationOutcome of validating the body, nothing stored.
 * The body may be the resource itself or a Parameters with a `resource` parameter (R4 OperationDefinition Resource-validate).
 */
export const validate: Handler = async (req, _ctx, { type, id }) => {
  let body = req.body as Resource | undefined;
  if (body && (body as { resourceType?: string }).resourceType === 'Parameters') {
    const param = (body as { parameter?: { name?: string; resource?: Resource }[] }).parameter?.find((p) => p.name === 'resource');
    if (!param?.resource) throw errors.badRequest('Parameters for $validate need a parameter named resource');
    body = param.resource;
  }
  const resource = requireResourceBody({ ...req, body }, type!);
  if (id && resource.id !== undefined && resource.id !== id) throw errors.badRequest(`Resource id '${resource.id}' does not match '${id}' in the URL`);
  const issues = validateResource(resource);
  const outcome: OperationOutcome = {
    resourceType: 'OperationOutcome',
    issue: issues.length ? issues : [{ severity: 'information', code: 'informational', details: { text: 'Validation successful: no issues found' } }],
  };
  return { status: 200, body: outcome };
};
