import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { bucket, defineApp, fn, http, objectCreated, on, schedule, table, type App } from '../../core/app.js';
import { PermanentError } from '../../core/delivery.js';
import { newEventId, type CloudEvent } from '../../core/event.js';
import { ConditionFailedError } from '../../core/ports.js';
import { LOST_RACES, losingRacesApp } from '../../conformance/races.js';
import { LocalRuntime } from './runtime.js';

const silent = pino({ level: 'silent' });
const dirs: string[] = [];
const runtimes: LocalRuntime[] = [];

afterEach(async () => {
  await Promise.all(runtimes.splice(0).map((r) => r.stop()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'petrel-test-'));
  dirs.push(dir);
  return dir;
}

async function start(app: App, dataDir = tempDir(), options: { maxBacklog?: number; retainEvents?: number } = {}): Promise<LocalRuntime> {
  const runtime = await LocalRuntime.start(app, { dataDir, logger: silent, ...options });
  runtimes.push(runtime);
  return runtime;
}

function event(type: string, data: unknown = {}, extra: Partial<CloudEvent> = {}): CloudEvent {
  return { specversion: '1.0', id: newEventId(), source: 'test', type, data, ...extra };
}

const fast = { baseDelayMs: 1, maxDelayMs: 5 };

describe('embedded runtime delivery', () => {
  it('routes by pattern: a function sees only the events its pattern matches', async () => {
    const seen: string[] = [];
    const app = defineApp({
      name: 'routing',
      functions: {
        hot: fn({ trigger: on({ type: ['reading'], data: { pm25: [{ numeric: ['>=', 35.5] }] } }), handler: (e) => void seen.push(e.id) }),
      },
    });
    const runtime = await start(app);
    const events = [event('reading', { pm25: 40 }), event('reading', { pm25: 3 }), event('other', { pm25: 99 }), event('reading', { pm25: 3.55e1 })];
    await runtime.publish(events);
    await runtime.idle();
    expect(seen.sort()).toEqual([events[0].id, events[3].id].sort());
  });

  it('parses an event appended here for the function that takes it, not again to route it away by its type', async () => {
    const app = defineApp({
      name: 'parse-once',
      functions: {
        takes: fn({ trigger: on({ type: ['reading'] }), handler: () => undefined }),
        passes: fn({ trigger: on({ type: ['alert'] }), handler: () => undefined }),
      },
    });
    const runtime = await start(app);
    // An in-process listener as well (the console's alert feed).
    runtime.onEvent('alert', () => undefined);
    const events = Array.from({ length: 5 }, () => event('reading', { marker: 'parse-once' }));
    const parse = vi.spyOn(JSON, 'parse');
    try {
      await runtime.publish(events);
      await runtime.idle();
      const bodies = parse.mock.calls.filter(([text]) => typeof text === 'string' && text.includes('"marker":"parse-once"'));
      expect(bodies).toHaveLength(events.length);
    } finally {
      parse.mockRestore();
    }
  });

  it('gives each function its own copy of an event: one changing it changes nothing for another', async () => {
    const seen: unknown[] = [];
    const app = defineApp({
      name: 'copies',
      functions: {
        changes: fn({
          trigger: on({ type: ['t'] }),
          handler: (e) => {
            (e.data as { x: string }).x = 'changed';
            e.type = 'other';
          },
        }),
        reads: fn({ trigger: on({ type: ['t'], data: { x: ['original'] } }), handler: (e) => void seen.push([e.type, (e.data as { x: string }).x]) }),
      },
    });
    const runtime = await start(app);
    const watched: unknown[] = [];
    runtime.onEvent('t', (e) => watched.push((e.data as { x: string }).x));
    await runtime.publish([event('t', { x: 'original' }), event('t', { x: 'original' })]);
    await runtime.idle();
    expect(seen).toEqual([['t', 'original'], ['t', 'original']]);
    expect(watched).toEqual(['original', 'original']);
  });

  it('stores an item as it was when put, and gives each read a copy of its own', async () => {
    const seen: unknown[] = [];
    const app = defineApp({
      name: 'snapshots',
      resources: { state: table({ partitionKey: 'id' }) },
      functions: {
        writer: fn({
          trigger: on({ type: ['w'] }),
          uses: { state: 'write' },
          handler: async (_e, ctx) => {
            const item = { id: 'x', v: 1 };
            await ctx.tables.state.put(item);
            item.v = 2;
            const mine = (await ctx.tables.state.get({ id: 'x' }))!;
            mine.v = 3;
            seen.push((await ctx.tables.state.get({ id: 'x' }))!.v);
          },
        }),
        reader: fn({ trigger: on({ type: ['r'] }), uses: { state: 'read' }, handler: async (_e, ctx) => void seen.push((await ctx.tables.state.get({ id: 'x' }))!.v) }),
      },
    });
    const runtime = await start(app);
    await runtime.publish([event('w')]);
    await runtime.idle();
    await runtime.publish([event('r')]);
    await runtime.idle();
    expect(seen).toEqual([1, 1]);
  });

  it('retries a failing handler with increasing attempts, then succeeds', async () => {
    const attempts: number[] = [];
    const app = defineApp({
      name: 'retry',
      functions: {
        flaky: fn({
          trigger: on({ type: ['t'] }),
          retry: { maxAttempts: 5, ...fast },
          handler: (_e, ctx) => {
            attempts.push(ctx.attempt);
            if (ctx.attempt < 3) throw new Error(`fail ${ctx.attempt}`);
          },
        }),
      },
    });
    const runtime = await start(app);
    await runtime.publish([event('t')]);
    await runtime.idle();
    expect(attempts).toEqual([1, 2, 3]);
    expect(await runtime.deadLetters.list()).toEqual([]);
  });

  it('dead-letters after maxAttempts with every attempt, and redrive delivers it again', async () => {
    let healthy = false;
    const handled: string[] = [];
    const app = defineApp({
      name: 'dlq',
      functions: {
        broken: fn({
          trigger: on({ type: ['t'] }),
          retry: { maxAttempts: 3, ...fast },
          handler: (e, ctx) => {
            if (!healthy) throw new Error(`boom on attempt ${ctx.attempt}`);
            handled.push(e.id);
          },
        }),
      },
    });
    const runtime = await start(app);
    const input = event('t', { n: 1 });
    await runtime.publish([input]);
    await runtime.idle();
    const [letter] = await runtime.deadLetters.list();
    expect(letter.fn).toBe('broken');
    expect(letter.event).toEqual(input);
    expect(letter.attempts.map((a) => [a.attempt, a.error.message])).toEqual([
      [1, 'boom on attempt 1'],
      [2, 'boom on attempt 2'],
      [3, 'boom on attempt 3'],
    ]);
    for (const a of letter.attempts) expect(Number.isNaN(Date.parse(a.at))).toBe(false);
    expect(await runtime.deadLetters.get(letter.id)).toEqual(letter);

    healthy = true;
    expect(await runtime.deadLetters.redrive(letter.id)).toBe(true);
    await runtime.idle();
    expect(handled).toEqual([input.id]);
    expect(await runtime.deadLetters.list()).toEqual([]);
    expect(await runtime.deadLetters.redrive(letter.id)).toBe(false);
  });

  it('a permanent error skips the remaining retries', async () => {
    let calls = 0;
    const app = defineApp({
      name: 'permanent',
      functions: {
        strict: fn({
          trigger: on({ type: ['t'] }),
          retry: { maxAttempts: 5, ...fast },
          handler: () => {
            calls++;
            throw new PermanentError('bad payload');
          },
        }),
      },
    });
    const runtime = await start(app);
    await runtime.publish([event('t')]);
    await runtime.idle();
    expect(calls).toBe(1);
    const letters = await runtime.deadLetters.list('strict');
    expect(letters).toHaveLength(1);
    expect(letters[0].attempts[0].error).toEqual({ name: 'PermanentError', message: 'bad payload' });
  });

  it('runs an attempt again on fresh state after a failed conditional write, and says what it means when that never helps', async () => {
    const { app, runs } = losingRacesApp('conditions', { losses: Infinity, maxAttempts: 1, ordered: false });
    const runtime = await start(app);
    await runtime.publish([event('seed')]);
    await runtime.idle();
    await runtime.publish([event('t')]);
    await runtime.idle();
    // The first run, then 20 more on fresh state, all within the one attempt.
    expect(runs()).toBe(21);
    const [letter] = await runtime.deadLetters.list('later');
    expect(letter.attempts).toHaveLength(1);
    expect(letter.attempts[0].error.name).toBe('ConditionFailedError');
    expect(letter.attempts[0].error.message).toMatch(/^table "state": condition failed for key \["x"\], still after 20 runs on fresh state: either the condition cannot hold, or .*"later" runs up to \d+ at once; ordered: true/);
  });

  it('gives each attempt of an ordered function its own runs on fresh state', async () => {
    const { app, runs } = losingRacesApp('conditions-ordered');
    const runtime = await start(app);
    await runtime.publish([event('seed')]);
    await runtime.idle();
    await runtime.publish([event('t', {}, { partitionkey: 'x' })]);
    await runtime.idle();
    expect(runs()).toBe(LOST_RACES + 1);
    expect(await runtime.deadLetters.list('later')).toEqual([]);
  });

  it('redriveAll puts back every dead letter of a function', async () => {
    let healthy = false;
    let handled = 0;
    const app = defineApp({
      name: 'redrive-all',
      functions: {
        f: fn({
          trigger: on({ type: ['t'] }),
          retry: { maxAttempts: 1 },
          handler: () => {
            if (!healthy) throw new Error('down');
            handled++;
          },
        }),
      },
    });
    const runtime = await start(app);
    await runtime.publish([event('t'), event('t'), event('t')]);
    await runtime.idle();
    expect(await runtime.deadLetters.list()).toHaveLength(3);
    healthy = true;
    expect(await runtime.deadLetters.redriveAll('f')).toBe(3);
    await runtime.idle();
    expect(handled).toBe(3);
  });

  it('handles an event id once per function, however often it is delivered', async () => {
    const app = defineApp({
      name: 'dedupe',
      resources: { counts: table({ partitionKey: 'id' }) },
      functions: {
        count: fn({
          trigger: on({ type: ['t'] }),
          uses: { counts: 'write' },
          emits: ['counted'],
          handler: async (_e, ctx) => {
            const current = await ctx.tables.counts.get({ id: 'all' });
            await ctx.tables.counts.put({ id: 'all', n: Number(current?.n ?? 0) + 1 }, current ? { ifMatch: { n: current.n } } : { ifNotExists: true });
            ctx.emit('counted', {});
          },
        }),
        read: fn({ trigger: http('GET', '/count'), uses: { counts: 'read' }, handler: async (_e, ctx) => ({ body: await ctx.tables.counts.get({ id: 'all' }) }) }),
      },
    });
    const runtime = await start(app);
    const once = event('t');
    await runtime.publish([once, { ...once }, event('t')]);
    await runtime.publish([{ ...once }]);
    await runtime.idle();
    const response = await runtime.invokeHttp(app.function('read')!, event('petrel.http.request', { query: {} }));
    expect(response.body).toEqual({ id: 'all', n: 2 });
    const counted = runtime.events().filter((e) => e.event.type === 'counted');
    expect(counted).toHaveLength(2);
  });

  it('emits events with ids derived from the input, its causation and its trace', async () => {
    const app = defineApp({
      name: 'emit',
      functions: {
        first: fn({ trigger: on({ type: ['a'] }), emits: ['b'], handler: (e, ctx) => ctx.emit('b', { from: e.id }, { partitionkey: 'p1' }) }),
      },
    });
    const runtime = await start(app);
    const input = event('a', {}, { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', ingesttime: '2026-11-28T10:00:00.000Z' });
    await runtime.publish([input]);
    await runtime.idle();
    const [out] = runtime.events().filter((e) => e.event.type === 'b').map((e) => e.event);
    expect(out.causationid).toBe(input.id);
    expect(out.source).toBe('petrel/emit/first');
    expect(out.partitionkey).toBe('p1');
    expect(out.ingesttime).toBe(input.ingesttime);
    expect(out.traceparent).toMatch(/^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/);
    expect(out.traceparent).not.toBe(input.traceparent);
    // The id is a function of (input id, function, position): a retry would emit the same one.
    const { deriveEventId } = await import('../../core/event.js');
    expect(out.id).toBe(deriveEventId(input.id, 'first', 0));
  });

  it('publishes emitted events only when the handler succeeds', async () => {
    const app = defineApp({
      name: 'emit-on-success',
      functions: {
        f: fn({
          trigger: on({ type: ['a'] }),
          emits: ['b'],
          retry: { maxAttempts: 2, ...fast },
          handler: (_e, ctx) => {
            ctx.emit('b', { attempt: ctx.attempt });
            if (ctx.attempt === 1) throw new Error('first attempt fails after emitting');
          },
        }),
      },
    });
    const runtime = await start(app);
    await runtime.publish([event('a')]);
    await runtime.idle();
    const emitted = runtime.events().filter((e) => e.event.type === 'b');
    expect(emitted.map((e) => e.event.data)).toEqual([{ attempt: 2 }]);
  });

  it('dead-letters a handler that emits a type it did not declare', async () => {
    const app = defineApp({
      name: 'undeclared',
      functions: { f: fn({ trigger: on({ type: ['a'] }), emits: ['b'], handler: (_e, ctx) => ctx.emit('c', {}) }) },
    });
    const runtime = await start(app);
    await runtime.publish([event('a')]);
    await runtime.idle();
    const [letter] = await runtime.deadLetters.list();
    expect(letter.attempts).toHaveLength(1);
    expect(letter.attempts[0].error.message).toContain('emitted "c", which is not in its emits (b)');
    expect(runtime.events().some((e) => e.event.type === 'c')).toBe(false);
  });

  it('times out a slow handler, aborts its signal, and discards its late writes', async () => {
    let aborted = false;
    const app = defineApp({
      name: 'timeout',
      resources: { t: table({ partitionKey: 'id' }) },
      functions: {
        slow: fn({
          trigger: on({ type: ['a'] }),
          uses: { t: 'write' },
          timeoutMs: 30,
          retry: { maxAttempts: 2, ...fast },
          handler: async (_e, ctx) => {
            await new Promise((resolve) => setTimeout(resolve, 80));
            aborted ||= ctx.signal.aborted;
            await ctx.tables.t.put({ id: `late-${ctx.attempt}` });
          },
        }),
        read: fn({ trigger: http('GET', '/t'), uses: { t: 'read' }, handler: async (_e, ctx) => ({ body: await ctx.tables.t.query('late-1') }) }),
      },
    });
    const runtime = await start(app);
    await runtime.publish([event('a')]);
    await runtime.idle();
    await new Promise((resolve) => setTimeout(resolve, 120));
    const [letter] = await runtime.deadLetters.list();
    expect(letter.attempts.map((a) => a.error.name)).toEqual(['TimeoutError', 'TimeoutError']);
    expect(aborted).toBe(true);
    const response = await runtime.invokeHttp(app.function('read')!, event('petrel.http.request'));
    expect(response.body).toEqual([]);
  });

  it('never runs more invocations of a function at once than its concurrency', async () => {
    let running = 0;
    let peak = 0;
    const app = defineApp({
      name: 'concurrency',
      functions: {
        f: fn({
          trigger: on({ type: ['a'] }),
          concurrency: 3,
          handler: async () => {
            running++;
            peak = Math.max(peak, running);
            await new Promise((resolve) => setTimeout(resolve, 5));
            running--;
          },
        }),
      },
    });
    const runtime = await start(app);
    await runtime.publish(Array.from({ length: 30 }, () => event('a')));
    await runtime.idle();
    expect(peak).toBe(3);
  });

  it('delivers in order per partition key to an ordered function, even across retries', async () => {
    const seen = new Map<string, number[]>();
    const failedOnce = new Set<string>();
    const app = defineApp({
      name: 'ordered',
      functions: {
        f: fn({
          trigger: on({ type: ['a'] }),
          ordered: true,
          concurrency: 4,
          retry: { maxAttempts: 3, ...fast },
          handler: async (e) => {
            const { key, n } = e.data as { key: string; n: number };
            // Every third event fails once: later events of its key must wait for it.
            if (n % 3 === 0 && !failedOnce.has(e.id)) {
              failedOnce.add(e.id);
              throw new Error('transient');
            }
            await new Promise((resolve) => setTimeout(resolve, Math.random() * 3));
            seen.set(key, [...(seen.get(key) ?? []), n]);
          },
        }),
      },
    });
    const runtime = await start(app);
    const events = [];
    for (let n = 0; n < 20; n++) for (const key of ['k1', 'k2', 'k3']) events.push(event('a', { key, n }, { partitionkey: key }));
    await runtime.publish(events);
    await runtime.idle();
    const expected = Array.from({ length: 20 }, (_, n) => n);
    for (const key of ['k1', 'k2', 'k3']) expect(seen.get(key)).toEqual(expected);
  });

  it('runs a busy partition in batches that read each other\'s writes, commit together, and survive a duplicate inside', async () => {
    let ranBeforePredecessorCommitted = 0;
    const log: { runtime?: LocalRuntime } = {};
    const app = defineApp({
      name: 'batched',
      resources: { counts: table({ partitionKey: 'key' }) },
      functions: {
        count: fn({
          trigger: on({ type: ['a'] }),
          uses: { counts: 'write' },
          emits: ['counted'],
          ordered: true,
          handler: async (e, ctx) => {
            const { key, n } = e.data as { key: string; n: number };
            const item = (await ctx.tables.counts.get({ key })) ?? { key, total: 0, order: [] as number[] };
            // The previous event's output is not in the log yet: it commits with this one.
            if (n > 0 && !log.runtime!.events(0, 10_000).some(({ event }) => event.type === 'counted' && (event.data as { n: number }).n === n - 1 && (event.data as { key: string }).key === key)) ranBeforePredecessorCommitted++;
            await ctx.tables.counts.put({ key, total: Number(item.total) + 1, order: [...(item.order as number[]), n] });
            ctx.emit('counted', { key, n });
          },
        }),
        // Downstream of the batches (one partition: its own batches, conditional writes within).
        tally: fn({
          trigger: on({ type: ['counted'] }),
          uses: { counts: 'write' },
          ordered: true,
          handler: async (_e, ctx) => {
            const current = await ctx.tables.counts.get({ key: 'tally' });
            await ctx.tables.counts.put({ key: 'tally', total: Number(current?.total ?? 0) + 1 }, current ? { ifMatch: { total: current.total } } : { ifNotExists: true });
          },
        }),
        read: fn({
          trigger: http('GET', '/counts'),
          uses: { counts: 'read' },
          handler: async (_e, ctx) => ({ body: await Promise.all(['k1', 'k2', 'tally'].map((key) => ctx.tables.counts.get({ key }))) }),
        }),
      },
    });
    const runtime = (log.runtime = await start(app));
    const events = [];
    for (let n = 0; n < 200; n++) for (const key of ['k1', 'k2']) events.push(event('a', { key, n }, { partitionkey: key }));
    // One event delivered twice, in the middle of its partition's backlog: counted once.
    events.splice(101, 0, { ...events[100] });
    await runtime.publish(events);
    await runtime.idle();
    for (const key of ['k1', 'k2']) {
      const rows = runtime.events(0, 10_000).filter(({ event }) => event.type === 'counted' && (event.data as { key: string }).key === key);
      expect(rows.map(({ event }) => (event.data as { n: number }).n)).toEqual(Array.from({ length: 200 }, (_, n) => n));
    }
    expect(ranBeforePredecessorCommitted).toBeGreaterThan(0);
    const [k1, k2, tally] = (await runtime.invokeHttp(app.function('read')!, event('petrel.http.request'))).body as Array<Record<string, unknown>>;
    expect(k1).toEqual({ key: 'k1', total: 200, order: Array.from({ length: 200 }, (_, n) => n) });
    expect(k2).toMatchObject({ key: 'k2', total: 200 });
    expect(tally).toEqual({ key: 'tally', total: 400 });
  });

  it('applies concurrent read-modify-writes exactly once each (conditional writes re-run on conflict)', async () => {
    const app = defineApp({
      name: 'counter',
      resources: { counts: table({ partitionKey: 'id' }) },
      functions: {
        inc: fn({
          trigger: on({ type: ['inc'] }),
          uses: { counts: 'write' },
          concurrency: 8,
          handler: async (_e, ctx) => {
            const current = await ctx.tables.counts.get({ id: 'c' });
            await new Promise((resolve) => setTimeout(resolve, Math.random() * 2));
            await ctx.tables.counts.put({ id: 'c', n: Number(current?.n ?? 0) + 1 }, current ? { ifMatch: { n: current.n } } : { ifNotExists: true });
          },
        }),
        read: fn({ trigger: http('GET', '/c'), uses: { counts: 'read' }, handler: async (_e, ctx) => ({ body: await ctx.tables.counts.get({ id: 'c' }) }) }),
      },
    });
    const runtime = await start(app);
    await runtime.publish(Array.from({ length: 50 }, () => event('inc')));
    await runtime.idle();
    const response = await runtime.invokeHttp(app.function('read')!, event('petrel.http.request'));
    expect(response.body).toEqual({ id: 'c', n: 50 });
  });

  it('resumes after a restart with nothing lost and nothing applied twice', async () => {
    const dataDir = tempDir();
    const handled: string[] = [];
    const app = defineApp({
      name: 'restart',
      resources: { seen: table({ partitionKey: 'id' }) },
      functions: {
        f: fn({
          trigger: on({ type: ['a'] }),
          uses: { seen: 'write' },
          emits: ['done'],
          handler: async (e, ctx) => {
            await new Promise((resolve) => setTimeout(resolve, 1));
            handled.push(e.id);
            await ctx.tables.seen.put({ id: e.id });
            ctx.emit('done', {});
          },
        }),
      },
    });
    const first = await start(app, dataDir);
    const events = Array.from({ length: 300 }, () => event('a'));
    await first.publish(events);
    await new Promise((resolve) => setTimeout(resolve, 20));
    await first.stop();
    const before = handled.length;
    expect(before).toBeLessThan(300);
    const second = await start(app, dataDir);
    await second.idle();
    expect(new Set(handled).size).toBe(300);
    const done = second.events(0, 10_000).filter((e) => e.event.type === 'done');
    expect(done).toHaveLength(300);
    expect(new Set(done.map((e) => e.event.id)).size).toBe(300);
  });
});

describe('embedded runtime resources', () => {
  const resources = { items: table({ partitionKey: 'pk', sortKey: 'sk', ttlAttribute: 'expires' }), files: bucket() };

  it('tables: keys that differ only in where a separator would fall are different items', async () => {
    // Under a "table NUL pk NUL sk" key these two spelled the same.
    const first = { pk: 'a\u0000sb', sk: 'c' };
    const second = { pk: 'a', sk: 'b\u0000sc' };
    const seen: unknown[] = [];
    const app = defineApp({
      name: 'keys',
      resources,
      functions: {
        write: fn({
          trigger: on({ type: ['write'] }),
          uses: { items: 'write' },
          handler: async (_e, ctx) => {
            await ctx.tables.items.put({ ...first, v: 1 });
            await ctx.tables.items.put({ ...second, v: 2 });
            seen.push((await ctx.tables.items.get(first))?.v, (await ctx.tables.items.get(second))?.v);
          },
        }),
        read: fn({
          trigger: on({ type: ['read'] }),
          uses: { items: 'read' },
          handler: async (_e, ctx) => void seen.push((await ctx.tables.items.get(first))?.v, (await ctx.tables.items.get(second))?.v),
        }),
      },
    });
    const runtime = await start(app);
    await runtime.publish([event('write')]);
    await runtime.idle();
    // Twice: the first read fills the recent items, the second is served from them.
    await runtime.publish([event('read')]);
    await runtime.idle();
    await runtime.publish([event('read')]);
    await runtime.idle();
    expect(seen).toEqual([1, 2, 1, 2, 1, 2]);
  });

  it('tables: get, conditional put, query with sort-key ranges, delete, TTL', async () => {
    const results: Record<string, unknown> = {};
    const app = defineApp({
      name: 'tables',
      resources,
      functions: {
        f: fn({
          trigger: on({ type: ['go'] }),
          uses: { items: 'write' },
          handler: async (_e, ctx) => {
            const t = ctx.tables.items;
            for (const sk of [3, 1, 2, 10]) await t.put({ pk: 'a', sk, v: sk });
            await t.put({ pk: 'a', sk: 4, v: 'gone', expires: Math.floor(Date.now() / 1000) - 1 });
            await t.put({ pk: 'b', sk: 'x-1' });
            await t.put({ pk: 'b', sk: 'x-2' });
            await t.put({ pk: 'b', sk: 'y-1' });
            results.numeric = (await t.query('a')).map((i) => i.sk);
            results.reverse = (await t.query('a', { reverse: true, limit: 2 })).map((i) => i.sk);
            results.between = (await t.query('a', { sortKey: { between: [2, 3] } })).map((i) => i.sk);
            results.prefix = (await t.query('b', { sortKey: { beginsWith: 'x-' } })).map((i) => i.sk);
            results.expired = await t.get({ pk: 'a', sk: 4 });
            await expect(t.put({ pk: 'a', sk: 1, v: 0 }, { ifNotExists: true })).rejects.toThrow(ConditionFailedError);
            await expect(t.put({ pk: 'a', sk: 1, v: 0 }, { ifMatch: { v: 99 } })).rejects.toThrow(ConditionFailedError);
            await t.put({ pk: 'a', sk: 1, v: 11 }, { ifMatch: { v: 1 } });
            await t.delete({ pk: 'a', sk: 2 });
          },
        }),
        check: fn({
          trigger: on({ type: ['check'] }),
          uses: { items: 'read' },
          handler: async (_e, ctx) => {
            results.committed = (await ctx.tables.items.query('a')).map((i) => [i.sk, i.v]);
            results.readOnly = await (ctx.tables.items as unknown as { put: (i: object) => Promise<void> }).put({ pk: 'z', sk: 1 }).catch((e: Error) => e.message);
          },
        }),
      },
    });
    const runtime = await start(app);
    await runtime.publish([event('go')]);
    await runtime.idle();
    await runtime.publish([event('check')]);
    await runtime.idle();
    expect(results).toEqual({
      numeric: [1, 2, 3, 10],
      reverse: [10, 3],
      between: [2, 3],
      prefix: ['x-1', 'x-2'],
      expired: undefined,
      committed: [[1, 11], [3, 3], [10, 10]],
      readOnly: `"items" is granted read-only; put needs uses: { items: 'write' }`,
    });
  });

  it('buckets: a put triggers objectCreated functions filtered by prefix and suffix', async () => {
    const created: string[] = [];
    const app = defineApp({
      name: 'buckets',
      resources,
      functions: {
        upload: fn({
          trigger: on({ type: ['upload'] }),
          uses: { files: 'write' },
          handler: async (e, ctx) => {
            for (const key of e.data as string[]) await ctx.buckets.files.put(key, `body of ${key}`);
          },
        }),
        onCsv: fn({
          trigger: objectCreated('files', { prefix: 'in/', suffix: '.csv' }),
          uses: { files: 'read' },
          handler: async (e, ctx) => {
            const { key } = e.data as { key: string };
            created.push(`${key}=${Buffer.from((await ctx.buckets.files.get(key))!).toString()}`);
          },
        }),
      },
    });
    const runtime = await start(app);
    await runtime.publish([event('upload', ['in/a.csv', 'in/b.txt', 'out/c.csv', 'in/deep/d.csv'])]);
    await runtime.idle();
    expect(created.sort()).toEqual(['in/a.csv=body of in/a.csv', 'in/deep/d.csv=body of in/deep/d.csv']);
  });

  it('schedule triggers fire once per period', async () => {
    const fired: string[] = [];
    const app = defineApp({
      name: 'schedule',
      functions: { tick: fn({ trigger: schedule('rate(1 second)'), handler: (e) => void fired.push(e.time!) }) },
    });
    await start(app);
    await new Promise((resolve) => setTimeout(resolve, 3200));
    expect(fired.length).toBeGreaterThanOrEqual(2);
    expect(new Set(fired).size).toBe(fired.length);
  });

  it('truncates the log to what it retains faster than events arrive at thousands a second', async () => {
    const app = defineApp({ name: 'truncate', functions: { f: fn({ trigger: on({ type: ['a'] }), handler: async () => undefined }) } });
    const runtime = await start(app, tempDir(), { retainEvents: 100 });
    for (let i = 0; i < 12; i++) await runtime.publish(Array.from({ length: 500 }, () => event('a')));
    await runtime.idle();
    // 6,000 settled events, 100 retained: gone within 3 s (at 1,000 a second it took 6).
    const until = Date.now() + 3_000;
    while (runtime.events(0, 10_000).length > 100 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(runtime.events(0, 10_000)).toHaveLength(100);
  });

  it('sheds load with overloaded() when a backlog passes its bound', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const app = defineApp({
      name: 'backlog',
      functions: { slow: fn({ trigger: on({ type: ['a'] }), concurrency: 1, handler: () => gate }) },
    });
    const runtime = await start(app, tempDir(), { maxBacklog: 10 });
    expect(runtime.overloaded()).toBe(false);
    await runtime.publish(Array.from({ length: 20 }, () => event('a')));
    expect(runtime.overloaded()).toBe(true);
    release();
    await runtime.idle();
    expect(runtime.overloaded()).toBe(false);
  });
});
