/**
 * E-mails of onboarding and prescriptions: plain functions from data to {subject, text, html}, every value
 * escaped on its way into the HTML (names and medication texts come from forms).
 */
import { escapeHtml, type RenderedEmail } from './templates.js';

const PRODUCT = 'Medivoy';

function render(subject: string, lines: string[]): RenderedEmail {
  const html = [
    '<!doctype html>',
    `<html><head><meta charset="utf-8"><title>${escapeHtml(subject)}</title></head>`,
    '<body style="font-family:Arial,Helvetica,sans-serif;line-height:1.5;color:#1f2933">',
    ...lines.map((l) => `<p>${escapeHtml(l).replace(/\n/g, '<br>')}</p>`),
    `<p style="color:#7b8794;font-size:12px">${PRODUCT} &middot; this message was sent automatically; please do not reply.</p>`,
    '</body></html>',
  ].join('\n');
  return { subject, text: lines.join('\n\n'), html };
}

const hello = (name?: string) => (name ? `Hello ${name},` : 'Hello,');

/** The first onboarding step was recorded: what the patient still has to give before the first visit. */
export function onboardingWelcomeEmail(data: { name?: string; missing: string[] }): RenderedEmail {
  return render(`Welcome to ${PRODUCT}: complete your health profile`, [
    hello(data.name),
    'thank you for starting your health profile. Your care team sees it before your first visit.',
    data.missing.length ? `Still to complete:\n${data.missing.map((m) => `- ${m}`).join('\n')}` : 'Everything is already complete.',
  ]);
}

export function onboardingCompleteEmail(data: { name?: string }): RenderedEmail {
  return render(`${PRODUCT}: your health profile is complete`, [
    hello(data.name),
    'your health profile is complete: allergies, medications, history, measurements, emergency contact and a verified insurance.',
    'You can update it at any time in the app.',
  ]);
}

export function prescriptionEmail(data: { name?: string; medication: string; dosage: string[]; prescriber?: string }): RenderedEmail {
  return render(`${PRODUCT}: a new prescription for you`, [
    hello(data.name),
    `${data.prescriber ?? 'Your practitioner'} prescribed: ${data.medication}.`,
    ...(data.dosage.length ? [`How to take it:\n${data.dosage.map((d) => `- ${d}`).join('\n')}`] : []),
    'You find the prescription in the app. Ask your practitioner or pharmacist if anything is unclear.',
  ]);
}
