/**
 * Links between an account and a patient (a practitioner's appointment or care relation, a hospital
 * administrator's organization) found by earlier requests, remembered per process for `ttlMs`: checking one
 * costs up to four queries, on every read of that patient's data. Only links are remembered, never their
 * absence, so a newly booked patient is reachable at once; a link that goes away (the only appointment
 * cancelled) still counts for at most `ttlMs`, the same bound as for the account behind a cached token
 * (ACCESS_CACHE_SECONDS). A ttl of 0 turns it off.
 */
export class LinkCache {
  private readonly until = new Map<string, number>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 50_000,
  ) {}

  has(key: string): boolean {
    const until = this.until.get(key);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.until.delete(key);
    return false;
  }

  add(key: string): void {
    if (this.ttlMs <= 0) return;
    if (this.until.size >= this.maxEntries) this.until.delete(this.until.keys().next().value!); // oldest first
    this.until.delete(key); // re-inserted last, so eviction stays oldest-first
    this.until.set(key, Date.now() + this.ttlMs);
  }

  clear(): void {
    this.until.clear();
  }
}
