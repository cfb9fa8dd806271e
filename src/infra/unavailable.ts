import { MongoError, MongoNetworkError, MongoServerSelectionError } from 'mongodb';

/** MongoDB server error codes that mean "this server cannot serve now" (shutting down, not primary, interrupted). */
const UNAVAILABLE_CODES = new Set([6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436]);
/** Socket errors of any client (the MongoDB driver, `pg` on FerretDB's PostgreSQL, Redis). */
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);
/** PostgreSQL SQLSTATE classes/codes of a server that is gone or going (08: connection exception; 57P0x: shutdown). */
const PG_UNAVAILABLE = /^(08\d{3}|57P0[1-3])$/;

/**
 * True when an error means a dependency (the database, its PostgreSQL, Redis) cannot be reached right now, as
 * opposed to a bug or a bad request: such a request is answered 503 with Retry-After instead of a 500.
 * Looks through `cause` chains (drivers and the error handler's callers wrap errors).
 */
export function isDependencyUnavailable(err: unknown, depth = 0): boolean {
  if (!err || typeof err !== 'object' || depth > 5) return false;
  // Not MongoNotConnectedError/MongoTopologyClosedError: a client this process closed never recovers (a 500).
  if (err instanceof MongoNetworkError || err instanceof MongoServerSelectionError) return true;
  if (err instanceof MongoError) {
    if (typeof err.code === 'number' && UNAVAILABLE_CODES.has(err.code)) return true;
    if (err.hasErrorLabel('ResetPool') || err.hasErrorLabel('RetryableWriteError') || err.hasErrorLabel('TransientTransactionError')) return true;
  }
  const e = err as { code?: unknown; cause?: unknown; message?: unknown; name?: unknown };
  if (e.name === 'RedisUnavailableError') return true;
  if (typeof e.code === 'string' && (SOCKET_CODES.has(e.code) || PG_UNAVAILABLE.test(e.code))) return true;
  // ioredis: commands refused while it reconnects, or after it gave up.
  if (typeof e.message === 'string' && /^(Connection is closed|Stream isn't writeable|Reached the max retries per request limit)/.test(e.message)) return true;
  // pg: "Connection terminated unexpectedly" / "Client has encountered a connection error and is not queryable".
  if (typeof e.message === 'string' && /^(Connection terminated|Client has encountered a connection error)/.test(e.message)) return true;
  if (e.cause) return isDependencyUnavailable(e.cause, depth + 1);
  // MongoBulkWriteError (insertMany) carries the error that stopped the batch as `errorResponse`.
  const response = (err as { errorResponse?: unknown }).errorResponse;
  if (response && response !== err && isDependencyUnavailable(response, depth + 1)) return true;
  if (Array.isArray((err as { errors?: unknown }).errors)) return (err as { errors: unknown[] }).errors.some((x) => isDependencyUnavailable(x, depth + 1));
  return false;
}
