import type { Appointment, Bundle, Slot } from '@medplum/fhirtypes';
import { errors } from '../fhir/outcomes.js';
import type { BusinessOperation, OperationContext, OperationInput, OperationParameterSpec } from '../fhir/operations/registry.js';
import type { BookingService, Caller } from './booking.js';

/** A string-like input value (string, code, date, uri or Reference), or a 400 naming the parameter. */
function params(input: OperationInput): Map<string, string> {
  const out = new Map<string, string>();
  // The dispatcher has checked the shape (a list, names, at most one value, each of its JSON type).
  for (const [i, p] of (input.parameters.parameter ?? []).entries()) {
    const v = p.valueString ?? p.valueReference?.reference ?? p.valueCode ?? p.valueDateTime ?? p.valueInstant ?? p.valueUri;
    if (typeof v !== 'string') throw errors.badRequest(`Parameters.parameter[${i}] (${p.name}) needs a string, code, date, uri or Reference value`);
    out.set(p.name!, v);
  }
  return out;
}

function caller(ctx: OperationContext): Caller {
  if (!ctx.access) throw errors.unauthorized('Scheduling operations need an access token');
  return { repo: ctx.repo, access: ctx.access };
}

const ok = (a: Appointment, status = 200) => ({ status, resource: a });
const ref = (name: string, documentation: string, min = 0): OperationParameterSpec => ({ name, use: 'in', min, max: '1', type: 'Reference', documentation });
const str = (name: string, documentation: string, type = 'string', min = 0): OperationParameterSpec => ({ name, use: 'in', min, max: '1', type, documentation });
const RETURN: OperationParameterSpec = { name: 'return', use: 'out', min: 1, max: '1', type: 'Appointment', documentation: 'The appointment as stored' };

/**
 * Scheduling operations on Appointment (the Argonaut/HL7 pattern): `$find` proposes free slots as
 * Appointments, `$hold` reserves one for a few minutes, `$book` takes it; lifecycle steps `$confirm`,
 * `$arrive`, `$complete`, `$cancel`, `$noshow`, `$reschedule`. Inputs as a Parameters body or query.
 */
export function appointmentOperations(deps: { booking: BookingService }): BusinessOperation[] {
  const step = (action: 'confirm' | 'arrive' | 'complete' | 'cancel' | 'noshow', description: string): BusinessOperation => ({
    name: action, levels: ['instance'], resourceTypes: ['Appointment'], methods: ['POST'], affectsState: true, description,
    parameters: [str('reason', 'Why (cancellation and no-show reasons are kept on the appointment)'), RETURN],
    handler: async (input, ctx) => ok(await deps.booking.transition(caller(ctx), `Appointment/${input.target.id}`, action, params(input).get('reason'))),
  });
  return [
    {
      name: 'find', levels: ['type'], resourceTypes: ['Appointment'], methods: ['GET', 'POST'], affectsState: false,
      description: 'Free slots that can be booked, as proposed Appointments, by practitioner, specialty, organization and time window.',
      parameters: [
        str('practitioner', 'Practitioner or PractitionerRole (Type/id)'), str('specialty', 'Specialty as a token (system|code)'),
        str('organization', 'Organization (Type/id)'), str('start', 'Earliest start (default now)', 'dateTime'), str('end', 'Latest start', 'dateTime'),
        { name: 'return', use: 'out', min: 1, max: '1', type: 'Bundle', documentation: 'A searchset of proposed Appointments' },
      ],
      handler: (input, ctx) => find(params(input), caller(ctx), ctx.baseUrl),
    },
    {
      name: 'hold', levels: ['type'], resourceTypes: ['Appointment'], methods: ['POST'], affectsState: true,
      description: 'Reserves a free slot for a few minutes as a proposed Appointment (booked by $book, or released when the hold lapses).',
      parameters: [ref('slot', 'The Slot to hold', 1), ref('patient', 'The patient (defaults to the signed-in patient)'), RETURN],
      handler: async (input, ctx) => {
        const p = params(input);
        if (!p.get('slot')) throw errors.badRequest('$hold needs a slot parameter (Slot/id)');
        return ok(await deps.booking.hold(caller(ctx), p.get('slot')!, p.get('patient')), 201);
      },
    },
    {
      name: 'book', levels: ['type', 'instance'], resourceTypes: ['Appointment'], methods: ['POST'], affectsState: true,
      description: 'Books a slot (or a held Appointment) for a patient; at most one active booking per slot.',
      parameters: [ref('slot', 'The Slot to book'), ref('appointment', 'A held Appointment to book'), ref('patient', 'The patient'), str('description', 'Reason for the visit'), RETURN],
      handler: async (input, ctx) => {
        const p = params(input);
        const appointment = input.target.id ? `Appointment/${input.target.id}` : p.get('appointment');
        const booked = await deps.booking.book(caller(ctx), { slot: p.get('slot'), appointment, patient: p.get('patient'), description: p.get('description') });
        return ok(booked, appointment ? 200 : 201);
      },
    },
    step('confirm', 'The practitioner (or the clinic) confirms a booked appointment.'),
    step('arrive', 'The patient has arrived: the appointment is under way and an Encounter is opened.'),
    step('complete', 'The visit is over: the appointment is fulfilled and its Encounter finished.'),
    step('cancel', 'Cancels an appointment (reason, who and when kept); the slot is freed.'),
    step('noshow', 'Marks that the patient did not come.'),
    {
      name: 'reschedule', levels: ['instance'], resourceTypes: ['Appointment'], methods: ['POST'], affectsState: true,
      description: 'Moves an appointment to another free slot in one step (the old slot is freed only if the new one is taken).',
      parameters: [ref('slot', 'The new Slot', 1), RETURN],
      handler: async (input, ctx) => {
        const p = params(input);
        if (!p.get('slot')) throw errors.badRequest('$reschedule needs a slot parameter (the new Slot/id)');
        return ok(await deps.booking.reschedule(caller(ctx), `Appointment/${input.target.id}`, p.get('slot')!));
      },
    },
  ];
}

/**
 * `$find`: free slots as proposed Appointments, by practitioner (Practitioner or PractitionerRole),
 * specialty, organization and time window (start, end), through ordinary search so the caller's scopes apply.
 */
async function find(p: Map<string, string>, who: Caller, baseUrl: string) {
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
  const result = await who.repo.search({ types: ['Slot'], params: query, baseUrl, strict: true });
  const bundle: Bundle = {
    resourceType: 'Bundle',
    type: 'searchset',
    entry: result.matches.map((d) => {
      const slot = JSON.parse(d.json!) as Slot;
      const proposed: Appointment = { resourceType: 'Appointment', status: 'proposed', slot: [{ reference: `Slot/${slot.id}` }], start: slot.start, end: slot.end, participant: [{ actor: { reference: slot.schedule.reference }, status: 'needs-action' }] };
      return { resource: proposed, search: { mode: 'match' } };
    }),
  };
  return { status: 200, resource: bundle };
}
