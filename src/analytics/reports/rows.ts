import type { Figures } from '../metrics.js';

/** One figure as a report row: its path (`revenue.byPaymentMethod[0].amount`), value and unit (a currency, or empty). */
export interface Row {
  path: string;
  value: string | number;
  unit: string;
}

/** Every figure as rows, in the order of the $analytics answer. */
export function rowsOf(figures: Figures): Row[] {
  const out: Row[] = [];
  const walk = (prefix: string, v: unknown) => {
    if (v === undefined || v === null) return;
    if (typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean') {
      out.push({ path: prefix, value: typeof v === 'boolean' ? String(v) : v, unit: '' });
      return;
    }
    if (Array.isArray(v)) {
      v.forEach((x, i) => walk(`${prefix}[${i}]`, x));
      return;
    }
    const o = v as Record<string, unknown>;
    if (Object.keys(o).length === 2 && typeof o.value === 'number' && typeof o.currency === 'string') {
      out.push({ path: prefix, value: o.value, unit: o.currency });
      return;
    }
    for (const [k, x] of Object.entries(o)) walk(prefix ? `${prefix}.${k}` : k, x);
  };
  walk('', figures);
  return out;
}

/** The days of the period with their appointments and revenue (the charts' data). */
export function dailySeries(f: Figures): { day: string; appointments: number; revenue: number }[] {
  return Object.keys(f.appointments.daily).map((day) => ({ day, appointments: f.appointments.daily[day]!, revenue: f.revenue.daily[day]?.value ?? 0 }));
}
