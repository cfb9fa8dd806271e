import PDFDocument from 'pdfkit';
import type { Pricing } from './charges.js';
import { format } from './money.js';

export interface InvoiceSheet {
  number: string;
  date: Date;
  issuer: string;
  patient: string;
  practitioner?: string;
  service: string;
  appointmentStart?: string;
  pricing: Pricing;
}

/** The invoice as a one-page PDF (pdfkit, built-in Helvetica: no font files needed). */
export function renderInvoicePdf(s: InvoiceSheet): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const doc = new PDFDocument({ size: 'A4', margin: 50, info: { Title: `Invoice ${s.number}`, Author: s.issuer, CreationDate: s.date } });
    const chunks: Buffer[] = [];
    doc.on('data', (c: Buffer) => chunks.push(c));
    doc.on('end', () => resolve(Buffer.concat(chunks)));
    doc.on('error', reject);
    const p = s.pricing;
    const amount = (minor: number) => format({ minor, currency: p.currency });
    const row = (label: string, value: string, bold = false) => {
      const y = doc.y;
      doc.font(bold ? 'Helvetica-Bold' : 'Helvetica').fontSize(11).text(label, 50, y, { width: 330 });
      doc.text(value, 380, y, { width: 165, align: 'right' });
      doc.moveDown(0.3);
    };
    doc.font('Helvetica-Bold').fontSize(20).text(s.issuer);
    doc.moveDown(0.5).fontSize(14).text(`Invoice ${s.number}`);
    doc.font('Helvetica').fontSize(11).text(`Date: ${s.date.toISOString().slice(0, 10)}`);
    doc.text(`Patient: ${s.patient}`);
    if (s.practitioner) doc.text(`Practitioner: ${s.practitioner}`);
    if (s.appointmentStart) doc.text(`Appointment: ${s.appointmentStart}`);
    doc.moveDown();
    row(s.service, amount(p.net));
    row(p.taxRule.rate > 0 ? `${p.taxRule.label}` : p.taxRule.label, amount(p.tax));
    row('Total', amount(p.gross), true);
    if (p.insurance) {
      doc.moveDown(0.5);
      row('Paid by your insurance', `-${amount(p.insurer)}`);
      for (const l of p.shareLines) row(`Your share: ${l.display}`, amount(l.minor));
    }
    doc.moveDown(0.5);
    row('Amount due', amount(p.patient), true);
    doc.end();
  });
}
