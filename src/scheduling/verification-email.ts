import { escapeHtml, type RenderedEmail } from '../notifications/templates.js';

/**
 * The e-mail telling a practitioner the result of their role's verification (kept here rather than in
 * notifications/templates.ts, which another module owns; same layout conventions, every value escaped).
 */
export function verificationResultEmail(data: { name?: string; approved: boolean; organization?: string; specialty?: string; reason?: string }): RenderedEmail {
  const what = [data.specialty, data.organization ? `at ${data.organization}` : undefined].filter(Boolean).join(' ') || 'your practitioner role';
  const subject = data.approved ? 'Medivoy: your practitioner profile was approved' : 'Medivoy: your practitioner profile was not approved';
  const lines = [
    data.name ? `Hello ${data.name},` : 'Hello,',
    data.approved
      ? `your role ${what} has been verified. Patients can now find and book your available slots.`
      : `your role ${what} could not be verified and stays unavailable for booking.`,
    ...(data.approved || !data.reason ? [] : [`Reason given: ${data.reason}`]),
    data.approved ? 'You can change your availability at any time.' : 'You may correct your profile and submit it again.',
  ];
  const html = [
    '<!doctype html>',
    `<html><head><meta charset="utf-8"><title>${escapeHtml(subject)}</title></head>`,
    '<body style="font-family:Arial,Helvetica,sans-serif;line-height:1.5;color:#1f2933">',
    ...lines.map((l) => `<p>${escapeHtml(l)}</p>`),
    '<p style="color:#7b8794;font-size:12px">Medivoy &middot; this message was sent automatically; please do not reply.</p>',
    '</body></html>',
  ].join('\n');
  return { subject, text: lines.join('\n\n'), html };
}
