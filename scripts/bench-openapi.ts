/**
 * How long generating the OpenAPI document takes and how big it is (whole and per part), as /openapi.json
 * builds it once per process: `npx tsx scripts/bench-openapi.ts [runs]`. Prints numbers; asserts nothing.
 */
import { gzipSync } from 'node:zlib';
import { runtimeCapabilityStatement } from '../src/fhir/capability.js';
import { loadDefinitions } from '../src/fhir/definitions.js';
import { declaredOperations } from '../src/business-operations.js';
import { smartConfiguration } from '../src/auth/smart-configuration.js';
import { patientCompartment } from '../src/fhir/search/compartment.js';
import { buildOpenApiDocument } from '../src/api-docs/openapi-document.js';
import { documentPart, partNames } from '../src/api-docs/document-parts.js';

const runs = Number(process.argv[2] ?? 20);
loadDefinitions();
const sources = {
  capability: runtimeCapabilityStatement({ baseUrl: 'http://localhost:3000/fhir', version: 'bench', startedAt: new Date(), issuer: 'http://localhost:3000/auth' }),
  operations: declaredOperations(),
  smart: smartConfiguration('http://localhost:3000/auth'),
  compartmentTypes: [...patientCompartment().keys()],
};
const ms: number[] = [];
let json = '';
for (let i = 0; i < runs; i++) {
  const t = performance.now();
  json = JSON.stringify(buildOpenApiDocument(sources));
  ms.push(performance.now() - t);
}
const doc = JSON.parse(json);
const sorted = [...ms].sort((a, b) => a - b);
const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!.toFixed(1);
console.log(`build + serialize: first ${ms[0]!.toFixed(1)} ms, p50 ${pct(0.5)} ms, p95 ${pct(0.95)} ms over ${runs} runs`);
const ops = Object.values(doc.paths).reduce((n: number, item: any) => n + Object.keys(item).filter((k) => k !== 'parameters').length, 0);
console.log(`document: ${Object.keys(doc.paths).length} paths, ${ops} operations, ${(json.length / 1e6).toFixed(2)} MB, ${(gzipSync(json).length / 1e3).toFixed(0)} kB gzipped`);
const t = performance.now();
const sizes = partNames(doc).map((name) => [name, JSON.stringify(documentPart(doc, name)).length] as const);
console.log(`${sizes.length} parts in ${(performance.now() - t).toFixed(0)} ms; Patient ${(sizes.find(([n]) => n === 'Patient')![1] / 1e3).toFixed(0)} kB, largest ${sizes.reduce((a, b) => (b[1] > a[1] ? b : a))[0]} ${(Math.max(...sizes.map(([, s]) => s)) / 1e3).toFixed(0)} kB`);
