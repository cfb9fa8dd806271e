import PDFDocument from 'pdfkit';
import type { Figures } from '../metrics.js';
import { dailySeries } from './rows.js';

const COLORS = ['#2563eb', '#16a34a', '#f59e0b', '#dc2626', '#7c3aed', '#0891b2', '#db2777', '#65a30d'];

/**
 * PDF (A4): the overview, then the charts drawn as vector shapes (appointments per day as bars, revenue per
 * day as a line, appointments by status as bars), then the rankings. `compress: false` keeps the page
 * content readable (the test counts the shapes).
 */
export function renderPdf(figures: Figures, title: string): Promise<Buffer> {
  const doc = new PDFDocument({ size: 'A4', margin: 40, compress: false, info: { Title: title, Producer: 'Medivoy', Creator: 'Medivoy' } });
  const chunks: Buffer[] = [];
  doc.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise<Buffer>((resolve, reject) => {
    doc.on('end', () => resolve(Buffer.concat(chunks)));
    doc.on('error', reject);
  });
  const f = figures;
  const cur = f.revenue.total.currency;
  doc.fontSize(18).text(title);
  doc.fontSize(10).fillColor('#444').text(`${f.period.start} to ${f.period.end} (${f.period.timezone})`).moveDown();
  doc.fillColor('#000').fontSize(12).text('Overview');
  doc.fontSize(10);
  const o = f.overview;
  for (const [k, v] of [
    ['Patients', o.patients], ['Verified practitioners', o.verifiedPractitioners], ['Active organizations', o.activeOrganizations],
    ['Appointments', o.appointments], ['Revenue', `${o.revenue.value.toFixed(2)} ${cur}`], ['Active patients', o.activePatients],
    ['Completion rate', `${f.appointments.completionRate} %`], ['No-show rate', `${f.appointments.noShowRate} %`],
    ['Average consultation', f.appointments.averageConsultationMinutes === undefined ? '-' : `${f.appointments.averageConsultationMinutes} min`],
    ['Slot utilisation', f.practitioners.slotUtilisation.rate === undefined ? '-' : `${f.practitioners.slotUtilisation.rate} %`],
  ] as [string, string | number][]) doc.text(`${k}: ${v}`);
  doc.moveDown();
  const series = dailySeries(f);
  barChart(doc, 'Appointments per day', series.map((d) => d.day.slice(5)), series.map((d) => d.appointments));
  lineChart(doc, `Revenue per day (${cur})`, series.map((d) => d.day.slice(5)), series.map((d) => d.revenue));
  const statuses = Object.entries(f.appointments.byStatus);
  barChart(doc, 'Appointments by status', statuses.map(([s]) => s), statuses.map(([, n]) => n));
  doc.addPage();
  doc.fontSize(12).fillColor('#000').text('Popular specialties');
  doc.fontSize(10);
  for (const s of f.appointments.specialties) doc.text(`${s.name}: ${s.appointments}`);
  doc.moveDown().fontSize(12).text('Revenue by organization');
  doc.fontSize(10);
  for (const r of f.revenue.byOrganization) doc.text(`${r.name ?? r.organization}: ${r.amount.value.toFixed(2)} ${cur}`);
  doc.moveDown().fontSize(12).text('Revenue by payment method');
  doc.fontSize(10);
  for (const r of f.revenue.byPaymentMethod) doc.text(`${r.method}: ${r.amount.value.toFixed(2)} ${cur}`);
  doc.moveDown().fontSize(12).text('Practitioner ratings');
  doc.fontSize(10);
  for (const r of f.practitioners.ratings) doc.text(`${r.practitioner}: ${r.average} (${r.reviews} reviews)`);
  doc.end();
  return done;
}

type Doc = InstanceType<typeof PDFDocument>;

function frame(doc: Doc, title: string, height: number): { x: number; y: number; w: number; h: number } {
  if (doc.y + height + 40 > doc.page.height - doc.page.margins.bottom) doc.addPage();
  doc.fontSize(11).fillColor('#000').text(title, doc.page.margins.left, doc.y);
  const x = doc.page.margins.left + 30;
  const y = doc.y + 4;
  const w = doc.page.width - doc.page.margins.left - doc.page.margins.right - 30;
  doc.save().lineWidth(0.5).strokeColor('#999').moveTo(x, y).lineTo(x, y + height).lineTo(x + w, y + height).stroke().restore();
  return { x, y, w, h: height };
}

function axisLabels(doc: Doc, box: { x: number; y: number; w: number; h: number }, labels: string[], max: number): void {
  doc.fontSize(6).fillColor('#444');
  doc.text(String(Math.round(max * 100) / 100), box.x - 28, box.y - 2, { width: 26, align: 'right' });
  doc.text('0', box.x - 28, box.y + box.h - 4, { width: 26, align: 'right' });
  const step = Math.max(1, Math.ceil(labels.length / 12));
  labels.forEach((l, i) => {
    if (i % step) return;
    doc.text(l, box.x + (i * box.w) / labels.length, box.y + box.h + 2, { width: Math.max(20, box.w / labels.length), lineBreak: false });
  });
  doc.x = doc.page.margins.left;
  doc.y = box.y + box.h + 16;
}

function barChart(doc: Doc, title: string, labels: string[], values: number[]): void {
  const box = frame(doc, title, 110);
  const max = Math.max(1, ...values);
  const slot = box.w / Math.max(1, values.length);
  values.forEach((v, i) => {
    const h = (v / max) * (box.h - 4);
    doc.rect(box.x + i * slot + slot * 0.15, box.y + box.h - h, slot * 0.7, h).fill(COLORS[0]!);
  });
  axisLabels(doc, box, labels, max);
}

function lineChart(doc: Doc, title: string, labels: string[], values: number[]): void {
  const box = frame(doc, title, 110);
  const max = Math.max(1, ...values.map(Math.abs));
  const slot = box.w / Math.max(1, values.length);
  const pt = (v: number, i: number) => [box.x + i * slot + slot / 2, box.y + box.h - (Math.max(0, v) / max) * (box.h - 4)] as const;
  doc.save().lineWidth(1.5).strokeColor(COLORS[1]!);
  values.forEach((v, i) => {
    const [x, y] = pt(v, i);
    if (i === 0) doc.moveTo(x, y);
    else doc.lineTo(x, y);
  });
  if (values.length) doc.stroke();
  doc.restore();
  values.forEach((v, i) => {
    const [x, y] = pt(v, i);
    doc.circle(x, y, 1.8).fill(COLORS[1]!);
  });
  axisLabels(doc, box, labels, max);
}
