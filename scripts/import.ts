/**
 * Loads folders of FHIR Bundles or NDJSON files into a running Medivoy server.
 *   npm run import -- --url http://localhost:8080/fhir --concurrency 4 ../shared/data/synthea-uscore
 */
import { parseArgs } from 'node:util';
import { importFiles } from '../src/bulk/import-files.js';
import { progressBar } from './lib/progress.js';
import { scriptAuthorization } from './lib/script-auth.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { url: { type: 'string', default: 'http://localhost:8080/fhir' }, concurrency: { type: 'string', default: '4' }, token: { type: 'string' } },
});
if (!positionals.length) {
  console.error('usage: npm run import -- [--url FHIR_BASE] [--concurrency N] [--token BEARER] PATH...');
  process.exit(2);
}
let bar: ReturnType<typeof progressBar> | undefined;
const baseUrl = values.url!.replace(/\/+$/, '');
const auth = await scriptAuthorization(baseUrl, values.token);
const summary = await importFiles({
  baseUrl,
  paths: positionals,
  concurrency: Number(values.concurrency),
  headers: auth.headers,
  onProgress: (p) => {
    bar ??= progressBar('import', p.files);
    bar.update(p.filesDone, `${p.resources} resources, ${p.failures} failed`);
  },
});
bar?.done();
await auth.close();
console.log(`files: ${summary.files}  resources: ${summary.resources}  seconds: ${summary.seconds.toFixed(1)}  resources/s: ${summary.resourcesPerSecond.toFixed(1)}  failures: ${summary.failures.length}`);
for (const f of summary.failures) console.log(`  FAILED ${f.file}: ${f.reason}`);
process.exit(summary.failures.length ? 1 : 0);
