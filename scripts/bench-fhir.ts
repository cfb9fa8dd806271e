/**
 * Runs the shared black-box workload (`../shared/bench/fhir-bench.mjs`, the one peers are measured with)
 * against a server process of ours on a fresh database, with a backend-services token, and prints its JSON
 * lines. Each `--env K=V` set (repeatable, `;` between variables) is one run on its own database, so two
 * configurations can be compared back to back on the same machine.
 *
 *   npm run bench-fhir -- --patients 1000 --per 25 --conc 8 --ops 1000 \
 *     --env FERRETDB_SQL_SEARCH=false --env FERRETDB_SQL_SEARCH=true
 *
 * `--keep` leaves each run's database in place (its name is printed) instead of dropping it.
 * Needs MONGODB_URI (and FERRETDB_POSTGRES_URL on FerretDB), like the other benchmarks.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { MongoClient } from 'mongodb';
import { startServerProcess } from './lib/server-process.js';
import { serviceTokenSource } from './lib/service-token.js';

const argv = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] ? argv[i + 1]! : dflt;
};
const envSets = argv.flatMap((a, i) => (a === '--env' && argv[i + 1] ? [argv[i + 1]!] : []));
const bench = resolve(opt('bench', new URL('../../shared/bench/fhir-bench.mjs', import.meta.url).pathname));
const passThrough = ['patients', 'per', 'conc', 'ops', 'only'].flatMap((k) => (argv.includes(`--${k}`) ? [`--${k}`, opt(k, '')] : []));

if (!process.env.MONGODB_URI) {
  console.error('bench-fhir: set MONGODB_URI (and FERRETDB_POSTGRES_URL on FerretDB)');
  process.exit(2);
}
if (!existsSync(bench)) {
  console.error(`bench-fhir: no workload script at ${bench} (give --bench PATH)`);
  process.exit(2);
}

const client = await MongoClient.connect(process.env.MONGODB_URI);
try {
  for (const set of envSets.length ? envSets : ['']) {
    const env = Object.fromEntries(set.split(';').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
    const dbName = `bench_fhir_${randomBytes(4).toString('hex')}`;
    const server = await startServerProcess({ ...env, MONGODB_DB: dbName, LOG_LEVEL: 'warn', RESOURCE_CACHE_SECONDS: env.RESOURCE_CACHE_SECONDS ?? '60' });
    try {
      const token = await (await serviceTokenSource(client.db(dbName), server.url))();
      const label = set || 'default';
      console.log(JSON.stringify({ run: label, db: dbName }));
      await new Promise<void>((done, fail) => {
        const child = spawn(process.execPath, [bench, '--base', `${server.url}/fhir`, '--token', token, '--label', label, ...passThrough], { stdio: ['ignore', 'inherit', 'inherit'] });
        child.once('exit', (code) => (code === 0 ? done() : fail(new Error(`fhir-bench exited with ${code}`))));
      });
    } finally {
      await server.stop();
      // --keep: leave the database for a look at its data and query plans afterwards.
      if (argv.includes('--keep')) console.log(JSON.stringify({ kept: dbName }));
      else await client.db(dbName).dropDatabase().catch(() => undefined);
    }
  }
} finally {
  await client.close();
}
