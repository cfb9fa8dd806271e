/**
 * Wall-clock time in an IANA time zone ↔ UTC instants with nothing but Intl (Node ships the full tz data).
 * Ambiguous and missing local times are resolved like Temporal's `compatible` disambiguation: in an overlap
 * (autumn fall-back) the earlier instant, in a gap (spring-forward) the time shifted forward by the gap.
 */

export interface LocalDate {
  y: number;
  m: number; // 1-12
  d: number;
}

const DAY_MS = 86_400_000;
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
    });
    formatters.set(zone, f);
  }
  return f;
}

/** Whether `zone` is an IANA time zone this runtime knows. */
export function isTimeZone(zone: string): boolean {
  try {
    formatter(zone);
    return true;
  } catch {
    return false;
  }
}

/** The wall-clock reading of instant `t` in `zone`, as if that reading were UTC (ms). */
function wallOf(zone: string, t: number): number {
  const p: Record<string, number> = {};
  for (const part of formatter(zone).formatToParts(new Date(t))) if (part.type !== 'literal') p[part.type] = Number(part.value);
  return Date.UTC(p.year!, p.month! - 1, p.day!, p.hour!, p.minute!, p.second!);
}

/** UTC offset of `zone` at instant `t`, in ms (east positive): +3_600_000 for Europe/Berlin in winter. */
export function offsetAt(zone: string, t: number): number {
  return wallOf(zone, Math.floor(t / 1000) * 1000) - Math.floor(t / 1000) * 1000;
}

/** The instant at which the wall clock in `zone` reads `date` plus `minutes` (which may exceed a day). */
export function zonedToUtc(zone: string, date: LocalDate, minutes: number): number {
  const wall = Date.UTC(date.y, date.m - 1, date.d, 0, minutes);
  // Offsets in force a day before and after bracket any transition near this wall time.
  const before = offsetAt(zone, wall - DAY_MS);
  const after = offsetAt(zone, wall + DAY_MS);
  const valid = [...new Set([before, after])].map((o) => wall - o).filter((t) => wallOf(zone, t) === wall);
  if (valid.length) return Math.min(...valid); // one reading, or the earlier of an overlap
  return wall - before; // in a gap: the offset before the change moves the time forward by the gap
}

/** The calendar date in `zone` at instant `t`. */
export function localDateOf(zone: string, t: number): LocalDate {
  const w = new Date(wallOf(zone, t));
  return { y: w.getUTCFullYear(), m: w.getUTCMonth() + 1, d: w.getUTCDate() };
}

export function addDays(date: LocalDate, days: number): LocalDate {
  const w = new Date(Date.UTC(date.y, date.m - 1, date.d + days));
  return { y: w.getUTCFullYear(), m: w.getUTCMonth() + 1, d: w.getUTCDate() };
}

const DAY_CODES = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;

/** R4 `days-of-week` code of a calendar date. */
export function dayOfWeek(date: LocalDate): (typeof DAY_CODES)[number] {
  return DAY_CODES[new Date(Date.UTC(date.y, date.m - 1, date.d)).getUTCDay()]!;
}

export function compareDates(a: LocalDate, b: LocalDate): number {
  return Date.UTC(a.y, a.m - 1, a.d) - Date.UTC(b.y, b.m - 1, b.d);
}

/** Minutes since midnight of an R4 `time` (hh:mm:ss). */
export function minutesOf(time: string): number {
  const [h, m, s] = time.split(':').map(Number);
  return (h ?? 0) * 60 + (m ?? 0) + Math.floor((s ?? 0) / 60);
}
