import { register } from 'node:module';

/**
 * OpenTelemetry tracing (optional, see config/tracing-config.ts): HTTP, Koa and MongoDB spans exported as the
 * standard `OTEL_*` variables say. Loaded by main.ts before the server, because instrumentations patch modules
 * as they are imported; for ES modules that goes through import-in-the-middle's loader hook, registered first.
 */
register('@opentelemetry/instrumentation/hook.mjs', import.meta.url);

const { NodeSDK } = await import('@opentelemetry/sdk-node');
const { HttpInstrumentation } = await import('@opentelemetry/instrumentation-http');
const { KoaInstrumentation } = await import('@opentelemetry/instrumentation-koa');
const { MongoDBInstrumentation } = await import('@opentelemetry/instrumentation-mongodb');

const sdk = new NodeSDK({
  serviceName: process.env.OTEL_SERVICE_NAME ?? 'medivoy',
  instrumentations: [
    // Query strings and bodies may hold PHI: spans carry the route, not the URL's query.
    new HttpInstrumentation({ ignoreIncomingRequestHook: (req) => req.url === '/health' }),
    new KoaInstrumentation(),
    // Command documents hold PHI (search values, resource JSON): the MongoDB spans carry only the operation.
    new MongoDBInstrumentation({ enhancedDatabaseReporting: false }),
  ],
});
sdk.start();

/** Flushes the spans still buffered (called on shutdown). */
export function shutdownTracing(): Promise<void> {
  return sdk.shutdown();
}
