import type { ResourceVersion } from './types.js';

/**
 * A document another module writes together with a resource version: an audit record of the write, an
 * outbox entry for subscriptions. It lives in its own collection (not a resource collection) and carries its
 * own unique `_id`.
 */
export interface SideWrite {
  collection: string;
  doc: { _id: string } & Record<string, unknown>;
}

/** The version about to be written and the one it replaces (none for a create). */
export interface VersionWrite {
  version: ResourceVersion;
  previous?: ResourceVersion;
  /** True inside a unit of work (a transaction Bundle or a workflow's `repo.transaction`). */
  inUnitOfWork: boolean;
}

/**
 * Called by the repository for every version it is about to write; what it returns is written in the same
 * unit of work. On an engine with transactions, the version and its side writes commit together or not at
 * all. Without (FerretDB), side writes are inserted first and removed again when the version cannot be
 * written (or its unit of work is rolled back); a process that dies between the two leaves a side write whose
 * version never appeared, so consumers check that the version exists (`Type/id/v` in the type's history)
 * before acting on one. A hook that throws fails the write: nothing is stored.
 */
export type SideWriteHook = (write: VersionWrite) => SideWrite[] | Promise<SideWrite[]>;

/** Hooks of one repository; modules add theirs at start-up (server.ts). */
export class SideWriteHooks {
  private readonly hooks: SideWriteHook[] = [];

  add(hook: SideWriteHook): void {
    this.hooks.push(hook);
  }

  get empty(): boolean {
    return this.hooks.length === 0;
  }

  async collect(write: VersionWrite): Promise<SideWrite[]> {
    if (!this.hooks.length) return [];
    const out: SideWrite[] = [];
    for (const hook of this.hooks) out.push(...(await hook(write)));
    return out;
  }
}
