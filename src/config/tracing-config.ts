/**
 * Whether OpenTelemetry tracing is on. Read before the server's configuration is loaded (instrumentations must
 * be registered before the modules they patch), and only from the standard `OTEL_*` variables, which the SDK
 * itself reads for everything else (exporter, endpoint, protocol, service name, sampling). Off by default:
 * on when an exporter or an OTLP endpoint is named, unless `OTEL_SDK_DISABLED=true`.
 */
export function tracingEnabled(env: Record<string, string | undefined> = process.env): boolean {
  if (env.OTEL_SDK_DISABLED === 'true') return false;
  const exporter = env.OTEL_TRACES_EXPORTER;
  if (exporter) return exporter.split(',').some((e) => e.trim() && e.trim() !== 'none');
  return !!(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}
