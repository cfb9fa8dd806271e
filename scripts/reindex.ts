/**
 * Re-indexes stored resources for search, with a progress bar: the same durable job (and FHIR Task) the
 * server runs in the background when a SearchParameter changes, driven from the command line.
 *   npm run reindex -- --type Patient,Observation     re-index these types
 *   npm run reindex -- --all                          every stored type (e.g. after an upgrade changed the index)
 *   npm run reindex                                   only run the jobs already queued (custom SearchParameters)
 * Uses the same configuration as the server (MONGODB_URI, MONGODB_DB, FERRETDB_POSTGRES_URL …). Safe while
 * servers run: a document written meanwhile keeps the index its writer computed.
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config/config.js';
import { createLogger } from '../src/infra/logger.js';
import { startServer } from '../src/server.js';
import { isResourceType } from '../src/fhir/definitions.js';
import { progressBar } from './lib/progress.js';

const { values } = parseArgs({ options: { type: { type: 'string' }, all: { type: 'boolean', default: false } } });
const config = loadConfig({ ...process.env, PORT: '0', HOST: '127.0.0.1', REINDEX_WORKER: 'false', LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' });
const running = await startServer(config, createLogger(config.logLevel));
let exitCode = 0;
try {
  const custom = running.customParameters;
  let types: string[] = [];
  if (values.all) types = await running.repo.storedTypes();
  else if (values.type) types = values.type.split(',').map((t) => t.trim()).filter(Boolean);
  for (const t of types) {
    if (!isResourceType(t)) {
      console.error(`'${t}' is not a resource type`);
      process.exit(2);
    }
  }
  if (types.length) {
    const job = await custom.enqueue(types, 'scripts/reindex');
    console.log(`queued a re-index of ${types.length} type(s), reported as ${job.task}`);
  }
  for (;;) {
    let bar: ReturnType<typeof progressBar> | undefined;
    const started = Date.now();
    const job = await custom.runOne((j) => {
      bar ??= progressBar(`reindex ${j.task}`, j.total);
      bar.update(j.processed, `type ${j.types[Math.min(j.typeIndex, j.types.length - 1)]}`);
    });
    bar?.done();
    if (!job) break;
    const seconds = (Date.now() - started) / 1000;
    console.log(`${job.task}: ${job.status}, ${job.processed} resources in ${seconds.toFixed(1)} s (${(job.processed / Math.max(seconds, 0.001)).toFixed(0)}/s)${job.error ? `: ${job.error}` : ''}`);
    if (job.status === 'failed') exitCode = 1;
  }
  const waiting = await custom.jobs.countDocuments({ status: { $in: ['queued', 'running'] } });
  if (waiting) console.log(`${waiting} job(s) are held by a running server or not yet due; they continue there`);
} finally {
  await running.close();
}
process.exit(exitCode);
