import { MongoClient } from 'mongodb';
import { serviceTokenSource } from './service-token.js';

/**
 * The Authorization header an operator script sends: `--token` if given; otherwise, when the script can
 * reach the server's database (MONGODB_URI, MONGODB_DB), a Backend Services client it registers there.
 */
export async function scriptAuthorization(fhirBase: string, token: string | undefined): Promise<{ headers: () => Promise<Record<string, string>>; close: () => Promise<void> }> {
  if (token) return { headers: async () => ({ authorization: `Bearer ${token}` }), close: async () => undefined };
  if (!process.env.MONGODB_URI) {
    console.error('The server needs an access token: pass --token, or set MONGODB_URI (and MONGODB_DB) so the script can register itself as a backend client.');
    process.exit(2);
  }
  const client = await new MongoClient(process.env.MONGODB_URI).connect();
  const source = await serviceTokenSource(client.db(process.env.MONGODB_DB || 'medivoy'), new URL(fhirBase).origin);
  return { headers: async () => ({ authorization: `Bearer ${await source()}` }), close: () => client.close() };
}
