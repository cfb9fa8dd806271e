/**
 * The resource types some active subscription is about, as this process last read them, so that writes of other
 * types carry no outbox entry. Sound across processes by a propagation bound P: a subscription notifies about
 * changes from P after it was written (its `since`), and a process whose last successful read began more than P
 * ago writes entries for every type. So a change at t ≥ since in any process was checked against a read that
 * began after the subscription was written, and saw it.
 */
export class WatchedTypes {
  private types = new Set<string>();
  private refreshedAt = 0;

  constructor(readonly propagationMs: number) {}

  /** Whether a version of `type` needs an outbox entry. */
  covers(type: string): boolean {
    if (Date.now() - this.refreshedAt >= this.propagationMs) return true; // not known recently enough: all of them
    return this.types.has(type);
  }

  /** Records the result of a read that began at `startedAt`. */
  set(types: Iterable<string>, startedAt: number): void {
    this.types = new Set(types);
    this.refreshedAt = startedAt;
  }

  /** A subscription written by this process is known here at once. */
  add(type: string): void {
    this.types.add(type);
  }
}
