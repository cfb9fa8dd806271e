import type { ClientSession } from 'mongodb';
import type { Collections, CurrentDoc } from './documents.js';
import { acquireCriteriaLock, releaseCriteriaLock } from './criteria-lock.js';
import { undoVersion, writeNewVersions } from './version-writer.js';
import { insertSideWrites, removeSideWrites, type SideWriteVersion } from './side-write-store.js';
import type { SideWrite } from '../side-writes.js';
import type { ResourceVersion } from '../types.js';

/**
 * The state of one multi-resource write (a transaction Bundle). On an engine with transactions every
 * operation runs in `session`; without, every version written is recorded so that a failure can undo
 * them in reverse order. Criteria locks are held until the unit ends, so a conditional create stays
 * exclusive until its transaction is committed or rolled back.
 */
export class UnitOfWork {
  private readonly written: { doc: CurrentDoc; previous: CurrentDoc | null }[] = [];
  private readonly locks = new Map<string, string>();
  /** Cache keys of everything written (invalidated when the unit ends, committed or rolled back). */
  readonly cacheKeys: string[] = [];
  /** The versions this unit made current, by cache key: stored in the cache once it has committed. */
  readonly current = new Map<string, ResourceVersion>();
  /** Creates not yet written: flushed in bulk before anything reads or the unit ends. */
  private buffered: CurrentDoc[] = [];
  /** Side writes of the buffered creates, inserted just before them. */
  private bufferedSides: SideWrite[] = [];
  /** Side writes already inserted (removed on rollback without a session). */
  private readonly sides: SideWrite[] = [];

  constructor(
    private readonly c: Collections,
    readonly session: ClientSession | undefined,
  ) {}

  recordWrite(doc: CurrentDoc, previous: CurrentDoc | null): void {
    if (!this.session) this.written.push({ doc, previous });
  }

  buffer(doc: CurrentDoc, sides: SideWrite[] = []): void {
    this.buffered.push(doc);
    this.bufferedSides.push(...sides);
  }

  /** Inserts side writes of a version in this unit (in its session; recorded for rollback without one). */
  async writeSides(sides: SideWrite[], version?: SideWriteVersion): Promise<void> {
    if (!sides.length) return;
    if (!this.session) this.sides.push(...sides); // recorded first, so a partial insert is undone too
    await insertSideWrites(this.c, sides, this.session, version);
  }

  async flush(): Promise<void> {
    if (!this.buffered.length) return;
    const docs = this.buffered;
    this.buffered = [];
    const sides = this.bufferedSides;
    this.bufferedSides = [];
    await this.writeSides(sides);
    for (const d of docs) this.recordWrite(d, null); // recorded first, so a partial bulk write is undone too
    await writeNewVersions(this.c, docs, this.session);
  }

  async lock(name: string): Promise<void> {
    if (this.locks.has(name)) return;
    this.locks.set(name, await acquireCriteriaLock(this.c, name));
  }

  /** Undoes every version written by this unit, newest first (no-op when a session's abort does it). */
  async rollback(): Promise<void> {
    // Each undo is forgotten only once done, so a rollback interrupted by a database outage can be run
    // again (see PendingRollbacks) and continues where it stopped; undoing a version twice is harmless.
    for (let w = this.written.at(-1); w; w = this.written.at(-1)) {
      await undoVersion(this.c, w.doc, w.previous);
      this.written.pop();
    }
    await removeSideWrites(this.c.database, this.sides);
    this.sides.length = 0;
  }

  async releaseLocks(): Promise<void> {
    await Promise.all([...this.locks].map(([name, owner]) => releaseCriteriaLock(this.c, name, owner)));
    this.locks.clear();
  }
}
