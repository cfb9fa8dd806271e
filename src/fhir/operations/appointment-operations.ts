import type { Appointment, Bundle, Parameters, Slot } from '@medplum/fhirtypes';
import { errors } from '../outcomes.js';
import type { FhirRequest, Handler, HandlerContext } from '../rest/types.js';
import type { BookingService, Caller } from '../../scheduling/booking.js';

/**
 * Scheduling operations on Appointment (the Argonaut/HL7 pattern): `$find` proposes free slots as
 * Appointments, `$hold` reserves one for a few minutes, `$book` takes it; lifecycle steps `$confirm`,
 * `$arrive`, `$complete`, `$cancel`, `$noshow`, `$reschedule`. Inputs as a Parameters body or query.
 */
function params(req: FhirRequest): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of req.query) out.set(k, v);
  const body = req.body as Parameters | undefined;
  if (body && typeof body === 'object' && !(body instanceof URLSearchParams)) {
    if (body.resourceType !== 'Parameters') throw errors.badRequest('The body must be a Parameters resource');
    // The dispatcher has checked the shape (a list, names, at most one value, each of its JSON type).
    for (const [i, p] of (body.parameter ?? []).entries()) {
      const v = p.valueString ?? p.valueReference?.reference ?? p.valueCode ?? p.valueDateTime ?? p.valueInstant ?? p.valueUri;
      if (typeof v !== 'string') throw errors.badRequest(`Parameters.parameter[${i}] (${p.name}) needs a string, code, date, uri or Reference value`);
      out.set(p.name!, v);
    }
  }
  return out;
}

function caller(ctx: HandlerContext): { booking: BookingService; who: Caller } {
  if (!ctx.booking || !ctx.access) throw errors.unavailable('Scheduling is not available');
  return { booking: ctx.booking, who: { repo: ctx.repo, access: ctx.access } };
}

const ok = (a: Appointment, status = 200) => ({ status, body: a });

export const holdOperation: Handler = async (req, ctx) => {
  const p = params(req);
  const { booking, who } = caller(ctx);
  if (!p.get('slot')) throw errors.badRequest('$hold needs a slot parameter (Slot/id)');
  return ok(await booking.hold(who, p.get('slot')!, p.get('patient')), 201);
};

export const bookOperation: Handler = async (req, ctx, { id }) => {
  const p = params(req);
  const { booking, who } = caller(ctx);
  const appointment = id ? `Appointment/${id}` : p.get('appointment');
  return ok(await booking.book(who, { slot: p.get('slot'), appointment, patient: p.get('patient'), description: p.get('description') }), appointment ? 200 : 201);
};

const step = (action: 'confirm' | 'arrive' | 'complete' | 'cancel' | 'noshow'): Handler => async (req, ctx, { id }) => {
  const p = params(req);
  const { booking, who } = caller(ctx);
  return ok(await booking.transition(who, `Appointment/${id}`, action, p.get('reason')));
};
export const confirmOperation = step('confirm');
export const arriveOperation = step('arrive');
export const completeOperation = step('complete');
export const cancelOperation = step('cancel');
export const noshowOperation = step('noshow');

export const rescheduleOperation: Handler = async (req, ctx, { id }) => {
  const p = params(req);
  const { booking, who } = caller(ctx);
  if (!p.get('slot')) throw errors.badRequest('$reschedule needs a slot parameter (the new Slot/id)');
  return ok(await booking.reschedule(who, `Appointment/${id}`, p.get('slot')!));
};

/**
 * `$find`: free slots as proposed Appointments, by practitioner (Practitioner or PractitionerRole),
 * specialty, organization and time window (start, end), through ordinary search so the caller's scopes apply.
 */
export const findOperation: Handler = async (req, ctx) => {
  const p = params(req);
  const { who } = caller(ctx);
  const start = p.get('start') ?? new Date().toISOString();
  const end = p.get('end');
  const query: [string, string][] = [['status', 'free'], ['start', `ge${start}`], ['_sort', 'start'], ['_count', p.get('_count') ?? '20']];
  if (end) query.push(['start', `lt${end}`]);
  // Only what can be booked: a Schedule not switched off, of a PractitionerRole that is active (generated
  // Schedules also carry the role's verification in their `active`).
  query.push(['schedule.active:not', 'false'], ['schedule.actor:PractitionerRole.active', 'true']);
  const practitioner = p.get('practitioner');
  if (practitioner?.startsWith('PractitionerRole/')) query.push(['schedule.actor', practitioner]);
  else if (practitioner) query.push(['schedule.actor:PractitionerRole.practitioner', practitioner.includes('/') ? practitioner : `Practitioner/${practitioner}`]);
  if (p.get('specialty')) query.push(['schedule.actor:PractitionerRole.specialty', p.get('specialty')!]);
  if (p.get('organization')) query.push(['schedule.actor:PractitionerRole.organization', p.get('organization')!]);
  const result = await who.repo.search({ types: ['Slot'], params: query, baseUrl: req.baseUrl, strict: true });
  const bundle: Bundle = {
    resourceType: 'Bundle',
    type: 'searchset',
    entry: result.matches.map((d) => {
      const slot = JSON.parse(d.json!) as Slot;
      const proposed: Appointment = { resourceType: 'Appointment', status: 'proposed', slot: [{ reference: `Slot/${slot.id}` }], start: slot.start, end: slot.end, participant: [{ actor: { reference: slot.schedule.reference }, status: 'needs-action' }] };
      return { resource: proposed, search: { mode: 'match' } };
    }),
  };
  return { status: 200, body: bundle };
};
