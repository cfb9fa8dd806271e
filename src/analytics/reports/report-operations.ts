import type { DocumentReference } from '@medplum/fhirtypes';
import { errors, informational } from '../../fhir/outcomes.js';
import { paramValue, type BusinessOperation } from '../../fhir/operations/registry.js';
import { parseResource } from '../../fhir/storage/types.js';
import type { AnalyticsService } from '../analytics-service.js';
import { PERIOD_PARAMETERS } from '../operations.js';
import { checkAccess } from '../scope.js';
import { FORMATS, type AnalyticsReports, type ReportFormat } from './report-jobs.js';

/**
 * `$analytics-report` (system, or `Organization/[id]`): checks everything (access, Organization, period,
 * format) and starts a report job: 202 with `Content-Location` naming its status URL.
 * `$analytics-report-status?id=`: 202 with `X-Progress` while it runs, then 200 with the DocumentReference
 * (`download=true`: the Binary itself, read with the caller's token, so it needs a scope that reads Binary).
 */
export function reportOperations(deps: () => { analytics: AnalyticsService; reports: AnalyticsReports }): BusinessOperation[] {
  return [
    {
      name: 'analytics-report', levels: ['system', 'instance'], resourceTypes: ['Organization'], methods: ['POST', 'GET'], affectsState: true,
      description: 'Starts a report of the $analytics figures (CSV, XLSX or PDF with charts) as a background job; poll the status URL in Content-Location.',
      parameters: [
        ...PERIOD_PARAMETERS,
        { name: 'format', use: 'in', min: 1, max: '1', type: 'code', documentation: `${Object.keys(FORMATS).join(' | ')}` },
        { name: 'return', use: 'out', min: 0, max: '1', type: 'OperationOutcome', documentation: '202 Accepted; Content-Location: [base]/$analytics-report-status?id=…' },
      ],
      access: (access, target) => checkAccess(access, target.id),
      handler: async (input, ctx) => {
        const { analytics, reports } = deps();
        const scope = await analytics.scope(input.target.id, paramValue(input, 'timezone'));
        const period = analytics.period(scope, paramValue(input, 'start'), paramValue(input, 'end'));
        const format = paramValue(input, 'format');
        if (!format || !(format in FORMATS)) throw errors.badRequest(`format must be one of ${Object.keys(FORMATS).join(', ')}${format ? `, not ${JSON.stringify(format)}` : ''}`, ['format']);
        const doc = await reports.start(scope, period, format as ReportFormat, ctx.access?.accountId ?? ctx.access?.clientId ?? 'unknown');
        const status = `${ctx.baseUrl}/$analytics-report-status?id=${doc._id}`;
        return { status: 202, resource: informational(`Report ${doc._id} (${format}) started; poll ${status}`), headers: { 'content-location': status, 'x-progress': '0% queued' } };
      },
    },
    {
      name: 'analytics-report-status', levels: ['system'], methods: ['GET'], affectsState: false,
      description: 'Progress of an analytics report (202 with X-Progress), then its DocumentReference, or with download=true its Binary.',
      parameters: [
        { name: 'id', use: 'in', min: 1, max: '1', type: 'string', documentation: 'The report id from the kick-off' },
        { name: 'download', use: 'in', min: 0, max: '1', type: 'boolean', documentation: 'true: answer the Binary (the file, base64) instead of the DocumentReference' },
        { name: 'return', use: 'out', min: 0, max: '1', type: 'Resource', documentation: 'DocumentReference or Binary once done' },
      ],
      access: (access) => {
        if (!access) throw errors.unauthorized('An access token is needed');
      },
      handler: async (input, ctx): Promise<import('../../fhir/operations/registry.js').OperationResult> => {
        const { reports } = deps();
        const id = paramValue(input, 'id');
        if (!id) throw errors.badRequest('id is required', ['id']);
        const doc = await reports.get(id);
        if (!doc) throw errors.notFound(`There is no report ${id}`);
        checkAccess(ctx.access, doc.org);
        if (doc.status !== 'done') {
          if (doc.status === 'failed') throw errors.businessRule(`Report ${id} failed: ${doc.error ?? 'unknown error'}`);
          return { status: 202, resource: informational(`Report ${id}: ${doc.progress}% ${doc.step}`), headers: { 'x-progress': `${doc.progress}% ${doc.step}`, 'retry-after': '1' } };
        }
        const download = paramValue(input, 'download') === 'true';
        const system = deps().analytics.deps.system;
        const [type, rid] = (download ? doc.binary! : doc.documentReference!).split('/') as [string, string];
        // The file is read with the caller's token: their scopes must allow reading Binary.
        const v = await (download ? ctx.repo : system).read(type, rid);
        const res = parseResource(v);
        const headers: Record<string, string> = { 'x-progress': '100% done' };
        if (download) headers['content-disposition'] = `attachment; filename="${await docName(system, doc.documentReference!)}"`;
        return { status: 200, resource: res, headers };
      },
    },
  ];
}

async function docName(repo: import('../../fhir/storage/repository.js').FhirRepository, ref: string): Promise<string> {
  const [, id] = ref.split('/');
  const d = parseResource(await repo.read('DocumentReference', id!)) as DocumentReference;
  return d.content[0]?.attachment.title ?? 'report';
}
