/**
 * Normalized search values: folded strings, date ranges and order-preserving number encodings. Every
 * value the index stores is a string, so that one element of an array carries a whole value (a date's
 * start and end, a quantity's number and unit) and range conditions can use `$elemMatch` on scalars,
 * which both MongoDB and FerretDB 1.x accept.
 */

/** Case- and accent-insensitive form of a string (R4 3.1.1.4.7): NFD, combining marks removed, lower case. */
export function fold(s: string): string {
  return s.normalize('NFKD').replace(/\p{M}/gu, '').toLowerCase().replace(/ß/g, 'ss').replace(/\s+/g, ' ').trim();
}

/** The smallest and largest instants as index strings (an open Period end, a missing start). */
export const MIN_INSTANT = '0000-01-01T00:00:00.000Z';
export const MAX_INSTANT = '9999-12-31T23:59:59.999Z';

/** A [start, end) range of instants in milliseconds since the epoch. */
export interface Range {
  lo: number;
  hi: number;
}

const DATE_RE = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

/**
 * The range a FHIR date, dateTime or instant covers at its precision (R4 3.1.1.4.6): `2020` is the whole
 * year, `2020-03-04T10:00` the whole minute. Without a time zone the time is read as UTC. Undefined when
 * the text is not a valid date.
 */
export function dateRange(text: string): Range | undefined {
  const m = DATE_RE.exec(text.trim());
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac, tz] = m;
  const year = Number(y);
  const month = mo ? Number(mo) : 1;
  const day = d ? Number(d) : 1;
  if (month < 1 || month > 12 || day < 1 || day > 31) return undefined;
  if (h !== undefined && (Number(h) > 23 || Number(mi) > 59 || (s !== undefined && Number(s) > 59))) return undefined;
  const offsetMin = !tz || tz === 'Z' ? 0 : (tz.startsWith('-') ? -1 : 1) * (Number(tz.slice(1, 3)) * 60 + Number(tz.slice(4, 6)));
  const ms = frac ? Math.round(Number(`0${frac}`) * 1000) : 0;
  const start = Date.UTC(year, month - 1, day, h ? Number(h) : 0, mi ? Number(mi) : 0, s ? Number(s) : 0, ms) - offsetMin * 60_000;
  // Reject days that do not exist (2021-02-30 would roll over into March).
  const check = new Date(Date.UTC(year, month - 1, day));
  if (check.getUTCMonth() !== month - 1) return undefined;
  let end: number;
  if (!mo) end = Date.UTC(year + 1, 0, 1);
  else if (!d) end = Date.UTC(year, month, 1);
  else if (h === undefined) end = Date.UTC(year, month - 1, day + 1);
  else if (s === undefined) end = start + 60_000;
  else if (!frac) end = start + 1000;
  else end = start + 1;
  return { lo: start, hi: end };
}

/** Index form of an instant (fixed width, so string order is time order). */
export function instantKey(ms: number): string {
  if (!Number.isFinite(ms) || ms <= Date.UTC(0, 0, 1)) return MIN_INSTANT;
  if (ms >= Date.UTC(9999, 11, 31, 23, 59, 59, 999)) return MAX_INSTANT;
  const iso = new Date(ms).toISOString();
  return iso.length === 24 ? iso : iso.length > 24 ? MAX_INSTANT : MIN_INSTANT;
}

/**
 * Order-preserving text form of a number: the IEEE-754 bits, sign-flipped, as 16 hex digits, so that
 * comparing the strings compares the numbers (negative numbers included).
 */
export function numberKey(n: number): string {
  const buf = Buffer.alloc(8);
  buf.writeDoubleBE(n === 0 ? 0 : n); // -0 sorts as 0
  if (buf[0]! & 0x80) for (let i = 0; i < 8; i++) buf[i] = ~buf[i]! & 0xff;
  else buf[0] = buf[0]! | 0x80;
  return buf.toString('hex');
}

export function numberFromKey(key: string): number {
  const buf = Buffer.from(key, 'hex');
  if (buf[0]! & 0x80) buf[0] = buf[0]! & 0x7f;
  else for (let i = 0; i < 8; i++) buf[i] = ~buf[i]! & 0xff;
  return buf.readDoubleBE(0);
}

/**
 * The range a search number stands for at its precision (R4 3.1.1.4.5): `100` is [99.5, 100.5),
 * `100.0` is [99.95, 100.05), `1e2` keeps one significant figure. Undefined when not a number.
 */
export function numberRange(text: string): { value: number; lo: number; hi: number } | undefined {
  if (!/^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(text)) return undefined;
  const value = Number(text);
  if (!Number.isFinite(value)) return undefined;
  const [mantissa, exp] = text.toLowerCase().split('e');
  const decimals = mantissa!.includes('.') ? mantissa!.split('.')[1]!.length : 0;
  let half = 0.5 * 10 ** -decimals;
  if (exp !== undefined) {
    // Scientific notation: precision is the mantissa's significant figures.
    const digits = mantissa!.replace(/^[+-]/, '').replace('.', '').replace(/^0+/, '').length || 1;
    half = 0.5 * 10 ** (Math.floor(Math.log10(Math.abs(value) || 1)) - digits + 1);
  }
  return { value, lo: value - half, hi: value + half };
}

/**
 * UCUM units we convert to a canonical unit so `5 mg` finds `0.005 g` (R4 3.1.1.4.7 "quantities
 * normalized where UCUM allows"). Not a UCUM engine: the common mass, volume, length and time units.
 */
const UCUM: Record<string, { canonical: string; factor: number }> = {
  kg: { canonical: 'g', factor: 1000 }, g: { canonical: 'g', factor: 1 }, mg: { canonical: 'g', factor: 1e-3 },
  ug: { canonical: 'g', factor: 1e-6 }, ng: { canonical: 'g', factor: 1e-9 }, '[lb_av]': { canonical: 'g', factor: 453.59237 },
  L: { canonical: 'L', factor: 1 }, l: { canonical: 'L', factor: 1 }, dL: { canonical: 'L', factor: 0.1 }, mL: { canonical: 'L', factor: 1e-3 },
  m: { canonical: 'm', factor: 1 }, cm: { canonical: 'm', factor: 0.01 }, mm: { canonical: 'm', factor: 1e-3 }, km: { canonical: 'm', factor: 1000 }, '[in_i]': { canonical: 'm', factor: 0.0254 },
  s: { canonical: 's', factor: 1 }, min: { canonical: 's', factor: 60 }, h: { canonical: 's', factor: 3600 }, d: { canonical: 's', factor: 86400 }, wk: { canonical: 's', factor: 604800 },
  'mg/dL': { canonical: 'g/L', factor: 0.01 }, 'g/dL': { canonical: 'g/L', factor: 10 }, 'g/L': { canonical: 'g/L', factor: 1 }, 'mg/L': { canonical: 'g/L', factor: 1e-3 },
};
export const UCUM_SYSTEM = 'http://unitsofmeasure.org';

/** The canonical UCUM form of a value, when the unit is one we convert. */
export function canonicalQuantity(value: number, code: string | undefined): { value: number; code: string } | undefined {
  const u = code ? UCUM[code] : undefined;
  return u ? { value: value * u.factor, code: u.canonical } : undefined;
}
export function ucumFactor(code: string): { canonical: string; factor: number } | undefined {
  return UCUM[code];
}
