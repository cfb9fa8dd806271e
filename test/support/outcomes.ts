import { expect } from '@jest/globals';
import { http, type HttpResult } from './server.js';

/** Text that only an engine, a runtime or a stack trace would put into a response. */
const LEAKS = [
  /\n\s+at\s/, // stack frame
  /node_modules/,
  /\.ts:\d+/,
  /\.js:\d+/,
  /Mongo[A-Z]\w*Error/,
  /MongoError|ferretdb|postgres|E11000|BSON/i,
  /TypeError|ReferenceError|RangeError|SyntaxError/,
  /Unexpected token|in JSON at position/,
];

/**
 * Asserts that a response is an error in FHIR's shape: the expected status, `application/fhir+json`,
 * an OperationOutcome with at least one error issue, an X-Request-Id, and nothing that leaks internals.
 */
export function expectOutcome(res: HttpResult, status: number): void {
  // The body is part of the compared object so that a failure shows what the server said.
  expect({ status: res.status, body: res.text.slice(0, 500) }).toMatchObject({ status });
  expect(res.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
  expect(res.body?.resourceType).toBe('OperationOutcome');
  expect(res.body.issue.length).toBeGreaterThan(0);
  expect(res.body.issue.some((i: { severity: string }) => i.severity === 'error' || i.severity === 'fatal')).toBe(true);
  expect(res.headers.get('x-request-id')).toBeTruthy();
  expectNoLeaks(res.text);
}

/** Fails when a response body carries a stack trace or an engine/runtime message. */
export function expectNoLeaks(text: string): void {
  for (const leak of LEAKS) expect({ leak: String(leak), found: leak.test(text) }).toEqual({ leak: String(leak), found: false });
}

/** `total` of a history bundle: the number of versions stored for a type or one resource. */
export async function historyTotal(base: string, type: string, id?: string): Promise<number> {
  const res = await http('GET', `${base}/${type}${id ? `/${id}` : ''}/_history?_count=0`);
  expect(res.status).toBe(200);
  return res.body.total as number;
}
