import type { Parameters, PractitionerRole } from '@medplum/fhirtypes';
import type { BusinessOperation, OperationContext, OperationInput, OperationResult } from '../fhir/operations/registry.js';
import { errors } from '../fhir/outcomes.js';
import { parseResource } from '../fhir/storage/types.js';
import { generateSlots } from './generate-slots.js';
import { schedulingPorts } from './practitioner-writes.js';
import { administers, operationParams } from './role-administration.js';

const DAY_MS = 86_400_000;
const DEFAULT_HORIZON_DAYS = 28;
const MAX_HORIZON_DAYS = 366;

/**
 * `POST PractitionerRole/[id]/$generate-slots` (Parameters `start`, `end` instants, or `horizonDays` from now):
 * runs slot generation for one role now rather than at the next job run. Allowed to the role's practitioner and
 * its administrators. Slots and Schedules are derived data the server owns, so after this check they are
 * written with the server's repository (a practitioner may not write Slots directly).
 */
export const generateSlotsOperation: BusinessOperation = {
  name: 'generate-slots', levels: ['instance'], resourceTypes: ['PractitionerRole'], methods: ['POST'], affectsState: true,
  description: "Generates the role's Schedules and free Slots from its availability now (rather than at the next job run).",
  parameters: [
    { name: 'start', use: 'in', min: 0, max: '1', type: 'dateTime', documentation: 'From (default now)' },
    { name: 'end', use: 'in', min: 0, max: '1', type: 'dateTime', documentation: 'Until (default start + horizonDays)' },
    { name: 'horizonDays', use: 'in', min: 0, max: '1', type: 'integer', documentation: 'Days ahead when no end is given (default 28)' },
    { name: 'schedule', use: 'out', min: 0, max: '*', type: 'Reference' },
    { name: 'created', use: 'out', min: 1, max: '1', type: 'integer' },
    { name: 'removed', use: 'out', min: 1, max: '1', type: 'integer' },
    { name: 'unchanged', use: 'out', min: 1, max: '1', type: 'integer' },
  ],
  handler: (input, ctx) => generate(input, ctx),
};

async function generate(input: OperationInput, ctx: OperationContext): Promise<OperationResult> {
  const id = input.target.id;
  const role = parseResource(await ctx.repo.read('PractitionerRole', id!)) as PractitionerRole;
  const own = !!ctx.access?.fhirUser && ctx.access.fhirUser === role.practitioner?.reference;
  if (!own && !administers(ctx.access, role)) throw errors.forbidden('Only the practitioner of this role or its administrators may generate its slots');

  const p = operationParams(input);
  const now = Date.now();
  const from = p.get('start') ? instant(p.get('start')!, 'start') : now;
  const horizon = p.get('horizonDays') !== undefined ? Number(p.get('horizonDays')) : DEFAULT_HORIZON_DAYS;
  if (!Number.isInteger(horizon) || horizon < 1 || horizon > MAX_HORIZON_DAYS) throw errors.badRequest(`horizonDays must be a whole number from 1 to ${MAX_HORIZON_DAYS}`);
  const to = p.get('end') ? instant(p.get('end')!, 'end') : from + horizon * DAY_MS;
  if (!(to > from) || to - from > MAX_HORIZON_DAYS * DAY_MS) throw errors.badRequest(`end must be after start and at most ${MAX_HORIZON_DAYS} days later`);

  const r = await generateSlots(schedulingPorts(ctx.repo).system, `PractitionerRole/${id}`, new Date(from), new Date(to));
  const body: Parameters = {
    resourceType: 'Parameters',
    parameter: [
      ...r.schedules.map((s) => ({ name: 'schedule', valueReference: { reference: s } })),
      { name: 'created', valueInteger: r.created },
      { name: 'removed', valueInteger: r.removed },
      { name: 'unchanged', valueInteger: r.unchanged },
    ],
  };
  return { status: 200, resource: body };
}

function instant(v: string, name: string): number {
  const t = Date.parse(v);
  if (!/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$/.test(v) || Number.isNaN(t)) throw errors.badRequest(`${name} must be a date or an instant such as 2027-03-22T00:00:00Z, not '${v}'`);
  return t;
}
