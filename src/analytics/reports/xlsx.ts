import ExcelJS from 'exceljs';
import type { Figures } from '../metrics.js';
import { dailySeries, rowsOf } from './rows.js';

/** XLSX: a `Daily` sheet (day, appointments, revenue) and one sheet per section with every figure. */
export async function renderXlsx(figures: Figures, title: string): Promise<Buffer> {
  const wb = new ExcelJS.Workbook();
  wb.creator = 'Medivoy';
  wb.title = title;
  const daily = wb.addWorksheet('Daily');
  daily.columns = [{ header: 'Day', key: 'day', width: 14 }, { header: 'Appointments', key: 'appointments', width: 14 }, { header: `Revenue (${figures.revenue.total.currency})`, key: 'revenue', width: 16 }];
  for (const d of dailySeries(figures)) daily.addRow(d);
  daily.getRow(1).font = { bold: true };
  const rows = rowsOf(figures);
  for (const section of ['period', 'overview', 'appointments', 'revenue', 'practitioners']) {
    const ws = wb.addWorksheet(section[0]!.toUpperCase() + section.slice(1));
    ws.columns = [{ header: 'Figure', key: 'path', width: 48 }, { header: 'Value', key: 'value', width: 18 }, { header: 'Unit', key: 'unit', width: 8 }];
    ws.getRow(1).font = { bold: true };
    for (const r of rows.filter((x) => x.path.startsWith(`${section}.`))) ws.addRow({ ...r, path: r.path.slice(section.length + 1) });
  }
  return Buffer.from(await wb.xlsx.writeBuffer());
}
