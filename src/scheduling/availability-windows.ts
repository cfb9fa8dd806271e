import type { PractitionerRole } from '@medplum/fhirtypes';
import { addDays, compareDates, dayOfWeek, localDateOf, minutesOf, zonedToUtc, type LocalDate } from './zoned-time.js';

export interface Interval {
  start: number;
  end: number;
}

const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;

/**
 * The slots a role offers in [from, to): its availableTime (local wall-clock times in `zone`) cut into slots of
 * `slotMinutes`, minus its notAvailable periods. Each availability window is converted to UTC at both ends and
 * then stepped in real minutes, so a window spanning a DST change has as many slots as it has real time.
 */
export function availableSlots(role: PractitionerRole, zone: string, from: number, to: number, slotMinutes: number): Interval[] {
  const step = slotMinutes * 60_000;
  const blocked = (role.notAvailable ?? []).flatMap((n) => (n.during ? [periodOf(n.during, zone)] : []));
  const slots: Interval[] = [];
  const last = localDateOf(zone, to);
  // From the day before: a window may start the previous local day and reach into [from, to).
  for (let day = addDays(localDateOf(zone, from), -1); compareDates(day, last) <= 0; day = addDays(day, 1)) {
    for (const window of windowsOn(role, zone, day)) {
      for (let s = window.start; s + step <= window.end; s += step) {
        const slot = { start: s, end: s + step };
        if (slot.start < from || slot.end > to) continue;
        if (blocked.some((b) => b.start < slot.end && slot.start < b.end)) continue;
        slots.push(slot);
      }
    }
  }
  return slots.sort((a, b) => a.start - b.start).filter((s, i, all) => i === 0 || s.start !== all[i - 1]!.start);
}

/** The UTC intervals of a role's availableTime entries that apply on one local date. */
function windowsOn(role: PractitionerRole, zone: string, day: LocalDate): Interval[] {
  const dow = dayOfWeek(day);
  return (role.availableTime ?? [])
    .filter((a) => !a.daysOfWeek?.length || a.daysOfWeek.includes(dow))
    .flatMap((a) => {
      const startMin = a.allDay || !a.availableStartTime ? 0 : minutesOf(a.availableStartTime);
      const endMin = a.allDay || !a.availableEndTime ? 24 * 60 : minutesOf(a.availableEndTime);
      if (endMin <= startMin) return [];
      return [{ start: zonedToUtc(zone, day, startMin), end: zonedToUtc(zone, day, endMin) }];
    });
}

/** A notAvailable period; a date without time means that whole local day (both ends inclusive). */
function periodOf(p: { start?: string; end?: string }, zone: string): Interval {
  const at = (v: string | undefined, isEnd: boolean): number => {
    if (!v) return isEnd ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY;
    if (DATE_ONLY.test(v)) {
      const [y, m, d] = v.split('-').map(Number) as [number, number, number];
      return zonedToUtc(zone, { y, m, d }, isEnd ? 24 * 60 : 0);
    }
    const t = Date.parse(v);
    return Number.isNaN(t) ? (isEnd ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY) : t;
  };
  return { start: at(p.start, false), end: at(p.end, true) };
}
