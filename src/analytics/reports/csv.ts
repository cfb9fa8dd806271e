import type { Figures } from '../metrics.js';
import { rowsOf } from './rows.js';

const cell = (v: string | number) => {
  const s = String(v);
  return /[",\n\r]/.test(s) || /^[=+\-@]/.test(s) && typeof v === 'string' ? `"${s.replace(/"/g, '""')}"` : s;
};

/** CSV (RFC 4180, CRLF): `figure,value,unit`, one row per figure. */
export function renderCsv(figures: Figures): Buffer {
  const lines = ['figure,value,unit', ...rowsOf(figures).map((r) => [r.path, r.value, r.unit].map(cell).join(','))];
  return Buffer.from(`${lines.join('\r\n')}\r\n`, 'utf8');
}
