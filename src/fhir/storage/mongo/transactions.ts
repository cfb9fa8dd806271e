import type { ClientSession, MongoClient } from 'mongodb';

/**
 * Runs `fn` inside a multi-document transaction when the engine has them, otherwise directly.
 * Callers write code that is correct in both cases (see version-writer.ts for how).
 */
export async function maybeInTransaction<T>(
  client: MongoClient,
  supportsTransactions: boolean,
  fn: (session?: ClientSession) => Promise<T>,
): Promise<T> {
  if (!supportsTransactions) return fn(undefined);
  const session = client.startSession();
  try {
    let result: T | undefined;
    await session.withTransaction(async () => {
      result = await fn(session);
    });
    return result as T;
  } finally {
    await session.endSession();
  }
}
