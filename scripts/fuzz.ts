/**
 * The hostile-input properties of test/fuzz-hostile-input.test.ts, run for longer against a server process of
 * its own (on MONGODB_URI/REDIS_URL, in a throw-away database):
 *
 *   npm run fuzz -- --runs 20000 [--seed 42]
 *
 * Prints the seed (a failure is reproduced with the same seed) and, on a violation, the request that broke a
 * property; exits 1 then. Keep every case it finds as a named regression test in that test file.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { MongoClient } from 'mongodb';
import { checkHostileInput, fetchSender } from './lib/hostile-input.js';
import { startServerProcess } from './lib/server-process.js';
import { serviceTokenSource } from './lib/service-token.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '20000' }, seed: { type: 'string' } } });
const runs = Number(values.runs);
const seed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
if (!Number.isInteger(runs) || runs < 1 || !Number.isInteger(seed)) {
  console.error('usage: npm run fuzz -- --runs N [--seed S]');
  process.exit(2);
}
const uri = process.env.MONGODB_URI;
if (!uri) {
  console.error('Set MONGODB_URI (a MongoDB replica set or FerretDB) for the server under test.');
  process.exit(2);
}
const db = `fuzz_${randomBytes(4).toString('hex')}`;
console.log(`fuzzing with ${runs} cases, seed ${seed}, database ${db}`);
const server = await startServerProcess({ MONGODB_DB: db, LOG_LEVEL: 'error', NODE_ENV: 'test' });
const client = await new MongoClient(uri).connect();
let failed = false;
try {
  const token = await serviceTokenSource(client.db(db), server.url);
  let done = 0;
  const started = Date.now();
  await checkHostileInput(fetchSender(`${server.url}/fhir`, token, 60_000), {
    runs,
    seed,
    onCase: () => {
      if (++done % 1000 === 0) console.log(`${done} cases, ${Math.round((done * 1000) / (Date.now() - started))}/s`);
    },
  });
  console.log(`all ${done} cases kept every property (seed ${seed})`);
} catch (err) {
  failed = true;
  console.error(`property violated (seed ${seed}):\n${err instanceof Error ? err.message : String(err)}`);
} finally {
  await client.db(db).dropDatabase().catch(() => undefined);
  await client.close();
  await server.stop();
}
process.exit(failed ? 1 : 0);
