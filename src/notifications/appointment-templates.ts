/**
 * Appointment e-mails (booking confirmation, reminder, cancellation) and the short text of the in-app
 * Communication. Every value reaching the HTML is escaped: names and reasons are user input.
 */
import { escapeHtml, type RenderedEmail } from './templates.js';

const PRODUCT = 'Medivoy';

export interface AppointmentMailData {
  patientName?: string;
  practitionerName?: string;
  /** Appointment start (ISO instant). */
  start: string;
  /** IANA time zone to show the time in; UTC when the appointment's location does not say. */
  timeZone?: string;
  description?: string;
  /** Reminders: how long before the start, e.g. "2 hours". */
  lead?: string;
  /** Cancellations: the reason recorded on the Appointment. */
  reason?: string;
  /** Booking reference shown to the patient. */
  reference?: string;
}

export type AppointmentMailKind = 'booking-confirmation' | 'reminder' | 'cancellation';

/** The appointment time as people read it, with its zone named (a bare time would be ambiguous). */
export function formatWhen(start: string, timeZone = 'UTC'): string {
  const d = new Date(start);
  // dateStyle cannot be combined with timeZoneName, so the zone is appended as its IANA name.
  const fmt = (tz: string) => `${new Intl.DateTimeFormat('en-GB', { dateStyle: 'full', timeStyle: 'short', timeZone: tz }).format(d)} (${tz})`;
  try {
    return fmt(timeZone);
  } catch {
    return fmt('UTC'); // an unknown zone in the data must not stop the reminder
  }
}

function layout(title: string, paragraphs: string[]): string {
  return [
    '<!doctype html>',
    `<html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>`,
    '<body style="font-family:Arial,Helvetica,sans-serif;line-height:1.5;color:#1f2933">',
    ...paragraphs.map((p) => `<p>${escapeHtml(p)}</p>`),
    `<p style="color:#7b8794;font-size:12px">${PRODUCT} &middot; this message was sent automatically; please do not reply.</p>`,
    '</body></html>',
  ].join('\n');
}

/** The lines of a message: subject first, then paragraphs (plain text, escaped for HTML by `layout`). */
export function appointmentLines(kind: AppointmentMailKind, d: AppointmentMailData): { subject: string; lines: string[] } {
  const when = formatWhen(d.start, d.timeZone);
  const withWhom = d.practitionerName ? ` with ${d.practitionerName}` : '';
  const hello = d.patientName ? `Hello ${d.patientName},` : 'Hello,';
  const ref = d.reference ? [`Booking reference: ${d.reference}`] : [];
  const what = d.description ? [`Reason for the visit: ${d.description}`] : [];
  switch (kind) {
    case 'booking-confirmation':
      return { subject: `Your appointment on ${when} is booked`, lines: [hello, `your appointment${withWhom} on ${when} is booked.`, ...what, ...ref, 'If you cannot come, please cancel it in the app so that someone else can take the time.'] };
    case 'reminder':
      return { subject: `Reminder: appointment${withWhom} ${d.lead ? `in ${d.lead}` : `on ${when}`}`, lines: [hello, `this is a reminder of your appointment${withWhom} on ${when}.`, ...what, ...ref, 'If you cannot come, please cancel it in the app.'] };
    case 'cancellation':
      return { subject: `Your appointment on ${when} was cancelled`, lines: [hello, `your appointment${withWhom} on ${when} was cancelled.`, ...(d.reason ? [`Reason: ${d.reason}`] : []), ...ref, 'You can book a new appointment in the app.'] };
  }
}

export function appointmentEmail(kind: AppointmentMailKind, d: AppointmentMailData): RenderedEmail {
  const { subject, lines } = appointmentLines(kind, d);
  return { subject, text: lines.join('\n\n'), html: layout(subject, lines) };
}
