/**
 * The shard layout (src/infra/shard-layout.ts) against the code: every collection the code names is declared,
 * and every unique index a running server creates starts with its collection's shard key (or the collection
 * stays unsharded), so a sharded deployment keeps the guarantees the code relies on.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { SHARD_LAYOUT, shardCommands, shardRuleFor, uniqueIndexAllowed } from '../src/infra/shard-layout.js';
import { http, startTestServer, type TestServer } from './support/server.js';

const SRC = resolve(dirname(new URL(import.meta.url).pathname), '../src');
const files = (dir: string): string[] => readdirSync(dir).flatMap((n) => (statSync(join(dir, n)).isDirectory() ? files(join(dir, n)) : n.endsWith('.ts') ? [join(dir, n)] : []));

/** Collection names written as literals in the sources (`db.collection<…>('name')`, `bucketName: 'name'`). */
function namedInSources(): string[] {
  const names = new Set<string>();
  for (const f of files(SRC)) {
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(/\.collection(?:<[^>]*>)?\(\s*'([^']+)'/g)) names.add(m[1]!);
    for (const m of text.matchAll(/bucketName:\s*'([^']+)'/g)) names.add(`${m[1]!}.files`).add(`${m[1]!}.chunks`);
  }
  return [...names].sort();
}

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer({ RATING_SEARCH_PARAMETER: 'false' });
  // A little of everything that creates collections: an account, resources, a conditional create (locks), history.
  await http('POST', `${srv.url}/auth/register`, { body: { email: 'shard@example.org', password: 'Blue-Harbor-72!', givenName: 'S', familyName: 'Hard' }, headers: { 'content-type': 'application/json' }, token: false });
  const p = await http('POST', `${srv.base}/Patient`, { body: { resourceType: 'Patient', identifier: [{ system: 'urn:s', value: '1' }] } });
  await http('PUT', `${srv.base}/Patient/${p.body.id}`, { body: { ...p.body, active: true } });
  await http('POST', `${srv.base}/Patient`, { body: { resourceType: 'Patient' }, headers: { 'if-none-exist': 'identifier=urn:s|1' } });
});
afterAll(async () => {
  await srv?.close();
});

describe('shard layout', () => {
  it('declares every collection the sources name', () => {
    const names = namedInSources();
    expect(names.length).toBeGreaterThan(10);
    expect(names.filter((n) => !n.startsWith('test_') && !shardRuleFor(n))).toEqual([]);
  });

  it('declares every collection a running server creates, and each unique index starts with the shard key', async () => {
    const db = srv.running.mongo.db;
    const collections = (await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name).sort();
    expect(collections).toEqual(expect.arrayContaining(['fhir_Patient', 'fhir_Patient_history', 'accounts', 'oidc_Client']));
    expect(collections.filter((n) => !shardRuleFor(n))).toEqual([]);
    const violations: string[] = [];
    for (const name of collections) {
      const rule = shardRuleFor(name)!;
      for (const ix of await db.collection(name).listIndexes().toArray()) {
        // `_id` is unique by definition, the others when declared so.
        const unique = ix.name === '_id_' || ix.unique === true;
        if (unique && !uniqueIndexAllowed(ix.key, rule.key)) violations.push(`${name}.${ix.name} ${JSON.stringify(ix.key)} under shard key ${JSON.stringify(rule.key)}`);
      }
    }
    expect(violations).toEqual([]);
  });

  it('the check itself refuses a unique index that does not start with the shard key', () => {
    expect(uniqueIndexAllowed({ email: 1 }, { _id: 'hashed' })).toBe(false);
    expect(uniqueIndexAllowed({ _id: 1 }, { _id: 'hashed' })).toBe(true);
    expect(uniqueIndexAllowed({ email: 1 }, 'unsharded')).toBe(true);
    expect(uniqueIndexAllowed({ a: 1 }, { a: 1, b: 1 })).toBe(false);
  });

  it('prints the commands that shard a database along the layout', () => {
    const cmds = shardCommands('medivoy', ['fhir_Patient', 'fhir_Patient_history', 'accounts', 'slot_claims']);
    expect(cmds).toEqual([
      'sh.enableSharding("medivoy")',
      'sh.shardCollection("medivoy.fhir_Patient", {"_id":1})',
      'sh.shardCollection("medivoy.fhir_Patient_history", {"_id":1})',
      'sh.shardCollection("medivoy.slot_claims", {"_id":"hashed"})',
    ]);
    expect(SHARD_LAYOUT.every((r) => r.why.length > 20)).toBe(true);
  });
});
