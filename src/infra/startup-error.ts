/**
 * A start-up failure the operator can fix: its message is one sentence saying what is wrong and what to do,
 * printed as is (no stack trace) by the entry point.
 */
export class StartupError extends Error {
  override readonly name = 'StartupError';
}

/** A connection string without its password, for messages and logs. */
export function redactUri(uri: string): string {
  return uri.replace(/\/\/([^:@/]+):([^@/]+)@/, '//$1:***@');
}
