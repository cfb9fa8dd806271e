/**
 * The SQL search path on FerretDB's PostgreSQL (infra/ferretdb-sql.ts) against the driver on the same
 * documents: every filter shape the search engine writes must give the same documents in the same order
 * through both, and must actually be translated (not fall back). Runs only on FerretDB with
 * FERRETDB_POSTGRES_URL, as CI does; elsewhere there is nothing to compare.
 */
import { randomBytes } from 'node:crypto';
import { MongoClient, type Filter, type Sort } from 'mongodb';
import { FerretPostgresIndexes } from '../src/infra/ferretdb-postgres.js';
import { createLogger } from '../src/infra/logger.js';
import type { CurrentDoc } from '../src/fhir/storage/mongo/documents.js';
import type { FerretSqlQueries } from '../src/infra/ferretdb-sql.js';

const S = '\u0001';
const pgUrl = process.env.FERRETDB_POSTGRES_URL;
const maybe = pgUrl ? describe : describe.skip;

maybe('searches as SQL on FerretDB', () => {
  let client: MongoClient;
  let indexes: FerretPostgresIndexes;
  let sql: FerretSqlQueries;
  const statements: string[] = [];
  let lastParams: unknown[] = [];
  const dbName = `t_sql_${randomBytes(5).toString('hex')}`;
  const collection = 'fhir_Observation';

  const docs: Partial<CurrentDoc>[] = [];
  beforeAll(async () => {
    client = await MongoClient.connect(process.env.MONGODB_URI!);
    const col = client.db(dbName).collection<Partial<CurrentDoc>>(collection);
    const base = Date.parse('2024-03-01T00:00:00Z');
    for (let i = 0; i < 60; i++) {
      const name = ['smith', 'smithson', 'jones', 'o\'brien', 'ångström', 'line\nbreak'][i % 6]!;
      docs.push({
        _id: `Observation/${String(i).padStart(3, '0')}`,
        t: 'Observation',
        id: String(i).padStart(3, '0'),
        v: 1 + (i % 3),
        lu: new Date(base + ((i * 7919) % 60) * 3_600_000),
        del: i % 10 === 9,
        json: JSON.stringify({ resourceType: 'Observation', id: String(i) }),
        m: 'POST',
        tk: [`subject${S}Patient/${i % 5}`, `code${S}http://loinc.org\u0002${['8302-2', '29463-7', '39156-5'][i % 3]}`, ...(i % 4 ? [`status${S}final`] : [])],
        st: [name.slice(0, 1), name.slice(0, 2), name].map((p) => `name${S}${p}`),
        sf: [`name${S}${name}`],
        dt: [`date${S}2024-0${1 + (i % 6)}-01T00:00:00.000Z${S}2024-0${1 + (i % 6)}-02T00:00:00.000Z`],
        dh: [],
        nm: [`value${S}${String(1000 + i).padStart(16, '0')}`],
        so: i % 7 === 0 ? {} : { date: `2024-0${1 + (i % 6)}-01`, name },
        sd: {},
      });
    }
    await col.insertMany(docs);
    indexes = new FerretPostgresIndexes(pgUrl!, dbName, createLogger('silent'));
    await indexes.ensure(collection, ['_id', 'id', 'tk', 'st']);
    await indexes.ensureSortIndexes(collection);
    sql = indexes.searchQueries((s, params) => {
      statements.push(s);
      lastParams = params;
    });
  });

  afterAll(async () => {
    await client?.db(dbName).dropDatabase().catch(() => undefined);
    await client?.close();
    await indexes?.close();
  });

  const cases: [string, Record<string, unknown>, Sort?, number?][] = [
    ['token equality on an array', { tk: `subject${S}Patient/1`, del: false }],
    ['$in of tokens', { tk: { $in: [`subject${S}Patient/1`, `subject${S}Patient/3`] }, del: false }, { _id: -1 }],
    ['$ne on an array', { tk: { $ne: `status${S}final` } }],
    ['$nin', { tk: { $nin: [`subject${S}Patient/1`, `subject${S}Patient/2`] } }],
    ['$nor (missing field counts as not matching)', { $nor: [{ tk: `status${S}final` }, { tk: `subject${S}Patient/0` }] }],
    ['string prefix', { st: `name${S}sm`, del: false }, { 'so.name': 1, _id: 1 }],
    ['system-only token regex', { tk: { $regex: `^(code${S}http://loinc\\.org\u0002)` } }],
    ['contains regex with an apostrophe', { sf: { $regex: `^name${S}.*(o'br|gstr)` } }],
    ['contains regex does not cross a newline', { sf: { $regex: `^name${S}.*(line.*break)` } }],
    ['date range on one element', { dt: { $elemMatch: { $gte: `date${S}2024-02-01`, $lt: `date${S}2024-04-01` } } }],
    ['number range', { nm: { $elemMatch: { $gte: `value${S}${String(1010).padStart(16, '0')}`, $lt: `value${S}${String(1020).padStart(16, '0')}\u0002` } } }],
    ['_lastUpdated range', { lu: { $gte: new Date('2024-03-01T10:00:00Z'), $lt: new Date('2024-03-02T05:00:00Z') } }, { lu: -1, _id: 1 }],
    ['keyset after a missing sort value', { $or: [{ 'so.name': { $ne: null } }, { $and: [{ 'so.name': null }, { _id: { $gt: 'Observation/020' } }] }] }, { 'so.name': 1, _id: 1 }],
    ['keyset descending', { $or: [{ 'so.date': { $lt: '2024-04-01' } }, { 'so.date': null }] }, { 'so.date': -1, _id: 1 }],
    ['_id list', { _id: { $in: ['Observation/001', 'Observation/050', 'Observation/999'] }, del: false }],
    ['$nin of ids', { _id: { $nin: ['Observation/001', 'Observation/002'] } }],
    ['$in of numbers', { v: { $in: [1, 2] } }],
    ['$in with null (a missing field matches)', { 'so.name': { $in: [null, 'nobody'] } }],
    ['$exists', { 'so.name': { $exists: false } }],
    ['$and of conditions', { $and: [{ tk: `subject${S}Patient/2` }, { v: { $gte: 2 } }] }],
    ['limit after sort', { del: false }, { lu: 1, _id: 1 }, 7],
    ['nothing matches', { tk: `subject${S}Patient/none` }],
  ];

  // Each case as one argument: jest would take a missing trailing argument for a `done` callback.
  test.each(cases.map(([name, ...rest]) => [name, rest] as const))('%s: same documents in the same order as the driver', async (_name, [filter, sort, limit]) => {
    const order = (sort ?? { _id: 1 }) as Record<string, 1 | -1>;
    let cursor = client.db(dbName).collection<CurrentDoc>(collection).find(filter as Filter<CurrentDoc>).sort(order);
    if (limit) cursor = cursor.limit(limit);
    const expected = (await cursor.toArray()).map((d) => d._id);
    const before = statements.length;
    const got = await sql.find(collection, filter, { sort: order, limit, fields: 'page' });
    expect(got).toBeDefined(); // translated, not left to the driver
    expect(statements.length).toBe(before + 1);
    expect(got!.map((d) => d._id)).toEqual(expected);
    const counted = await sql.count(collection, filter);
    expect(counted).toBe(limit ? (await client.db(dbName).collection(collection).countDocuments(filter)) : expected.length);
  });

  test('a list of values of one field is one array parameter, not an OR per value', async () => {
    const ids = Array.from({ length: 300 }, (_, i) => `Observation/${String(i).padStart(3, '0')}`);
    const got = await sql.find(collection, { _id: { $in: ids }, del: false }, { sort: { _id: 1 }, limit: 5, fields: 'page' });
    expect(got!.map((d) => d._id)).toEqual(['Observation/000', 'Observation/001', 'Observation/002', 'Observation/003', 'Observation/004']);
    expect(statements.at(-1)).toContain('= ANY(');
    expect(statements.at(-1)).not.toContain(' OR ');
  });

  test('a page holds the resource and the fields exact checks read, with dates as dates', async () => {
    const [doc] = (await sql.find(collection, { _id: 'Observation/004' }, { fields: 'page' }))!;
    const original = docs[4]!;
    expect(doc).toEqual({ ...original, st: undefined, dh: undefined, $s: undefined } as unknown as CurrentDoc);
    expect(doc!.lu).toBeInstanceOf(Date);
  });

  test('filters outside the translated subset are left to the driver', async () => {
    expect(await sql.find(collection, { tk: { $regex: '^a[0-9]+' } }, { fields: 'page' })).toBeUndefined();
    expect(await sql.find(collection, { $where: 'true' }, { fields: 'page' })).toBeUndefined();
    expect(await sql.find(collection, { 'json.a': 1 }, { fields: 'page' })).toBeUndefined();
    expect(await sql.find(collection, { tk: { $elemMatch: { $regex: 'x' } } }, { fields: 'page' })).toBeUndefined();
  });

  test('a document by _id: the version fields only, as the driver stores them, through the unique _id index', async () => {
    const tombstone = { _id: 'Observation/gone', t: 'Observation', id: 'gone', v: 4, lu: new Date('2024-05-01T10:00:00.123Z'), del: true, json: null, m: 'DELETE' };
    await client.db(dbName).collection(collection).insertOne(tombstone as never);
    const live = docs[4]!;
    expect(await sql.byId(collection, 'Observation/004')).toEqual({ t: live.t, id: live.id, v: live.v, lu: live.lu, del: live.del, json: live.json, m: live.m });
    const { _id, ...gone } = tombstone;
    expect(await sql.byId(collection, 'Observation/gone')).toEqual(gone);
    expect(await sql.byId(collection, 'Observation/none')).toBeNull();
    expect(await sql.byId(collection, "Observation/x' OR '1'='1")).toBeNull(); // a parameter, never SQL text
    expect(await sql.byId('fhir_Nothing', 'Nothing/1')).toBeNull();
    const pg = (await import('pg')).default;
    const pool = new pg.Pool({ connectionString: pgUrl, max: 1 });
    try {
      await sql.byId(collection, 'Observation/004');
      await pool.query('SET enable_seqscan = off');
      const plan = (await pool.query(`EXPLAIN ${statements.at(-1)}`, lastParams)).rows.map((r) => r['QUERY PLAN']).join('\n');
      expect(plan).toMatch(/Index Scan using \S+__id_/);
    } finally {
      await pool.end();
    }
  });

  test('a collection that does not exist yet has no documents', async () => {
    expect(await sql.find('fhir_Nothing', { del: false }, { fields: 'page' })).toEqual([]);
  });

  test('sorted pages walk the btree index instead of sorting every row', async () => {
    const pg = (await import('pg')).default;
    const pool = new pg.Pool({ connectionString: pgUrl, max: 1 });
    try {
      const meta = await pool.query(`SELECT _jsonb->>'table' AS t FROM "${dbName}"._ferretdb_database_metadata WHERE _jsonb->>'_id' = $1`, [collection]);
      const table = `"${dbName}"."${meta.rows[0].t}"`;
      await pool.query('SET enable_seqscan = off'); // the table is small: make the planner show its index choice
      await sql.find(collection, { del: false }, { sort: { _id: 1 }, limit: 5, fields: 'page' });
      const listing = await pool.query(`EXPLAIN ${statements.at(-1)}`, lastParams);
      expect(listing.rows.map((r) => r['QUERY PLAN']).join('\n')).toMatch(/Index Scan using \S+_mvy_sort_id/);
      // With an equality on a search array the GIN index finds the matches; the sort index must not be walked.
      await sql.find(collection, { tk: `subject${S}Patient/1`, del: false }, { sort: { _id: 1 }, limit: 5, fields: 'page' });
      const lookup = (await pool.query(`EXPLAIN ${statements.at(-1)}`, lastParams)).rows.map((r) => r['QUERY PLAN']).join('\n');
      expect(lookup).toMatch(/Bitmap Index Scan on \S+_mvy_tk/);
      expect(lookup).not.toMatch(/sort_id/);
    } finally {
      await pool.end();
    }
  });
});
