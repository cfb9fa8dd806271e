import type { Actor, EventSpec } from './events.js';
import { codes } from './events.js';

/**
 * Most requests one aggregated record names (each with its resource). A record costs the database about as
 * much as 60 of its entities whatever its size (FerretDB on PostgreSQL), so bigger records make a read
 * cheaper to audit; the flush window (AUDIT_FLUSH_MS) ends a record sooner on a quieter server.
 */
export const MAX_READS_PER_RECORD = 250;

interface Group {
  actor: Actor;
  code: 'read' | 'vread';
  requestIds: string[];
  resources: string[];
  patients: Set<string>;
  /** Epoch ms of the first and the last read. */
  start: number;
  end: number;
}

/**
 * Successful reads by id (read, vread) of one agent, client and address within one flush window become one
 * AuditEvent naming every request (XrequestId), resource and patient, with `period` from the first to the last:
 * the read path is where a hospital's traffic is, and a record per read would double its cost in the
 * database. Searches, history, operations, writes and every failure keep a record of their own.
 */
export class ReadAggregator {
  private readonly groups = new Map<string, Group>();

  constructor(private readonly emit: (spec: EventSpec) => void) {}

  add(code: 'read' | 'vread', actor: Actor, requestId: string | undefined, resources: string[], patients: string[]): void {
    const key = `${code}\n${actor.clientId ?? ''}\n${actor.accountId ?? ''}\n${actor.fhirUser ?? ''}\n${actor.ip ?? ''}`;
    const now = Date.now();
    let g = this.groups.get(key);
    if (!g) {
      g = { actor, code, requestIds: [], resources: [], patients: new Set(), start: now, end: now };
      this.groups.set(key, g);
    }
    if (requestId) g.requestIds.push(requestId);
    for (const r of resources) g.resources.push(r);
    for (const p of patients) g.patients.add(p);
    g.end = now;
    if (g.requestIds.length >= MAX_READS_PER_RECORD) {
      this.groups.delete(key);
      this.emit(this.spec(g));
    }
  }

  /** Every open group as its record (called before each flush). */
  drain(): void {
    const groups = [...this.groups.values()];
    this.groups.clear();
    for (const g of groups) this.emit(this.spec(g));
  }

  private spec(g: Group): EventSpec {
    return {
      type: codes.rest, subtype: codes.interaction(g.code), action: 'R', outcome: '0', actor: g.actor,
      resources: g.resources, maxResources: MAX_READS_PER_RECORD, patients: [...g.patients], requestIds: g.requestIds, period: { start: new Date(g.start), end: new Date(g.end) }, recorded: new Date(g.end),
    };
  }
}
