import { randomUUID } from 'node:crypto';
import type { Binary, DocumentReference } from '@medplum/fhirtypes';
import type { Collection, Db } from 'mongodb';
import type { JobDefinition, JobQueue } from '../../jobs/job-queue.js';
import type { Logger } from '../../infra/logger.js';
import type { FhirRepository } from '../../fhir/storage/repository.js';
import type { AnalyticsService } from '../analytics-service.js';
import type { Figures } from '../metrics.js';
import type { AnalyticsScope } from '../scope.js';
import { renderCsv } from './csv.js';
import { renderPdf } from './pdf.js';
import { renderXlsx } from './xlsx.js';

export const REPORT_JOB = 'analytics-report';
export const REPORTS = 'analytics_reports';
/** meta.tag of the Binary and DocumentReference of a report (reads of them are confined, report-access.ts). */
export const REPORT_TAG = { system: 'https://medivoy.example/fhir/CodeSystem/analytics', code: 'analytics-report' } as const;

export const FORMATS = {
  csv: { contentType: 'text/csv', extension: 'csv', render: (f: Figures) => Promise.resolve(renderCsv(f)) },
  xlsx: { contentType: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet', extension: 'xlsx', render: (f: Figures, t: string) => renderXlsx(f, t) },
  pdf: { contentType: 'application/pdf', extension: 'pdf', render: (f: Figures, t: string) => renderPdf(f, t) },
} as const;
export type ReportFormat = keyof typeof FORMATS;

export interface ReportDoc {
  _id: string;
  /** Organization id, or undefined for the whole system. */
  org?: string;
  orgName?: string;
  timezone: string;
  start: string;
  end: string;
  format: ReportFormat;
  /** Who asked (account or client), for the log. */
  requester: string;
  status: 'queued' | 'running' | 'done' | 'failed';
  progress: number;
  step: string;
  createdAt: Date;
  updatedAt: Date;
  binary?: string;
  documentReference?: string;
  error?: string;
}

/**
 * Reports as durable jobs (jobs/job-runner.ts: each run claimed once across processes, re-run after a crash
 * once its claim has expired). A report's state lives in `analytics_reports`; each step writes its progress,
 * and the Binary and DocumentReference are written with ids fixed by the report (`analytics-report-<id>`),
 * so a re-run after a crash at any point overwrites instead of duplicating.
 */
export class AnalyticsReports {
  readonly col: Collection<ReportDoc>;

  constructor(private readonly deps: { db: Db; system: FhirRepository; analytics: () => AnalyticsService; jobs: () => JobQueue; logger: Logger; baseUrl: () => string }) {
    this.col = deps.db.collection<ReportDoc>(REPORTS);
  }

  async start(scope: AnalyticsScope, period: { start: string; end: string; timezone: string }, format: ReportFormat, requester: string): Promise<ReportDoc> {
    const now = new Date();
    const doc: ReportDoc = {
      _id: randomUUID(), ...(scope.org ? { org: scope.org } : {}), ...(scope.name ? { orgName: scope.name } : {}), timezone: period.timezone, start: period.start, end: period.end,
      format, requester, status: 'queued', progress: 0, step: 'queued', createdAt: now, updatedAt: now,
    };
    await this.col.insertOne(doc);
    await this.deps.jobs().scheduleUnique(REPORT_JOB, `analytics-report:${doc._id}`, now, { report: doc._id });
    return doc;
  }

  get(id: string): Promise<ReportDoc | null> {
    return this.col.findOne({ _id: id });
  }

  private async progress(id: string, set: Partial<ReportDoc>): Promise<void> {
    await this.col.updateOne({ _id: id }, { $set: { ...set, updatedAt: new Date() } });
  }

  job(): JobDefinition {
    return {
      name: REPORT_JOB, maxRetries: 3, retryDelayMs: 2_000,
      handler: async (data) => {
        const id = String(data.report);
        const doc = await this.get(id);
        if (!doc || doc.status === 'done') return;
        try {
          await this.run(doc);
        } catch (err) {
          await this.progress(id, { step: `failed: ${(err as Error).message}`, error: (err as Error).message });
          throw err;
        }
      },
    };
  }

  private async run(doc: ReportDoc): Promise<void> {
    const id = doc._id;
    await this.progress(id, { status: 'running', progress: 10, step: 'computing figures' });
    const analytics = this.deps.analytics();
    const scope = await analytics.scope(doc.org, doc.timezone);
    const { figures } = await analytics.figures(scope, doc.start, doc.end);
    const format = FORMATS[doc.format];
    const title = `Medivoy analytics: ${doc.orgName ?? (doc.org ? `Organization/${doc.org}` : 'all organizations')}`;
    await this.progress(id, { progress: 40, step: `rendering ${doc.format}` });
    const bytes = await format.render(figures, title);
    await this.progress(id, { progress: 80, step: 'storing' });
    const securityContext = doc.org ? { securityContext: { reference: `Organization/${doc.org}` } } : {};
    const fileName = `analytics-${doc.org ?? 'system'}-${doc.start}-${doc.end}.${format.extension}`;
    const binaryId = `analytics-report-${id}`;
    const binary: Binary = { resourceType: 'Binary', id: binaryId, meta: { tag: [REPORT_TAG] }, contentType: format.contentType, ...securityContext, data: bytes.toString('base64') };
    await this.deps.system.update(binary);
    const ref: DocumentReference = {
      resourceType: 'DocumentReference', id: binaryId, meta: { tag: [REPORT_TAG] }, status: 'current',
      type: { text: 'Analytics report' },
      description: `${title}, ${doc.start} to ${doc.end} (${doc.timezone})`,
      date: new Date().toISOString(),
      ...(doc.org ? { custodian: { reference: `Organization/${doc.org}` } } : {}),
      context: { period: { start: doc.start, end: doc.end } },
      content: [{ attachment: { contentType: format.contentType, url: `Binary/${binaryId}`, title: fileName, size: bytes.length, creation: new Date().toISOString() } }],
    };
    await this.deps.system.update(ref);
    await this.progress(id, { status: 'done', progress: 100, step: 'done', binary: `Binary/${binaryId}`, documentReference: `DocumentReference/${binaryId}` });
    this.deps.logger.info({ report: id, format: doc.format, bytes: bytes.length }, 'analytics report stored');
  }
}
