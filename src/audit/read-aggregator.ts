import type { Actor, EventSpec } from './events.js';
import { codes } from './events.js';

/**
 * Most entities (distinct patients and resources) one aggregated record names. A record costs the database
 * about as much as 60 of its entities whatever its size (FerretDB on PostgreSQL), and each entity adds its
 * search keys, so the limit is on what gets indexed: a patient read again within the window adds only its
 * request id. The flush window (AUDIT_FLUSH_MS) ends a record sooner on a quieter server.
 */
export const MAX_ENTITIES_PER_RECORD = 250;
/** Most requests one aggregated record names (their ids are one unindexed string of its XrequestId entity). */
export const MAX_REQUESTS_PER_RECORD = 1000;

interface Group {
  actor: Actor;
  code: 'read' | 'vread';
  requestIds: string[];
  requests: number;
  resources: Set<string>;
  patients: Set<string>;
  /** Entities the record will name: its patients, and its resources other than a read patient itself. */
  entities: number;
  /** Epoch ms of the first and the last read. */
  start: number;
  end: number;
}

/**
 * Successful reads by id (read, vread) of one agent, client and address within one flush window become one
 * AuditEvent naming every request (XrequestId), resource and patient once, with `period` from the first to the last:
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
      g = { actor, code, requestIds: [], resources: new Set(), patients: new Set(), entities: 0, requests: 0, start: now, end: now };
      this.groups.set(key, g);
    }
    g.requests++;
    if (requestId) g.requestIds.push(requestId);
    for (const p of patients) {
      if (g.patients.has(p)) continue;
      g.patients.add(p);
      g.entities++;
    }
    for (const r of resources) {
      if (g.resources.has(r)) continue;
      g.resources.add(r);
      // A `Patient/x` read is named as the patient x (events.ts), not as a second entity.
      if (!(r.startsWith('Patient/') && g.patients.has(r.slice(8)))) g.entities++;
    }
    g.end = now;
    if (g.entities >= MAX_ENTITIES_PER_RECORD || g.requests >= MAX_REQUESTS_PER_RECORD) {
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
      // Every resource listed: the limits above bound the record.
      resources: [...g.resources], maxResources: g.resources.size, patients: [...g.patients], requestIds: g.requestIds, period: { start: new Date(g.start), end: new Date(g.end) }, recorded: new Date(g.end),
    };
  }
}
