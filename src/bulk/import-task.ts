import { createReadStream } from 'node:fs';
import { realpath } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { sep } from 'node:path';
import type { OperationOutcome, Resource } from '@medplum/fhirtypes';
import { errors, isOperationOutcomeError, issue } from '../fhir/outcomes.js';
import { isResourceType } from '../fhir/definitions.js';
import { paramValues, primitiveValue, type OperationContext, type OperationInput } from '../fhir/operations/registry.js';
import type { FhirRepository } from '../fhir/storage/repository.js';
import { checkAsyncHeaders, OUTPUT_FORMATS } from './export-request.js';
import { ndjsonResource } from './import-files.js';
import type { BulkConfig, BulkData } from './service.js';
import { Stopped, type BulkJobDoc, type BulkTaskDoc, type OutputFile } from './store.js';

const CHECKPOINT_EVERY = 200;
const WRITERS = 8;
const lineOf = (o: OperationOutcome) => Number(/ line (\d+):/.exec(o.issue?.[0]?.diagnostics ?? '')?.[1] ?? 0);

export interface ImportPlan {
  inputs: { type: string; url: string }[];
  notes: OperationOutcome[];
}

/**
 * `$import` kick-off (the Bulk Data import manifest form): a Parameters with `input` parts of `type` and
 * `url`. URLs are `file:` URLs under BULK_IMPORT_DIR or http(s) URLs of the allowed origins; each is
 * checked now, so a bad manifest is a 400 and not a failed job.
 */
export async function planImport(input: OperationInput, ctx: OperationContext, config: BulkConfig): Promise<ImportPlan> {
  const { lenient } = checkAsyncHeaders(input.headers);
  const access = ctx.access;
  if (!access) throw errors.unauthorized('A bulk import needs an access token');
  if (input.method !== 'POST') throw errors.badRequest('$import takes a Parameters body (POST)');
  const notes: OperationOutcome[] = [];
  const format = paramValues(input, 'inputFormat').at(-1);
  if (format && !OUTPUT_FORMATS.includes(format)) throw errors.badRequest(`inputFormat '${format}' is not supported; use application/fhir+ndjson`);
  for (const p of new Set((input.parameters.parameter ?? []).map((x) => x.name ?? ''))) {
    if (!['input', 'inputFormat', 'inputSource', 'storageDetail', 'mode'].includes(p)) {
      if (!lenient) throw errors.notSupported(`The import parameter '${p}' is not supported`);
      notes.push({ resourceType: 'OperationOutcome', issue: [issue('warning', 'not-supported', `The import parameter '${p}' was ignored (Prefer: handling=lenient)`)] });
    }
  }
  const inputs: ImportPlan['inputs'] = [];
  for (const p of (input.parameters.parameter ?? []).filter((x) => x.name === 'input')) {
    const part = (name: string) => { const q = p.part?.find((x) => x.name === name); return q ? primitiveValue(q) : undefined; };
    const type = part('type');
    const url = part('url');
    if (!type || !isResourceType(type)) throw errors.badRequest(`Each input needs a resource type, not '${type ?? ''}'`);
    if (!url) throw errors.badRequest(`The input of ${type} needs a url`);
    await checkUrl(url, config);
    const canWrite = access.scopes.some((s) => (s.type === '*' || s.type === type) && s.permissions.has('c') && s.permissions.has('u'));
    if (!canWrite) throw errors.forbidden(`The access token's scopes do not allow to create and update ${type}`);
    inputs.push({ type, url });
  }
  if (!inputs.length) throw errors.badRequest('$import needs at least one input (parts type and url)');
  return { inputs, notes };
}

async function checkUrl(url: string, config: BulkConfig): Promise<string> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw errors.badRequest(`'${url}' is not a URL`);
  }
  if (u.protocol === 'file:') {
    if (!config.importDir) throw errors.badRequest('This server imports no file: URLs (BULK_IMPORT_DIR is not set)');
    const root = await realpath(config.importDir);
    const path = await realpath(fileURLToPath(u)).catch(() => undefined);
    if (!path || !path.startsWith(root + sep)) throw errors.badRequest(`${url} is not a file under the import directory`);
    return path;
  }
  if (u.protocol === 'http:' || u.protocol === 'https:') {
    if (!config.importOrigins.includes(u.origin)) throw errors.badRequest(`This server does not fetch imports from ${u.origin}`);
    return url;
  }
  throw errors.badRequest(`Import URLs are file:, http: or https:, not ${u.protocol}`);
}

async function openLines(url: string, config: BulkConfig): Promise<{ lines: AsyncIterable<string>; close: () => void }> {
  const where = await checkUrl(url, config);
  let stream: Readable;
  if (where === url) {
    const res = await fetch(url);
    if (!res.ok || !res.body) throw errors.badRequest(`Fetching ${url} answered ${res.status}`);
    stream = Readable.fromWeb(res.body as never);
  } else stream = createReadStream(where);
  const rl = createInterface({ input: stream, crlfDelay: Infinity });
  return { lines: rl, close: () => { rl.close(); stream.destroy(); } };
}

const lineOutcome = (task: BulkTaskDoc, lineNo: number, err: unknown): OperationOutcome => {
  const where = `${task.url} line ${lineNo}`;
  if (isOperationOutcomeError(err)) return { ...err.outcome, issue: (err.outcome.issue ?? []).map((i) => ({ ...i, diagnostics: `${where}: ${i.diagnostics ?? i.details?.text ?? ''}` })) };
  const text = `${where}: ${(err as Error).message.replace(/^line \d+: /, '')}`;
  return { resourceType: 'OperationOutcome', issue: [{ ...issue('error', 'invalid', text), diagnostics: text }] };
};

/**
 * Imports the lines of one input from its checkpoint on, each resource on its own (a failed line is an
 * OperationOutcome in the error file, nothing of it stored), checkpointing every few hundred lines.
 */
export async function runImportSlice(bulk: BulkData, job: BulkJobDoc, task: BulkTaskDoc, repo: FhirRepository, more: () => boolean): Promise<boolean> {
  const config = bulk.deps.config;
  if (task.total === undefined) {
    const counting = await openLines(task.url!, config);
    let total = 0;
    for await (const l of counting.lines) if (l.trim()) total++;
    counting.close();
    task.total = total;
    await bulk.store.tasks.updateOne({ _id: task._id }, { $set: { total } });
  }
  const input = await openLines(task.url!, config);
  let lineNo = 0;
  let pending: OperationOutcome[] = [];
  let written = task.written;
  let failed = task.failed;
  const checkpoint = async (done: boolean) => {
    const set: Partial<BulkTaskDoc> = { line: lineNo, written, failed, done };
    if (pending.length) {
      const file: OutputFile = { name: `${job._id}/errors-${task.n}-${task.part}.ndjson`, type: 'OperationOutcome', count: pending.length };
      await bulk.files.write(file.name, Buffer.from(`${pending.map((o) => JSON.stringify(o)).join('\n')}\n`));
      if (!(await bulk.store.jobs.findOne({ _id: job._id }, { projection: { _id: 1 } }))) {
        await bulk.files.remove(file.name);
        throw new Stopped();
      }
      Object.assign(set, { part: task.part + 1, errorFiles: [...task.errorFiles, file] });
      pending = [];
    }
    await bulk.store.tasks.updateOne({ _id: task._id }, { $set: set });
    Object.assign(task, set);
  };
  // Lines are stored WRITERS at a time; lines with the same id keep their order (each waits for the one before).
  let batch: Promise<void>[] = [];
  const last = new Map<string, Promise<void>>();
  const store = async (raw: string, n: number) => {
    try {
      const r = ndjsonResource(raw, n);
      if (r.resourceType !== task.type) throw new Error(`a ${r.resourceType} in the input of ${task.type}`);
      const key = r.id;
      const prev = last.get(key);
      const mine = (async () => {
        await prev;
        await repo.update(r as unknown as Resource, { bulk: true }); // not into the resource cache
      })();
      last.set(key, mine.catch(() => undefined));
      await mine;
      written++;
    } catch (err) {
      if (isOperationOutcomeError(err) && err.status >= 500) throw err;
      failed++;
      pending.push(lineOutcome(task, n, err));
    }
  };
  const drain = async () => {
    const results = await Promise.allSettled(batch);
    batch = [];
    last.clear();
    const failure = results.find((x): x is PromiseRejectedResult => x.status === 'rejected');
    if (failure) throw failure.reason; // a server failure: the checkpoint stays before this batch, which is re-run
    pending.sort((a, b) => lineOf(a) - lineOf(b));
  };
  try {
    for await (const raw of input.lines) {
      lineNo++;
      if (lineNo <= task.line) continue;
      if (raw.trim()) {
        batch.push(store(raw, lineNo));
        if (batch.length % WRITERS === 0) await Promise.allSettled(batch.slice(-WRITERS));
      }
      if (lineNo % CHECKPOINT_EVERY === 0) {
        await drain();
        await checkpoint(false);
        if (!more()) return false;
      }
    }
    await drain();
    await checkpoint(true);
    return true;
  } finally {
    input.close();
  }
}
