import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';

export interface ImportOptions {
  /** FHIR base URL of the target server, e.g. http://localhost:8080/fhir. */
  baseUrl: string;
  /** Files or folders of `.json` Bundles and `.ndjson` resource files. */
  paths: string[];
  /** Files posted at once. */
  concurrency?: number;
  /** Resources per batch Bundle when loading NDJSON. */
  ndjsonBatchSize?: number;
  /** Extra request headers (e.g. Authorization); a function is asked before each request (tokens expire). */
  headers?: Record<string, string> | (() => Promise<Record<string, string>>);
  onProgress?: (p: { filesDone: number; files: number; resources: number; failures: number }) => void;
}

export interface ImportFailure {
  file: string;
  reason: string;
}

export interface ImportSummary {
  files: number;
  resources: number;
  failures: ImportFailure[];
  seconds: number;
  resourcesPerSecond: number;
}

/**
 * Loads FHIR data over the REST API: Bundles (batch or transaction) are posted as they are, NDJSON files
 * become batches of `PUT Type/id` so that the resources keep the ids their references use. Batch Bundles
 * go first (Synthea's hospital and practitioner batches must exist before patient bundles refer to them
 * conditionally). A failed file is recorded with its reason and does not stop the others.
 */
export async function importFiles(opts: ImportOptions): Promise<ImportSummary> {
  const started = Date.now();
  const files = await listFiles(opts.paths);
  const ordered = await orderBatchesFirst(files);
  const failures: ImportFailure[] = [];
  let resources = 0;
  let filesDone = 0;
  const report = () => opts.onProgress?.({ filesDone, files: ordered.length, resources, failures: failures.length });

  // Batches run one after another and before everything else; the rest share `concurrency` workers.
  const post = async (file: string) => {
    try {
      const n = await importFile(file, opts); // read `resources` only after the await: workers interleave
      resources += n;
    } catch (err) {
      failures.push({ file, reason: err instanceof Error ? err.message : String(err) });
    }
    filesDone++;
    report();
  };
  const batches = ordered.filter((f) => f.batch).map((f) => f.path);
  const rest = ordered.filter((f) => !f.batch).map((f) => f.path);
  for (const f of batches) await post(f);
  let next = 0;
  const workers = Array.from({ length: Math.max(1, opts.concurrency ?? 4) }, async () => {
    while (next < rest.length) await post(rest[next++]!);
  });
  await Promise.all(workers);
  const seconds = (Date.now() - started) / 1000;
  return { files: ordered.length, resources, failures, seconds, resourcesPerSecond: resources / Math.max(seconds, 0.001) };
}

async function listFiles(paths: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const p of paths) {
    if ((await stat(p)).isDirectory()) {
      for (const name of (await readdir(p)).sort()) if (['.json', '.ndjson'].includes(extname(name))) out.push(join(p, name));
    } else out.push(p);
  }
  return out;
}

async function orderBatchesFirst(files: string[]): Promise<{ path: string; batch: boolean }[]> {
  const tagged = await Promise.all(
    files.map(async (path) => {
      if (extname(path) === '.ndjson') return { path, batch: false };
      // Reading the head is enough to find `"type"` in Synthea and most exporters' output.
      const head = (await readFile(path, 'utf8')).slice(0, 4096);
      return { path, batch: /"type"\s*:\s*"batch"/.test(head) };
    }),
  );
  return [...tagged.filter((t) => t.batch), ...tagged.filter((t) => !t.batch)];
}

async function importFile(file: string, opts: ImportOptions): Promise<number> {
  const text = await readFile(file, 'utf8');
  if (extname(file) === '.ndjson') return importNdjson(text, opts);
  let bundle: { resourceType?: string; type?: string; entry?: unknown[] };
  try {
    bundle = JSON.parse(text);
  } catch {
    throw new Error('not valid JSON');
  }
  if (bundle.resourceType !== 'Bundle' || (bundle.type !== 'transaction' && bundle.type !== 'batch')) throw new Error('not a batch or transaction Bundle');
  await postBundle(bundle, opts);
  return bundle.entry?.length ?? 0;
}

async function importNdjson(text: string, opts: ImportOptions): Promise<number> {
  const lines = text.split('\n').filter((l) => l.trim());
  const size = opts.ndjsonBatchSize ?? 500;
  for (let i = 0; i < lines.length; i += size) {
    const entry = lines.slice(i, i + size).map((line, j) => {
      const r = ndjsonResource(line, i + j + 1);
      return { resource: r, request: { method: 'PUT', url: `${r.resourceType}/${r.id}` } };
    });
    await postBundle({ resourceType: 'Bundle', type: 'batch', entry }, opts);
  }
  return lines.length;
}

/**
 * One NDJSON line as a resource to store under its own id (so references between files hold); throws a
 * message naming the line otherwise. The server-side `$import` (bulk/import-task.ts) reads lines with it too.
 */
export function ndjsonResource(line: string, lineNo: number): { resourceType: string; id: string } & Record<string, unknown> {
  let r: unknown;
  try {
    r = JSON.parse(line);
  } catch {
    throw new Error(`line ${lineNo}: not valid JSON`);
  }
  if (!r || typeof r !== 'object' || Array.isArray(r) || typeof (r as { resourceType?: unknown }).resourceType !== 'string') throw new Error(`line ${lineNo}: not a FHIR resource`);
  const res = r as { resourceType: string; id?: unknown };
  if (typeof res.id !== 'string' || !res.id) throw new Error(`line ${lineNo}: NDJSON resources need an id`);
  return res as { resourceType: string; id: string } & Record<string, unknown>;
}

async function postBundle(bundle: { resourceType?: string; type?: string; entry?: unknown[] }, opts: ImportOptions): Promise<void> {
  const res = await fetch(opts.baseUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/fhir+json', prefer: 'return=minimal', ...(typeof opts.headers === 'function' ? await opts.headers() : opts.headers) },
    body: JSON.stringify(bundle),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`HTTP ${res.status}: ${outcomeText(text)}`);
  if (bundle.type === 'batch') {
    const failed = (JSON.parse(text).entry ?? []).filter((e: { response?: { status?: string } }) => !/^2/.test(e.response?.status ?? ''));
    if (failed.length) throw new Error(`${failed.length} batch entries failed, first: ${failed[0].response?.status} ${outcomeText(JSON.stringify(failed[0].response?.outcome ?? {}))}`);
  }
}

function outcomeText(text: string): string {
  try {
    const o = JSON.parse(text) as { issue?: { details?: { text?: string }; diagnostics?: string }[] };
    return (o.issue ?? []).map((i) => [i.details?.text, i.diagnostics].filter(Boolean).join(' — ')).join('; ') || text.slice(0, 300);
  } catch {
    return text.slice(0, 300);
  }
}
