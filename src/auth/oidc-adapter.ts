import type { Collection, Db } from 'mongodb';
import type { Adapter, AdapterPayload } from 'oidc-provider';

interface StoredModel {
  _id: string;
  /**
   * The payload as JSON text: a Grant keys its resource scopes by the resource URL, and FerretDB (like
   * MongoDB before 5.0) refuses field names with dots.
   */
  payload: string | AdapterPayload;
  /** Top-level copies of what the provider looks models up by (FerretDB pushes down top-level equality only). */
  grantId?: string;
  uid?: string;
  userCode?: string;
  expiresAt?: Date;
}

/**
 * oidc-provider's storage contract on MongoDB: one collection per model (`oidc_AccessToken`, `oidc_Grant`,
 * `oidc_Client`, `oidc_ReplayDetection` …), so every server process sees the same clients, sessions,
 * codes, tokens and `jti` replay records. Expiry is checked on read as well as by a TTL index, since a TTL
 * monitor runs only once a minute (and not at all on engines without one).
 */
export function mongoAdapterFactory(db: Db): (name: string) => Adapter {
  const ready = new Map<string, Promise<unknown>>();
  return (name: string) => {
    const col: Collection<StoredModel> = db.collection<StoredModel>(`oidc_${name}`);
    if (!ready.has(name)) {
      ready.set(
        name,
        Promise.all([
          col.createIndex({ expiresAt: 1 }, { expireAfterSeconds: 0, name: 'expiry' }).catch(() => col.createIndex({ expiresAt: 1 }, { name: 'expiry' })),
          col.createIndex({ grantId: 1 }, { name: 'grant' }),
          col.createIndex({ uid: 1 }, { name: 'uid' }),
        ]).catch(() => undefined),
      );
    }
    const live = (d: StoredModel | null): AdapterPayload | undefined => {
      if (!d || (d.expiresAt && d.expiresAt.getTime() <= Date.now())) return undefined;
      return typeof d.payload === 'string' ? (JSON.parse(d.payload) as AdapterPayload) : d.payload;
    };
    return {
      async upsert(id: string, payload: AdapterPayload, expiresIn: number) {
        await ready.get(name);
        const doc: Omit<StoredModel, '_id'> = {
          payload: JSON.stringify(payload),
          ...(payload.grantId ? { grantId: payload.grantId } : {}),
          ...(payload.uid ? { uid: payload.uid } : {}),
          ...(payload.userCode ? { userCode: payload.userCode } : {}),
          ...(expiresIn ? { expiresAt: new Date(Date.now() + expiresIn * 1000) } : {}),
        };
        await col.replaceOne({ _id: id }, doc, { upsert: true });
      },
      async find(id: string) {
        return live(await col.findOne({ _id: id }));
      },
      async findByUid(uid: string) {
        return live(await col.findOne({ uid }));
      },
      async findByUserCode(userCode: string) {
        return live(await col.findOne({ userCode }));
      },
      async consume(id: string) {
        const d = await col.findOne({ _id: id });
        const payload = live(d);
        if (payload) await col.updateOne({ _id: id }, { $set: { payload: JSON.stringify({ ...payload, consumed: Math.floor(Date.now() / 1000) }) } });
      },
      async destroy(id: string) {
        await col.deleteOne({ _id: id });
      },
      async revokeByGrantId(grantId: string) {
        await col.deleteMany({ grantId });
      },
    } satisfies Adapter;
  };
}
