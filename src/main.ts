import { readFileSync } from 'node:fs';
import { nodeVersionProblem } from './node-version.js';

/**
 * Entry point. Checks the Node.js version before anything else is loaded: ES modules evaluate their static
 * imports before their own code, and the server's dependencies (oidc-provider 9, @medplum/core 5) fail on an
 * older Node with errors that do not say why (`ReferenceError: WebSocket is not defined`). So this file imports
 * only Node's own modules and loads the server with a dynamic import once the version is right.
 */
const engines = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { engines?: { node?: string } }).engines?.node ?? '>=22.18.0';
const problem = nodeVersionProblem(process.versions.node, engines);
if (problem) {
  console.error(problem);
  process.exit(1);
}
// Tracing, when the OTEL_* variables ask for it, must be set up before the server's modules load.
const { tracingEnabled } = await import('./config/tracing-config.js');
if (tracingEnabled()) await import('./infra/tracing.js');
await import('./serve.js');
