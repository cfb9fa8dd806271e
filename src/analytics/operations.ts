import type { Organization } from '@medplum/fhirtypes';
import { paramValue, type BusinessOperation, type OperationParameterSpec } from '../fhir/operations/registry.js';
import { parseResource } from '../fhir/storage/types.js';
import type { AnalyticsService } from './analytics-service.js';
import { toParameters } from './parameters.js';
import { checkAccess, isSystemAdministrator } from './scope.js';

export const PERIOD_PARAMETERS: OperationParameterSpec[] = [
  { name: 'start', use: 'in', min: 1, max: '1', type: 'date', documentation: 'First day of the period (YYYY-MM-DD), in the time zone' },
  { name: 'end', use: 'in', min: 1, max: '1', type: 'date', documentation: 'Last day of the period (included)' },
  { name: 'timezone', use: 'in', min: 0, max: '1', type: 'code', documentation: "IANA time zone of the days and hours; default the Organization's (timezone extension), else UTC" },
];

/**
 * `$analytics` at system level (system administrators) and on `Organization/[id]` (its hospital
 * administrators, or system administrators): the figures of the period as a Parameters resource.
 * `$analytics-context` tells the dashboard what the caller may look at.
 */
export function analyticsOperations(service: () => AnalyticsService): BusinessOperation[] {
  return [
    {
      name: 'analytics', levels: ['system', 'instance'], resourceTypes: ['Organization'], methods: ['GET', 'POST'], affectsState: false,
      description: 'Figures of a period (overview, appointments, revenue, practitioners) for one Organization or the whole system, as a Parameters resource.',
      parameters: [
        ...PERIOD_PARAMETERS,
        { name: 'return', use: 'out', min: 1, max: '1', type: 'Parameters', documentation: 'period (start, end, timezone, organization); overview (patients, verifiedPractitioners, activeOrganizations, appointments, revenue, activePatients, growth against the previous period of the same length); appointments (total, byStatus, daily zero-filled, completionRate, noShowRate, specialties, peakHours, averageConsultationMinutes); revenue (total, daily, bySpecialty, byOrganization, byPaymentMethod, paidAppointments, averagePerPaidAppointment; payments recorded as PaymentReconciliation); practitioners (slotUtilisation booked/available, roles, ratings)' },
      ],
      access: (access, target) => checkAccess(access, target.id),
      handler: async (input) => {
        const s = service();
        const scope = await s.scope(input.target.id, paramValue(input, 'timezone'));
        const { figures, cached } = await s.figures(scope, paramValue(input, 'start'), paramValue(input, 'end'));
        return { resource: toParameters(figures), headers: { 'x-analytics-cache': cached ? 'hit' : 'miss' } };
      },
    },
    {
      name: 'analytics-context', levels: ['system'], methods: ['GET'], affectsState: false,
      description: 'What the caller may see in the analytics dashboard: whether system-wide, and the Organizations (id, name, time zone).',
      parameters: [
        { name: 'return', use: 'out', min: 1, max: '1', type: 'Parameters', documentation: 'system (boolean) and one organization (reference, name, timezone) per Organization the caller may look at' },
      ],
      access: (access) => {
        if (!isSystemAdministrator(access) && access?.role !== 'hospital-admin') checkAccess(access, undefined);
      },
      handler: async (_input, ctx) => {
        const s = service();
        const system = isSystemAdministrator(ctx.access);
        const ids = system
          ? (await s.deps.system.findByCriteria('Organization', '', 1000)).map((v) => parseResource(v) as Organization).sort((a, b) => (a.name ?? '').localeCompare(b.name ?? ''))
          : [];
        if (!system && ctx.access?.organization) {
          const id = ctx.access.organization.split('/')[1]!;
          const scope = await s.scope(id, undefined).catch(() => undefined);
          if (scope) ids.push({ resourceType: 'Organization', id, name: scope.name, extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/timezone', valueCode: scope.timezone }] });
        }
        const orgs = ids.map((o) => ({
          reference: `Organization/${o.id}`, ...(o.name ? { name: o.name } : {}),
          timezone: o.extension?.find((e) => e.url === 'http://hl7.org/fhir/StructureDefinition/timezone')?.valueCode ?? 'UTC',
        }));
        return { resource: toParameters({ system, organization: orgs }) };
      },
    },
  ];
}
