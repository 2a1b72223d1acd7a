/**
 * The delivery conformance suite: DESIGN.md's delivery contract as one set of cases, run against
 * every target. Effects are read through the app's own tables and http functions, so any target
 * that serves the app can be checked the same way.
 *
 * @example
 * describeDeliveryConformance('embedded', { start: (app) => startLocal(app) });
 */
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { defineApp, fn, http, on, table, type App, type FunctionSpec } from '../core/app.js';
import { PermanentError } from '../core/delivery.js';
import { deriveEventId, newEventId, traceIdOf, type CloudEvent } from '../core/event.js';
import type { Item } from '../core/ports.js';
import type { DeadLetterAdmin } from '../adapters/http/types.js';

/** A target running one app. */
export interface RunningTarget {
  /** Base URL of its HTTP ingress: POST /events and the app's http triggers. */
  url: string;
  /** Resolves once the events are durable. */
  publish(events: CloudEvent[]): Promise<void>;
  /** Resolves when every function has settled every event published so far, retries included. */
  idle(timeoutMs?: number): Promise<void>;
  deadLetters: DeadLetterAdmin;
  /** Stops gracefully (in-flight work finishes). */
  stop(): Promise<void>;
  /** Stops abruptly: whatever is in flight is abandoned unsettled, as a crash would leave it. */
  crash(): Promise<void>;
}

export interface ConformanceTarget {
  /** Starts the app; starting the same app again after stop/crash resumes its durable state. */
  start(app: App): Promise<RunningTarget>;
  /** Called once after the suite: remove what the apps left behind. */
  cleanup?(apps: App[]): Promise<void>;
}

/** Fast retry policy: the suite proves the contract, not the default delays. */
const FAST = { baseDelayMs: 5, maxDelayMs: 20 };
const rows = table({ partitionKey: 'pk', sortKey: 'sk' });

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- functions of different `uses`
type Functions = Record<string, FunctionSpec<any, any>>;

/** Every case app: a `rows` table and GET /rows/:pk to read a partition. */
function caseApp(name: string, functions: Functions): App {
  return defineApp({
    name,
    resources: { rows },
    functions: {
      ...functions,
      read: fn({ trigger: http('GET', '/rows/:pk'), uses: { rows: 'read' }, handler: async (e, ctx) => ({ body: await ctx.tables.rows.query((e.data as { params: { pk: string } }).params.pk) }) }),
    },
  });
}

/** Adds 1 to a counter row, with a conditional write so concurrent increments never get lost. */
async function increment(ctx: { tables: { rows: import('../core/ports.js').Table } }, pk: string, sk: string): Promise<void> {
  const current = await ctx.tables.rows.get({ pk, sk });
  const n = Number(current?.n ?? 0) + 1;
  await ctx.tables.rows.put({ pk, sk, n }, current ? { ifMatch: { n: current.n } } : { ifNotExists: true });
}

function event(type: string, data: unknown = {}, extra: Partial<CloudEvent> = {}): CloudEvent {
  return { specversion: '1.0', id: newEventId(), source: 'conformance', type, data, ...extra };
}

export function describeDeliveryConformance(targetName: string, target: ConformanceTarget, options: { skip?: boolean } = {}): void {
  describe.skipIf(options.skip)(`delivery conformance: ${targetName}`, () => {
    const running: RunningTarget[] = [];
    const apps: App[] = [];
    const run = randomUUID().slice(0, 6);
    const appName = (name: string) => `c${run}-${name}`;

    const start = async (app: App): Promise<RunningTarget> => {
      if (!apps.includes(app)) apps.push(app);
      const started = await target.start(app);
      running.push(started);
      return started;
    };
    const read = async (t: RunningTarget, pk: string): Promise<Item[]> => {
      const response = await fetch(`${t.url}/rows/${encodeURIComponent(pk)}`);
      expect(response.status).toBe(200);
      return (await response.json()) as Item[];
    };
    const postEvents = async (t: RunningTarget, events: CloudEvent[]) => {
      const response = await fetch(`${t.url}/events`, { method: 'POST', headers: { 'content-type': 'application/cloudevents-batch+json' }, body: JSON.stringify(events) });
      expect(response.status).toBe(202);
    };

    afterEach(async () => {
      await Promise.all(running.splice(0).map((t) => t.stop().catch(() => undefined)));
    });
    afterAll(async () => {
      await target.cleanup?.(apps);
    });

    it('routes by pattern: each function sees exactly the events its pattern matches', async () => {
      const record = (name: string) => fn({ trigger: on(patterns[name]), uses: { rows: 'write' }, handler: async (e, ctx) => ctx.tables.rows.put({ pk: name, sk: e.id }) });
      const patterns: Record<string, Record<string, unknown>> = {
        exact: { type: ['conf.a'] },
        anyOf: { type: ['conf.a', 'conf.b'] },
        numeric: { type: ['conf.a'], data: { n: [{ numeric: ['>=', 10] }] } },
        prefixed: { type: [{ prefix: 'conf.' }], source: ['special'] },
      };
      const t = await start(caseApp(appName('routing'), Object.fromEntries(Object.keys(patterns).map((name) => [name, record(name)]))));
      const e = [
        event('conf.a', { n: 5 }),
        event('conf.a', { n: 20 }),
        event('conf.b', { n: 50 }, { source: 'special' }),
        event('conf.c', {}, { source: 'special' }),
        event('other.type', { n: 100 }, { source: 'special' }),
        // Characters a NATS subject cannot hold must still route.
        event('conf.odd type/é..*>', {}, { source: 'special' }),
      ];
      await t.publish(e);
      await t.idle();
      const ids = async (pk: string) => (await read(t, pk)).map((row) => row.sk).sort();
      expect(await ids('exact')).toEqual([e[0].id, e[1].id].sort());
      expect(await ids('anyOf')).toEqual([e[0].id, e[1].id, e[2].id].sort());
      expect(await ids('numeric')).toEqual([e[1].id]);
      expect(await ids('prefixed')).toEqual([e[2].id, e[3].id, e[5].id].sort());
    });

    it('retries with backoff, counting attempts, until the handler succeeds', async () => {
      const t = await start(
        caseApp(appName('retry'), {
          flaky: fn({
            trigger: on({ type: ['conf.flaky'] }),
            uses: { rows: 'write' },
            retry: { maxAttempts: 5, ...FAST },
            handler: async (e, ctx) => {
              if (ctx.attempt < 3) throw new Error(`fail ${ctx.attempt}`);
              await ctx.tables.rows.put({ pk: 'done', sk: e.id, attempt: ctx.attempt });
            },
          }),
        }),
      );
      const input = event('conf.flaky');
      await t.publish([input]);
      await t.idle();
      expect(await read(t, 'done')).toEqual([{ pk: 'done', sk: input.id, attempt: 3 }]);
      expect(await t.deadLetters.list()).toEqual([]);
    });

    it('dead-letters after the last attempt with every attempt, and redrives to that function only', async () => {
      const maxDelayMs = 20;
      const t = await start(
        caseApp(appName('dlq'), {
          broken: fn({
            trigger: on({ type: ['conf.work'] }),
            uses: { rows: 'write' },
            retry: { maxAttempts: 3, baseDelayMs: 5, maxDelayMs },
            handler: async (e, ctx) => {
              if (!(await ctx.tables.rows.get({ pk: 'switch', sk: 'healthy' }))) throw new Error(`boom on attempt ${ctx.attempt}`);
              await ctx.tables.rows.put({ pk: 'broken', sk: e.id });
            },
          }),
          steady: fn({ trigger: on({ type: ['conf.work'] }), uses: { rows: 'write' }, handler: async (e, ctx) => increment(ctx, 'steady', e.id) }),
          heal: fn({ trigger: on({ type: ['conf.heal'] }), uses: { rows: 'write' }, handler: async (_e, ctx) => ctx.tables.rows.put({ pk: 'switch', sk: 'healthy' }) }),
        }),
      );
      const input = event('conf.work', { n: 1 }, { partitionkey: 'p' });
      await t.publish([input]);
      await t.idle();
      const letters = await t.deadLetters.list();
      expect(letters).toHaveLength(1);
      const [letter] = letters;
      expect(letter.fn).toBe('broken');
      expect(letter.event).toMatchObject(input);
      expect(letter.attempts.map((a) => [a.attempt, a.error.message])).toEqual([
        [1, 'boom on attempt 1'],
        [2, 'boom on attempt 2'],
        [3, 'boom on attempt 3'],
      ]);
      // Attempts follow each other (full jitter has no positive lower bound on a delay), each
      // after the previous ended and within the policy's backoff caps plus handling time.
      const times = letter.attempts.map((a) => Date.parse(a.at));
      for (let i = 1; i < times.length; i++) {
        expect(times[i]).toBeGreaterThanOrEqual(times[i - 1]);
        expect(times[i] - times[i - 1]).toBeLessThan(maxDelayMs + 5000);
      }
      expect(await t.deadLetters.get(letter.id)).toEqual(letter);
      expect(await t.deadLetters.list('steady')).toEqual([]);

      await t.publish([event('conf.heal')]);
      await t.idle();
      expect(await t.deadLetters.redrive(letter.id)).toBe(true);
      await t.idle();
      expect((await read(t, 'broken')).map((r) => r.sk)).toEqual([input.id]);
      expect(await read(t, 'steady')).toEqual([{ pk: 'steady', sk: input.id, n: 1 }]);
      expect(await t.deadLetters.list()).toEqual([]);
      expect(await t.deadLetters.redrive(letter.id)).toBe(false);
    });

    it('a permanent error skips the remaining retries', async () => {
      const t = await start(
        caseApp(appName('permanent'), {
          strict: fn({
            trigger: on({ type: ['conf.bad'] }),
            retry: { maxAttempts: 5, ...FAST },
            handler: () => {
              throw new PermanentError('bad payload');
            },
          }),
        }),
      );
      const input = event('conf.bad');
      await t.publish([input]);
      await t.idle();
      const letters = await t.deadLetters.list('strict');
      expect(letters).toHaveLength(1);
      expect(letters[0].event.id).toBe(input.id);
      expect(letters[0].attempts.map((a) => [a.attempt, a.error])).toEqual([[1, { name: 'PermanentError', message: 'bad payload' }]]);
    });

    const countingApp = (name: string, options: { slowMs?: number } = {}) =>
      caseApp(appName(name), {
        count: fn({
          trigger: on({ type: ['conf.count'] }),
          uses: { rows: 'write' },
          emits: ['conf.counted'],
          concurrency: 4,
          timeoutMs: 1000,
          handler: async (e, ctx) => {
            if (options.slowMs) await new Promise((resolve) => setTimeout(resolve, options.slowMs));
            await increment(ctx, 'total', 'count');
            await increment(ctx, 'per-event', e.id);
            ctx.emit('conf.counted', { from: e.id });
          },
        }),
        tally: fn({
          trigger: on({ type: ['conf.counted'] }),
          uses: { rows: 'write' },
          timeoutMs: 1000,
          handler: async (e, ctx) => {
            await increment(ctx, 'total', 'tally');
            await increment(ctx, 'tallied', e.id);
          },
        }),
      });

    const expectCountedOnce = async (t: RunningTarget, inputs: CloudEvent[]) => {
      const totals = Object.fromEntries((await read(t, 'total')).map((row) => [row.sk, row.n]));
      expect(totals).toEqual({ count: inputs.length, tally: inputs.length });
      const perEvent = await read(t, 'per-event');
      expect(perEvent.map((row) => row.sk).sort()).toEqual(inputs.map((e) => e.id).sort());
      expect(perEvent.every((row) => row.n === 1)).toBe(true);
      const tallied = await read(t, 'tallied');
      expect(tallied.map((row) => row.sk).sort()).toEqual(inputs.map((e) => deriveEventId(e.id, 'count', 0)).sort());
      expect(tallied.every((row) => row.n === 1)).toBe(true);
    };

    it('applies effects exactly once when the same event id is delivered again', async () => {
      const t = await start(countingApp('dupes'));
      const inputs = Array.from({ length: 5 }, () => event('conf.count'));
      await t.publish(inputs);
      await t.publish([{ ...inputs[0] }, { ...inputs[1] }]);
      await postEvents(t, [inputs[0], inputs[2]]);
      await t.idle();
      // Again after the first deliveries have completed.
      await t.publish([{ ...inputs[3] }]);
      await postEvents(t, [inputs[4]]);
      await t.idle();
      await expectCountedOnce(t, inputs);
    });

    it('applies effects exactly once across a crash and restart of the runtime', async () => {
      const app = countingApp('crash', { slowMs: 10 });
      let t = await start(app);
      const inputs = Array.from({ length: 60 }, () => event('conf.count'));
      await t.publish(inputs);
      for (let i = 0; i < 500; i++) {
        const counted = (await read(t, 'total')).find((row) => row.sk === 'count');
        if (Number(counted?.n ?? 0) >= 5) break;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await t.crash();
      t = await start(app);
      await t.idle(30_000);
      await expectCountedOnce(t, inputs);
    }, 60_000);

    it('accepted means durable: events answered 2xx are delivered after an immediate stop and restart', async () => {
      const app = caseApp(appName('durable'), {
        // A short timeout keeps NATS's ack wait (timeout + 2 s) inside idle()'s 15 s: a message the
        // server sends as the stopping consumer unsubscribes comes back only after it.
        store: fn({ trigger: on({ type: ['conf.keep'] }), uses: { rows: 'write' }, timeoutMs: 5000, handler: async (e, ctx) => ctx.tables.rows.put({ pk: 'kept', sk: e.id }) }),
      });
      let t = await start(app);
      const inputs = Array.from({ length: 20 }, () => event('conf.keep'));
      await postEvents(t, inputs);
      await t.stop();
      t = await start(app);
      await t.idle();
      expect((await read(t, 'kept')).map((row) => row.sk).sort()).toEqual(inputs.map((e) => e.id).sort());
    });

    it('delivers in order per partition key to an ordered function, even across retries', async () => {
      const t = await start(
        caseApp(appName('ordered'), {
          append: fn({
            trigger: on({ type: ['conf.seq'] }),
            uses: { rows: 'write' },
            ordered: true,
            concurrency: 4,
            retry: { maxAttempts: 3, ...FAST },
            handler: async (e, ctx) => {
              const { key, n } = e.data as { key: string; n: number };
              // Every third event fails once: later events of its key must wait for it.
              if (n % 3 === 0 && ctx.attempt === 1) throw new Error('transient');
              const current = await ctx.tables.rows.get({ pk: 'seq', sk: key });
              const seen = [...((current?.seen as number[]) ?? []), n];
              await ctx.tables.rows.put({ pk: 'seq', sk: key, seen }, current ? { ifMatch: { seen: current.seen } } : { ifNotExists: true });
            },
          }),
        }),
      );
      const events: CloudEvent[] = [];
      for (let n = 0; n < 10; n++) for (const key of ['k1', 'k2', 'k3']) events.push(event('conf.seq', { key, n }, { partitionkey: key }));
      await t.publish(events);
      await t.idle(30_000);
      const expected = Array.from({ length: 10 }, (_, n) => n);
      expect(await read(t, 'seq')).toEqual(['k1', 'k2', 'k3'].map((key) => ({ pk: 'seq', sk: key, seen: expected })));
    });

    it('emits events with ids derived from the input, carrying causation, trace and partition key', async () => {
      const t = await start(
        caseApp(appName('emit'), {
          first: fn({ trigger: on({ type: ['conf.in'] }), emits: ['conf.out'], handler: (e, ctx) => ctx.emit('conf.out', { from: e.id }, { partitionkey: 'p1' }) }),
          second: fn({
            trigger: on({ type: ['conf.out'] }),
            uses: { rows: 'write' },
            handler: async (e, ctx) => ctx.tables.rows.put({ pk: 'out', sk: e.id, causationid: e.causationid, traceparent: e.traceparent, partitionkey: e.partitionkey, source: e.source, data: e.data }),
          }),
        }),
      );
      const input = event('conf.in', {}, { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
      await t.publish([input]);
      await t.idle();
      const [out] = await read(t, 'out');
      expect(out).toMatchObject({ sk: deriveEventId(input.id, 'first', 0), causationid: input.id, partitionkey: 'p1', source: `petrel/${appName('emit')}/first`, data: { from: input.id } });
      expect(traceIdOf(out.traceparent)).toBe('0af7651916cd43dd8448eb211c80319c');
      expect(out.traceparent).not.toBe(input.traceparent);
    });
  });
}
