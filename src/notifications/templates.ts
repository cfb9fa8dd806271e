/**
 * E-mail templates: plain functions from data to {subject, text, html}. Every value that reaches the HTML is
 * escaped, since names come from registration forms; the text part is what text-only clients show.
 */

export interface RenderedEmail {
  subject: string;
  text: string;
  html: string;
}

const PRODUCT = 'Medivoy';

/** Escapes the five characters that can change the meaning of HTML text or attribute values. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Wraps body paragraphs (already escaped HTML) in a minimal layout that mail clients render alike. */
function layout(title: string, paragraphs: string[]): string {
  return [
    '<!doctype html>',
    '<html><head><meta charset="utf-8"><title>' + escapeHtml(title) + '</title></head>',
    '<body style="font-family:Arial,Helvetica,sans-serif;line-height:1.5;color:#1f2933">',
    ...paragraphs.map((p) => `<p>${p}</p>`),
    `<p style="color:#7b8794;font-size:12px">${PRODUCT} &middot; this message was sent automatically; please do not reply.</p>`,
    '</body></html>',
  ].join('\n');
}

function greeting(name: string | undefined): string {
  return name ? `Hello ${name},` : 'Hello,';
}

export function welcomeEmail(data: { name?: string; email: string }): RenderedEmail {
  const subject = `Welcome to ${PRODUCT}`;
  const lines = [
    greeting(data.name),
    `your ${PRODUCT} account has been created. You sign in with your e-mail address ${data.email}.`,
    'If you did not create this account, please contact your care provider.',
  ];
  return {
    subject,
    text: lines.join('\n\n'),
    html: layout(subject, lines.map(escapeHtml)),
  };
}

export function passwordResetEmail(data: { name?: string; token: string; expiresInMinutes: number; resetUrl?: string }): RenderedEmail {
  const subject = `Reset your ${PRODUCT} password`;
  const link = data.resetUrl ? `${data.resetUrl}${data.resetUrl.includes('?') ? '&' : '?'}token=${encodeURIComponent(data.token)}` : undefined;
  const intro = 'someone (hopefully you) asked to reset the password of your account.';
  const validity = `The reset code is valid for ${data.expiresInMinutes} minutes and can be used once.`;
  const ignore = 'If you did not ask for this, ignore this e-mail: your password stays unchanged.';
  const text = [greeting(data.name), intro, link ? `Open this link to choose a new password:\n${link}` : '', `Reset code: ${data.token}`, validity, ignore]
    .filter(Boolean)
    .join('\n\n');
  const html = layout(subject, [
    escapeHtml(greeting(data.name)),
    escapeHtml(intro),
    ...(link ? [`<a href="${escapeHtml(link)}">Choose a new password</a>`] : []),
    `Reset code: <code>${escapeHtml(data.token)}</code>`,
    escapeHtml(validity),
    escapeHtml(ignore),
  ]);
  return { subject, text, html };
}

export function passwordChangedEmail(data: { name?: string; at: Date }): RenderedEmail {
  const subject = `Your ${PRODUCT} password was changed`;
  const lines = [
    greeting(data.name),
    `the password of your account was changed on ${data.at.toUTCString()}.`,
    'If this was not you, reset your password at once and contact your care provider.',
  ];
  return { subject, text: lines.join('\n\n'), html: layout(subject, lines.map(escapeHtml)) };
}

/** The result of a practitioner role's verification (`PractitionerRole/$verify`), to the practitioner. */
export function verificationResultEmail(data: { name?: string; approved: boolean; organization?: string; specialty?: string; reason?: string }): RenderedEmail {
  const what = [data.specialty, data.organization ? `at ${data.organization}` : undefined].filter(Boolean).join(' ') || 'your practitioner role';
  const subject = data.approved ? `${PRODUCT}: your practitioner profile was approved` : `${PRODUCT}: your practitioner profile was not approved`;
  const lines = [
    greeting(data.name),
    data.approved
      ? `your role ${what} has been verified. Patients can now find and book your available slots.`
      : `your role ${what} could not be verified and stays unavailable for booking.`,
    ...(data.approved || !data.reason ? [] : [`Reason given: ${data.reason}`]),
    data.approved ? 'You can change your availability at any time.' : 'You may correct your profile and submit it again.',
  ];
  return { subject, text: lines.join('\n\n'), html: layout(subject, lines.map(escapeHtml)) };
}
