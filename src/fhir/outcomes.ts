import type { OperationOutcome, OperationOutcomeIssue } from '@medplum/fhirtypes';

/** The one error type of the FHIR layer: it carries the OperationOutcome and the HTTP status it maps to. */
export class OperationOutcomeError extends Error {
  constructor(
    readonly status: number,
    readonly outcome: OperationOutcome,
    readonly headers: Record<string, string> = {},
  ) {
    super(outcome.issue?.[0]?.details?.text ?? outcome.issue?.[0]?.diagnostics ?? `HTTP ${status}`);
    this.name = 'OperationOutcomeError';
  }
}

type IssueCode = OperationOutcomeIssue['code'];

export function outcome(issues: OperationOutcomeIssue[]): OperationOutcome {
  return { resourceType: 'OperationOutcome', issue: issues };
}

export function issue(
  severity: OperationOutcomeIssue['severity'],
  code: IssueCode,
  text: string,
  expression?: string[],
): OperationOutcomeIssue {
  return { severity, code, details: { text }, ...(expression ? { expression } : {}) };
}

export function informational(text: string): OperationOutcome {
  return outcome([issue('information', 'informational', text)]);
}

function fail(status: number, code: IssueCode, text: string, expression?: string[]): OperationOutcomeError {
  return new OperationOutcomeError(status, outcome([issue('error', code, text, expression)]));
}

export const errors = {
  badRequest: (text: string, expression?: string[]) => fail(400, 'invalid', text, expression),
  invalid: (issues: OperationOutcomeIssue[], status = 400) => new OperationOutcomeError(status, outcome(issues)),
  notSupported: (text: string, status = 400) => fail(status, 'not-supported', text),
  notFound: (text: string) => fail(404, 'not-found', text),
  forbidden: (text: string) => fail(403, 'forbidden', text),
  /** 401 with the RFC 6750 challenge; `error` is absent when no token was sent at all. */
  unauthorized: (text: string, error?: 'invalid_token', resourceMetadata?: string) =>
    new OperationOutcomeError(401, outcome([issue('error', 'login', text)]), {
      'WWW-Authenticate': `Bearer realm="medivoy"${error ? `, error="${error}", error_description="${text.replace(/["\\]/g, '')}"` : ''}${resourceMetadata ? `, resource_metadata="${resourceMetadata}"` : ''}`,
    }),
  gone: (text: string) => fail(410, 'deleted', text),
  conflict: (text: string) => fail(409, 'conflict', text),
  preconditionFailed: (text: string) => fail(412, 'conflict', text),
  businessRule: (text: string, expression?: string[]) => fail(422, 'business-rule', text, expression),
  methodNotAllowed: (text: string, allow: string[]) =>
    new OperationOutcomeError(405, outcome([issue('error', 'not-supported', text)]), { Allow: allow.join(', ') }),
  notAcceptable: (text: string) => fail(406, 'not-supported', text),
  unsupportedMediaType: (text: string) => fail(415, 'not-supported', text),
  tooLarge: (text: string) => fail(413, 'too-costly', text),
  tooManyRequests: (text: string, retryAfterSeconds: number) =>
    new OperationOutcomeError(429, outcome([issue('error', 'throttled', text)]), { 'Retry-After': String(retryAfterSeconds) }),
  /** 503 `transient` with Retry-After: a dependency (database, Redis, the authorization server) is not answering. */
  unavailable: (text: string, retryAfterSeconds = 5) =>
    new OperationOutcomeError(503, outcome([issue('error', 'transient', text)]), { 'Retry-After': String(retryAfterSeconds) }),
  internal: (requestId: string) => fail(500, 'exception', `Internal server error (request id ${requestId})`),
};

export function isOperationOutcomeError(err: unknown): err is OperationOutcomeError {
  return err instanceof OperationOutcomeError;
}
