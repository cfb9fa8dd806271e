import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { importFiles } from '../src/bulk/import-files.js';
import { collectReferences } from '../src/fhir/bundles/references.js';
import { authHeaders, startTestServer, type TestServer } from './support/server.js';

const DATA = new URL('../../shared/data/', import.meta.url).pathname;
const SETS = ['synthea-smart', 'synthea-uscore'].map((s) => join(DATA, s));

/** Resources per type that the Bundles create (conditional creates of the same identifier count once). */
function expectedCounts(dir: string): Map<string, number> {
  const counts = new Map<string, number>();
  const conditional = new Set<string>();
  {
    for (const name of readdirSync(dir).filter((n) => n.endsWith('.json'))) {
      const bundle = JSON.parse(readFileSync(join(dir, name), 'utf8'));
      for (const e of bundle.entry) {
        const type = e.resource.resourceType;
        if (e.request.ifNoneExist) {
          const key = `${type}?${e.request.ifNoneExist}`;
          if (conditional.has(key)) continue;
          conditional.add(key);
        }
        counts.set(type, (counts.get(type) ?? 0) + 1);
      }
    }
  }
  return counts;
}

// Each set goes into a database of its own: both carry copies of the same Synthea Organizations, so in one
// database the uscore set's conditional references would rightly match twice (412).
describe.each(SETS.map((dir) => [dir.split('/').pop()!, dir]))('loading the shared Synthea set %s', (_name, dir) => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer();
  });
  afterAll(async () => {
    await srv?.close();
  });

  it('imports every Bundle, stores every resource, and leaves no unresolved reference', async () => {
    const summary = await importFiles({ baseUrl: srv.base, headers: () => authHeaders(srv.base), paths: [dir], concurrency: 4 });
    expect(summary.failures).toEqual([]);
    expect(summary.files).toBe(readdirSync(dir).filter((n) => n.endsWith('.json')).length);

    const db = srv.running.mongo.db;
    // The server's own resources (review Questionnaire, rating SearchParameter, its re-index Task, the OperationDefinitions, the audit trail of the import) are not Synthea's.
    const own = new Set(['fhir_Questionnaire', 'fhir_SearchParameter', 'fhir_Task', 'fhir_OperationDefinition', 'fhir_AuditEvent']);
    const names = (await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name).filter((n) => /^fhir_[A-Za-z]+$/.test(n) && !own.has(n));
    const stored = new Map<string, number>();
    const ids = new Set<string>();
    const references: string[] = [];
    for (const name of names) {
      const docs = await db.collection(name).find({ del: false }, { projection: { json: 1 } }).toArray();
      stored.set(name.slice(5), docs.length);
      for (const d of docs) {
        const r = JSON.parse(d.json as string);
        ids.add(`${r.resourceType}/${r.id}`);
        collectReferences(r, references);
      }
    }
    expect(Object.fromEntries([...stored].sort())).toEqual(Object.fromEntries([...expectedCounts(dir)].sort()));

    const unresolved = references.filter((ref) => !ref.startsWith('#') && !ids.has(ref));
    expect(unresolved.slice(0, 5)).toEqual([]);
    expect(references.some((r) => r.startsWith('urn:uuid:') || r.includes('?'))).toBe(false);
    expect(references.length).toBeGreaterThan(5000);
  }, 600_000);
});
