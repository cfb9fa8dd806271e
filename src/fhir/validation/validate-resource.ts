// Temporary: being replaced by the validation work.
import { validateResource as medplumValidate } from '@medplum/core';
import type { OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
export function validateResource(resource: unknown): OperationOutcomeIssue[] {
  try { medplumValidate(resource as Resource); return []; } catch (e: any) { return e.outcome?.issue ?? [{ severity: 'error', code: 'invalid', details: { text: String(e.message) } }]; }
}
