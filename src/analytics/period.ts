import { errors } from '../fhir/outcomes.js';
import { addDays, compareDates, isTimeZone, offsetAt, zonedToUtc, type LocalDate } from '../scheduling/zoned-time.js';

/** A period of whole local days in a time zone: [startMs, endMs) and its days, oldest first. */
export interface Period {
  start: string;
  end: string;
  timezone: string;
  startMs: number;
  endMs: number;
  days: string[];
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

function parseDate(name: string, value: string | undefined): LocalDate {
  const m = value === undefined ? null : DATE.exec(value);
  if (!m) throw errors.badRequest(`${name} must be a date (YYYY-MM-DD)${value === undefined ? ', and it is missing' : `, not ${JSON.stringify(value)}`}`, [name]);
  const d = { y: Number(m[1]), m: Number(m[2]), d: Number(m[3]) };
  const check = new Date(Date.UTC(d.y, d.m - 1, d.d));
  if (check.getUTCFullYear() !== d.y || check.getUTCMonth() + 1 !== d.m || check.getUTCDate() !== d.d) throw errors.badRequest(`${name} ${value} is not a calendar date`, [name]);
  return d;
}

export const formatDate = (d: LocalDate) => `${String(d.y).padStart(4, '0')}-${String(d.m).padStart(2, '0')}-${String(d.d).padStart(2, '0')}`;

/** `start`..`end` (both included) in `timezone`; 400 for dates that do not parse, an end before the start, an unknown zone or a period over `maxDays`. */
export function parsePeriod(start: string | undefined, end: string | undefined, timezone: string, maxDays: number): Period {
  if (!isTimeZone(timezone)) throw errors.badRequest(`timezone ${JSON.stringify(timezone)} is not an IANA time zone (e.g. Europe/Berlin)`, ['timezone']);
  const s = parseDate('start', start);
  const e = parseDate('end', end);
  if (compareDates(e, s) < 0) throw errors.badRequest(`end ${end} is before start ${start}`, ['end']);
  const n = Math.round(compareDates(e, s) / 86_400_000) + 1;
  if (n > maxDays) throw errors.badRequest(`The period has ${n} days; at most ${maxDays} are allowed`, ['end']);
  return periodOf(s, n, timezone);
}

export function periodOf(s: LocalDate, n: number, timezone: string): Period {
  const days = Array.from({ length: n }, (_, i) => formatDate(addDays(s, i)));
  return {
    start: formatDate(s), end: formatDate(addDays(s, n - 1)), timezone,
    startMs: zonedToUtc(timezone, s, 0), endMs: zonedToUtc(timezone, addDays(s, n), 0), days,
  };
}

/** The period of the same number of days just before `p`. */
export function previousPeriod(p: Period): Period {
  const [y, m, d] = p.start.split('-').map(Number) as [number, number, number];
  return periodOf(addDays({ y, m, d }, -p.days.length), p.days.length, p.timezone);
}

/** Local date (YYYY-MM-DD) and hour of an instant in a zone. */
export function localDayHour(zone: string, t: number): { day: string; hour: number } {
  const w = new Date(t + offsetAt(zone, t));
  return { day: w.toISOString().slice(0, 10), hour: w.getUTCHours() };
}
