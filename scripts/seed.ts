/**
 * Loads the product's sample data (resources/sample-data) into a running server; safe to re-run.
 *   npm run seed -- --url http://localhost:8080/fhir [--token BEARER]   (without --token: MONGODB_URI/MONGODB_DB give access)
 */
import { parseArgs } from 'node:util';
import { importFiles } from '../src/bulk/import-files.js';
import { scriptAuthorization } from './lib/script-auth.js';

const { values } = parseArgs({ options: { url: { type: 'string', default: 'http://localhost:8080/fhir' }, token: { type: 'string' } } });
const baseUrl = values.url!.replace(/\/+$/, '');
const auth = await scriptAuthorization(baseUrl, values.token);
const summary = await importFiles({
  baseUrl,
  paths: [new URL('../resources/sample-data/medivoy-sample.json', import.meta.url).pathname],
  headers: auth.headers,
});
await auth.close();
for (const f of summary.failures) console.error(`FAILED ${f.file}: ${f.reason}`);
console.log(`seeded ${summary.resources} resources in ${summary.seconds.toFixed(1)} s`);
process.exit(summary.failures.length ? 1 : 0);
