import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { table } from '../../core/app.js';
import { newEventId, type CloudEvent } from '../../core/event.js';
import { ConditionFailedError } from '../../core/ports.js';
import { compareKeys } from '../../core/session.js';
import { PG_URL, servicesAvailable } from '../../conformance/services.js';
import { encodeKey, PgStore } from './store.js';

const available = await servicesAvailable('adapters/postgres', 'postgres');
const apps: string[] = [];
let store: PgStore;

function appName(): string {
  const app = `pgtest-${randomUUID().slice(0, 8)}`;
  apps.push(app);
  return app;
}

describe('encodeKey', () => {
  it('orders keys exactly as compareKeys does: numbers numerically, before strings', () => {
    const keys = [-1e300, -2.5, -1, -0.001, 0, 1e-9, 1, 2, 10, 99.5, 1e21, '', '0', '10', '9', 'a', 'a-1', 'ab', 'b', 'é', '\u{1F600}'];
    const shuffled = [...keys].sort(() => Math.random() - 0.5);
    const byEncoding = [...shuffled].sort((a, b) => (Buffer.compare(Buffer.from(encodeKey(a)), Buffer.from(encodeKey(b)))));
    expect(byEncoding).toEqual([...shuffled].sort(compareKeys));
    expect(encodeKey(-0)).toBe(encodeKey(0));
    expect(encodeKey(1)).not.toBe(encodeKey('1'));
  });
});

describe.skipIf(!available)('PostgreSQL tables', () => {
  beforeAll(async () => {
    store = await PgStore.connect(PG_URL, { max: 4 });
  });
  afterAll(async () => {
    if (!store) return;
    for (const app of apps) await store.dropApp(app);
    await store.close();
  });

  const spec = table({ partitionKey: 'pk', sortKey: 'sk', ttlAttribute: 'expires' });

  it('get, conditional put, query with every sort-key condition, reverse, limit, delete, TTL', async () => {
    const t = store.table(appName(), 'items', spec);
    for (const sk of [3, 1, 2, 10, -4.5]) await t.put({ pk: 'a', sk, v: sk });
    await t.put({ pk: 'a', sk: 4, v: 'gone', expires: Date.now() / 1000 - 1 });
    await t.put({ pk: 'a', sk: 5, v: 'lives', expires: Date.now() / 1000 + 60 });
    for (const sk of ['x-1', 'x-2', 'y-1', 'x']) await t.put({ pk: 'b', sk });
    await t.put({ pk: 7, sk: 1, numericPartition: true });
    const sks = async (pk: string | number, options?: Parameters<typeof t.query>[1]) => (await t.query(pk, options)).map((i) => i.sk);
    expect(await sks('a')).toEqual([-4.5, 1, 2, 3, 5, 10]);
    expect(await sks('a', { reverse: true, limit: 2 })).toEqual([10, 5]);
    expect(await sks('a', { sortKey: { eq: 2 } })).toEqual([2]);
    expect(await sks('a', { sortKey: { lt: 2 } })).toEqual([-4.5, 1]);
    expect(await sks('a', { sortKey: { lte: 2 } })).toEqual([-4.5, 1, 2]);
    expect(await sks('a', { sortKey: { gt: 3 } })).toEqual([5, 10]);
    expect(await sks('a', { sortKey: { gte: 3 }, limit: 1 })).toEqual([3]);
    expect(await sks('a', { sortKey: { between: [2, 5] } })).toEqual([2, 3, 5]);
    expect(await sks('b', { sortKey: { beginsWith: 'x-' } })).toEqual(['x-1', 'x-2']);
    expect(await sks('b', { sortKey: { beginsWith: 'x' }, reverse: true })).toEqual(['x-2', 'x-1', 'x']);
    expect(await sks(7)).toEqual([1]);
    expect(await sks('7')).toEqual([]);
    expect(await t.get({ pk: 'a', sk: 4 })).toBeUndefined();
    expect(await t.get({ pk: 'a', sk: 5 })).toMatchObject({ v: 'lives' });

    await expect(t.put({ pk: 'a', sk: 1, v: 0 }, { ifNotExists: true })).rejects.toThrow(ConditionFailedError);
    await expect(t.put({ pk: 'a', sk: 1, v: 0 }, { ifMatch: { v: 99 } })).rejects.toThrow(ConditionFailedError);
    await t.put({ pk: 'a', sk: 1, v: 11 }, { ifMatch: { v: 1 } });
    // An expired item counts as absent for ifNotExists.
    await t.put({ pk: 'a', sk: 4, v: 'again' }, { ifNotExists: true });
    await expect(t.delete({ pk: 'a', sk: 2 }, { ifMatch: { v: 3 } })).rejects.toThrow(ConditionFailedError);
    await t.delete({ pk: 'a', sk: 2 }, { ifMatch: { v: 2 } });
    await t.delete({ pk: 'a', sk: 3 });
    expect((await t.query('a')).map((i) => [i.sk, i.v])).toEqual([[-4.5, -4.5], [1, 11], [4, 'again'], [5, 'lives'], [10, 10]]);
    await expect(t.put({ pk: { nested: true }, sk: 1 })).rejects.toThrow(/partition key "pk" must be a string or number/);
  });

  it('a session reads its own writes and commits them with the completion record and outbox, once', async () => {
    const app = appName();
    const session = store.session(app);
    const t = session.table('items', spec);
    await t.put({ pk: 'p', sk: 2, v: 'two' });
    await t.put({ pk: 'p', sk: 1, v: 'one' });
    expect((await t.query('p')).map((i) => i.v)).toEqual(['one', 'two']);
    expect(await store.table(app, 'items', spec).get({ pk: 'p', sk: 1 })).toBeUndefined();

    const key = `test/${newEventId()}`;
    const outbox: CloudEvent[] = [{ specversion: '1.0', id: newEventId(), source: 's', type: 't' }];
    expect(await store.completion(app, 'f', key)).toBeUndefined();
    expect(await store.commit(app, session, { fn: 'f', key, outbox })).toEqual({ committed: true });
    expect((await store.table(app, 'items', spec).query('p')).map((i) => i.v)).toEqual(['one', 'two']);
    expect(await store.completion(app, 'f', key)).toEqual({ outbox });

    // A duplicate attempt of the same event commits nothing and is handed the outbox to re-publish.
    const again = store.session(app);
    await again.table('items', spec).put({ pk: 'p', sk: 3, v: 'three' });
    expect(await store.commit(app, again, { fn: 'f', key, outbox: [] })).toEqual({ committed: false, duplicate: { outbox } });
    expect(await store.table(app, 'items', spec).get({ pk: 'p', sk: 3 })).toBeUndefined();

    await store.clearOutboxes(app, [{ fn: 'f', key }]);
    expect(await store.completion(app, 'f', key)).toEqual({ outbox: null });
  });

  it('re-checks conditional writes at commit: a lost race is a ConditionFailedError and writes nothing', async () => {
    const app = appName();
    const direct = store.table(app, 'counts', table({ partitionKey: 'id' }));
    await direct.put({ id: 'c', n: 1 });
    const first = store.session(app);
    const second = store.session(app);
    for (const session of [first, second]) {
      const t = session.table('counts', table({ partitionKey: 'id' }));
      const current = await t.get({ id: 'c' });
      await t.put({ id: 'c', n: Number(current!.n) + 1 }, { ifMatch: { n: current!.n } });
      await t.put({ id: `side-${session === first ? 1 : 2}` });
    }
    await store.commit(app, first);
    await expect(store.commit(app, second)).rejects.toThrow(ConditionFailedError);
    expect(await direct.get({ id: 'c' })).toEqual({ id: 'c', n: 2 });
    expect(await direct.get({ id: 'side-2' })).toBeUndefined();

    // ifNotExists racing a concurrent create of the same key.
    const a = store.session(app);
    const b = store.session(app);
    await a.table('counts', table({ partitionKey: 'id' })).put({ id: 'new', by: 'a' }, { ifNotExists: true });
    await b.table('counts', table({ partitionKey: 'id' })).put({ id: 'new', by: 'b' }, { ifNotExists: true });
    const results = await Promise.allSettled([store.commit(app, a), store.commit(app, b)]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect((results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason).toBeInstanceOf(ConditionFailedError);
  });

  it('counts exactly under concurrent read-modify-write sessions that re-run on conflict', async () => {
    const app = appName();
    const spec = table({ partitionKey: 'id' });
    const increment = async () => {
      for (;;) {
        const session = store.session(app);
        const t = session.table('counts', spec);
        try {
          // The condition is checked at put (against what is committed now) and again at commit.
          const current = await t.get({ id: 'c' });
          await t.put({ id: 'c', n: Number(current?.n ?? 0) + 1 }, current ? { ifMatch: { n: current.n } } : { ifNotExists: true });
          return await store.commit(app, session);
        } catch (error) {
          if (!(error instanceof ConditionFailedError)) throw error;
        }
      }
    };
    await Promise.all(Array.from({ length: 20 }, increment));
    expect(await store.table(app, 'counts', spec).get({ id: 'c' })).toEqual({ id: 'c', n: 20 });
  });

  it('sweeps expired items', async () => {
    const app = appName();
    const t = store.table(app, 'items', spec);
    await t.put({ pk: 'p', sk: 1, expires: Date.now() / 1000 - 5 });
    const { rows } = await store.pool.query('SELECT count(*)::int AS n FROM petrel_items WHERE app = $1', [app]);
    expect(rows[0].n).toBe(1);
    expect(await store.sweep()).toBeGreaterThanOrEqual(1);
    const after = await store.pool.query('SELECT count(*)::int AS n FROM petrel_items WHERE app = $1', [app]);
    expect(after.rows[0].n).toBe(0);
  });

  it('says in one line when PostgreSQL is unreachable, without the password', async () => {
    const error = await PgStore.connect('postgres://user:secret@127.0.0.1:9/test').catch((e: Error) => e);
    expect(String(error)).toMatch(/PostgreSQL at postgres:\/\/user:\*\*\*@127\.0\.0\.1:9\/test is not usable/);
    expect(String(error)).not.toContain('secret');
  });
});
