/**
 * /metrics in the Prometheus text format: protected on the main port (a token with the metrics scope, or a
 * system administrator's), open on METRICS_LISTEN; the figures move with what the server does.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { backendToken, clientAssertion, registerBackendClient, tokenRequest } from './support/auth.js';
import { authHeaders, http, startTestServer, type TestServer } from './support/server.js';

let srv: TestServer;
let metricsToken: string;
beforeAll(async () => {
  srv = await startTestServer({ METRICS_LISTEN: '127.0.0.1:0', AUTH_MAX_FAILURES: '2' });
  const client = await registerBackendClient(srv.running, 'metrics system/Patient.rs');
  metricsToken = (await backendToken(srv.running, client, 'metrics')).access_token;
});
afterAll(async () => {
  await srv?.close();
});

/** The value of one sample (0 when absent), e.g. sample(text, 'medivoy_http_requests_total', {interaction: 'read'}). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels);
  let total = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(?:\{(.*)\})? ([0-9.eE+-]+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (want.every(([k, v]) => got[k] === v)) total += Number(m[3]);
  }
  return total;
}

const scrape = async () => {
  const res = await http('GET', `${srv.url}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return res.text;
};

describe('/metrics', () => {
  it('needs a token with the metrics scope on the main port', async () => {
    const none = await http('GET', `${srv.url}/metrics`);
    expect(none.status).toBe(401);
    expect(none.body.resourceType).toBe('OperationOutcome');
    // The default test token has every system/ scope but not metrics.
    const other = await http('GET', `${srv.url}/metrics`, { headers: await authHeaders(srv.url) });
    expect(other.status).toBe(403);
    expect(await scrape()).toContain('# TYPE medivoy_http_requests_total counter');
  });

  it('counts and times requests by interaction, resource type and status', async () => {
    const created = await http('POST', `${srv.base}/Patient`, { body: { resourceType: 'Patient', name: [{ family: 'Metrics' }] } });
    const before = await scrape();
    for (let i = 0; i < 3; i++) expect((await http('GET', `${srv.base}/Patient/${created.body.id}`)).status).toBe(200);
    expect((await http('GET', `${srv.base}/Patient/does-not-exist`)).status).toBe(404);
    expect((await http('GET', `${srv.base}/Patient?name=Metrics`)).status).toBe(200);
    const after = await scrape();
    const delta = (labels: Record<string, string>) => sample(after, 'medivoy_http_requests_total', labels) - sample(before, 'medivoy_http_requests_total', labels);
    expect(delta({ interaction: 'read', resource_type: 'Patient', status: '200' })).toBe(3);
    expect(delta({ interaction: 'read', resource_type: 'Patient', status: '404' })).toBe(1);
    expect(delta({ interaction: 'search-type', resource_type: 'Patient', status: '200' })).toBe(1);
    expect(sample(after, 'medivoy_http_request_duration_seconds_count', { interaction: 'read', resource_type: 'Patient' })).toBeGreaterThanOrEqual(4);
    // Database round trips and their latency: the driver's commands, and on FerretDB with its PostgreSQL at
    // hand the SQL statements of searches and uncached reads (the 404 and the search above).
    const dbRoundTrips = (m: string) => ['find', 'sql'].reduce((n, command) => n + sample(m, 'medivoy_db_commands_total', { command, outcome: 'ok' }), 0);
    expect(dbRoundTrips(after)).toBeGreaterThan(dbRoundTrips(before));
    if (process.env.FERRETDB_POSTGRES_URL) expect(sample(after, 'medivoy_db_command_duration_seconds_count', { command: 'sql' })).toBeGreaterThan(0);
    expect(sample(after, 'medivoy_db_command_duration_seconds_count', { command: 'insert' })).toBeGreaterThan(0);
  });

  it('reports the job queue, sign-in throttling and SMART token issuance and refusals', async () => {
    const before = await scrape();
    // Job queue: gauges per job type, read from the job collection.
    expect(before).toMatch(/medivoy_jobs_due\{job="[a-z-]+"\} \d+/);
    expect(before).toMatch(/medivoy_jobs_oldest_due_age_seconds\{job="[a-z-]+"\} [0-9.]+/);
    // Two failed sign-ins lock the account (AUTH_MAX_FAILURES=2); the next attempt is refused.
    // Unique per run: the throttle's counters live in Redis, shared by test runs.
    const email = `metrics-${Date.now()}@example.org`;
    const ip = `10.${(Date.now() >> 16) & 255}.${(Date.now() >> 8) & 255}.${Date.now() & 255}`;
    const password = 'Blue-Harbor-72!';
    await srv.running.accounts.createAccount({ kind: 'practitioner', email, password, person: { givenName: 'M', familyName: 'User' } });
    for (let i = 0; i < 2; i++) await srv.running.accounts.authenticate(email, 'wrong-password', ip).catch(() => undefined);
    await expect(srv.running.accounts.authenticate(email, password, ip)).rejects.toMatchObject({ status: 429 });
    // A token issued, and one refused (a scope the client was not registered for).
    const client = await registerBackendClient(srv.running, 'system/Patient.rs');
    await backendToken(srv.running, client, 'system/Patient.rs');
    const tokenUrl = `${srv.running.auth.issuer}/token`;
    const refused = await tokenRequest(tokenUrl, {
      grant_type: 'client_credentials', scope: 'system/Patient.rs',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await clientAssertion(client, tokenUrl, { aud: 'https://elsewhere.example/token' }),
    });
    expect(refused.status).toBe(401); // invalid_client
    const after = await scrape();
    expect(sample(after, 'medivoy_login_throttled_total', { event: 'locked' }) - sample(before, 'medivoy_login_throttled_total', { event: 'locked' })).toBeGreaterThanOrEqual(1);
    expect(sample(after, 'medivoy_login_throttled_total', { event: 'refused' }) - sample(before, 'medivoy_login_throttled_total', { event: 'refused' })).toBe(1);
    expect(sample(after, 'medivoy_smart_tokens_issued_total', { grant_type: 'client_credentials' }) - sample(before, 'medivoy_smart_tokens_issued_total', { grant_type: 'client_credentials' })).toBe(1);
    expect(sample(after, 'medivoy_smart_token_refusals_total', { endpoint: 'token' }) - sample(before, 'medivoy_smart_token_refusals_total', { endpoint: 'token' })).toBe(1);
  });

  it('is served without a token on METRICS_LISTEN, and nothing else is', async () => {
    expect(srv.running.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const res = await fetch(`${srv.running.metricsUrl}/metrics`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('medivoy_process_cpu_seconds_total');
    expect((await fetch(`${srv.running.metricsUrl}/fhir/Patient`)).status).toBe(404);
  });
});
