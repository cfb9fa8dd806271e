/**
 * Loads the product's sample data (resources/sample-data) into a running server; safe to re-run.
 *   npm run seed -- --url http://localhost:8080/fhir
 */
import { parseArgs } from 'node:util';
import { importFiles } from '../src/bulk/import-files.js';

const { values } = parseArgs({ options: { url: { type: 'string', default: 'http://localhost:8080/fhir' }, token: { type: 'string' } } });
const summary = await importFiles({
  baseUrl: values.url!.replace(/\/+$/, ''),
  paths: [new URL('../resources/sample-data/medivoy-sample.json', import.meta.url).pathname],
  headers: values.token ? { authorization: `Bearer ${values.token}` } : undefined,
});
for (const f of summary.failures) console.error(`FAILED ${f.file}: ${f.reason}`);
console.log(`seeded ${summary.resources} resources in ${summary.seconds.toFixed(1)} s`);
process.exit(summary.failures.length ? 1 : 0);
