import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { bucket, defineApp, fn, objectCreated, on, type App } from '../../core/app.js';
import { eventKey, newEventId, type CloudEvent } from '../../core/event.js';
import { LOST_RACES, losingRacesApp } from '../../conformance/races.js';
import { NATS_URL, PG_URL, servicesAvailable } from '../../conformance/services.js';
import { NatsRuntime } from './runtime.js';
import { encodeToken, filterSubject, names } from './subjects.js';
import { deleteAppState } from './testing.js';

describe('NATS subject naming', () => {
  it('encodes every CloudEvent type into valid, distinct subject tokens', () => {
    expect(names('aq').eventSubject('aq.reading.accepted')).toBe('petrel.aq.aq.reading.accepted');
    expect(encodeToken('odd type/é')).toBe('odd%20type%2F%C3%A9');
    expect(encodeToken('')).toBe('%');
    expect(encodeToken('*')).toBe('%2A');
    expect(encodeToken('>')).toBe('%3E');
    expect(encodeToken('%')).toBe('%25');
    expect(names('x').eventSubject('a..b')).toBe('petrel.x.a.%.b');
    const tokens = ['a b', 'a%20b', 'a*', '', '%', 'ä'].map(encodeToken);
    expect(new Set(tokens).size).toBe(tokens.length);
    for (const token of tokens) expect(token).toMatch(/^[A-Za-z0-9_%-]+$/);
  });

  it('filters a consumer on one type when the pattern names exactly one, else on the whole app', () => {
    expect(filterSubject('app', { type: ['a.b'] })).toBe('petrel.app.a.b');
    expect(filterSubject('app', { type: ['a.b'], data: { n: [1] } })).toBe('petrel.app.a.b');
    expect(filterSubject('app', { type: ['a', 'b'] })).toBe('petrel.app.>');
    expect(filterSubject('app', { type: [{ prefix: 'a.' }] })).toBe('petrel.app.>');
    expect(filterSubject('app', { source: ['s'] })).toBe('petrel.app.>');
  });
});

const available = await servicesAvailable('adapters/nats', 'nats');
const silent = pino({ level: 'silent' });

describe.skipIf(!available)('NATS runtime', () => {
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  const apps: App[] = [];
  const runtimes: NatsRuntime[] = [];

  beforeAll(async () => {
    nc = await connect({ servers: NATS_URL });
    jsm = await jetstreamManager(nc);
  });
  afterEach(async () => {
    await Promise.all(runtimes.splice(0).map((r) => r.stop()));
  });
  afterAll(async () => {
    await deleteAppState(jsm, apps);
    await nc.close();
  });

  const unique = (name: string) => `nt-${name}-${randomUUID().slice(0, 6)}`;
  const start = async (app: App, options: { drainTimeoutMs?: number } = {}) => {
    if (!apps.includes(app)) apps.push(app);
    const runtime = await NatsRuntime.start(app, { servers: NATS_URL, logger: silent, drainTimeoutMs: 2000, ...options });
    runtimes.push(runtime);
    return runtime;
  };
  const event = (type: string, data: unknown = {}): CloudEvent => ({ specversion: '1.0', id: newEventId(), source: 'test', type, data });
  const streamCount = async (app: App, type?: string) => {
    const n = names(app.name);
    if (!type) return (await jsm.streams.info(n.stream)).state.messages;
    const info = await jsm.streams.info(n.stream, { subjects_filter: n.eventSubject(type) });
    return info.state.subjects?.[n.eventSubject(type)] ?? 0;
  };

  it('serves the ingress: 202 only once the event is in the stream, health, lag metrics and dead-letter admin', async () => {
    const app = defineApp({
      name: unique('ingress'),
      functions: { fail: fn({ trigger: on({ type: ['t.fail'] }), retry: { maxAttempts: 1 }, handler: () => Promise.reject(new Error('always')) }) },
    });
    const runtime = await start(app);
    const base = `http://127.0.0.1:${((await runtime.listen(0)).address() as AddressInfo).port}`;
    const input = event('t.fail');
    const before = await streamCount(app);
    const accepted = await fetch(`${base}/events`, { method: 'POST', headers: { 'content-type': 'application/cloudevents+json' }, body: JSON.stringify(input) });
    expect(accepted.status).toBe(202);
    expect(await streamCount(app)).toBe(before + 1);
    const bad = await fetch(`${base}/events`, { method: 'POST', headers: { 'content-type': 'application/cloudevents+json' }, body: '{"specversion":"1.0"}' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/id is required/);

    await runtime.idle();
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ ok: true, app: app.name, lag: { fail: 0 } });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/petrel_lag_events\{function="fail"\} 0/);
    expect(metrics).toMatch(/petrel_invocations_total\{function="fail",outcome="dead"\} 1/);

    const letters = (await (await fetch(`${base}/admin/dead-letters?function=fail`)).json()) as Array<{ id: string; event: CloudEvent; attempts: unknown[] }>;
    expect(letters.map((l) => [l.event.id, l.attempts.length])).toEqual([[input.id, 1]]);
    const shown = await fetch(`${base}/admin/dead-letters/${letters[0].id}`);
    expect(((await shown.json()) as { fn: string }).fn).toBe('fail');
    expect((await fetch(`${base}/admin/dead-letters/nope`)).status).toBe(404);
    const redriven = await fetch(`${base}/admin/dead-letters/${letters[0].id}/redrive`, { method: 'POST' });
    expect(await redriven.json()).toEqual({ redriven: 1 });
    await runtime.idle();
    // Redriven, it failed again: a new dead letter with a fresh attempt history.
    const again = await runtime.deadLetters.list('fail');
    expect(again).toHaveLength(1);
    expect(again[0].id).not.toBe(letters[0].id);
    expect(again[0].attempts.map((a) => a.attempt)).toEqual([1]);
  });

  it('buckets on the Object Store announce puts to objectCreated functions, filtered by prefix and suffix', async () => {
    const created: string[] = [];
    const app = defineApp({
      name: unique('buckets'),
      resources: { files: bucket() },
      functions: {
        upload: fn({
          trigger: on({ type: ['upload'] }),
          uses: { files: 'write' },
          handler: async (e, ctx) => {
            for (const key of e.data as string[]) await ctx.buckets.files.put(key, `body of ${key}`, { contentType: 'text/csv' });
          },
        }),
        onCsv: fn({
          trigger: objectCreated('files', { prefix: 'in/', suffix: '.csv' }),
          uses: { files: 'read' },
          handler: async (e, ctx) => {
            const { key } = e.data as { key: string };
            created.push(`${key}=${Buffer.from((await ctx.buckets.files.get(key))!).toString()}`);
            expect(await ctx.buckets.files.list('in/')).toContainEqual({ key, size: `body of ${key}`.length, contentType: 'text/csv' });
          },
        }),
      },
    });
    const runtime = await start(app);
    await runtime.publish([event('upload', ['in/a.csv', 'in/b.txt', 'out/c.csv', 'in/deep/d.csv'])]);
    await runtime.idle();
    expect(created.sort()).toEqual(['in/a.csv=body of in/a.csv', 'in/deep/d.csv=body of in/deep/d.csv']);
  });

  it('without tables, a KV completion record holds the outbox: an event delivered again emits nothing new', async () => {
    let runs = 0;
    const app = defineApp({
      name: unique('kv-dedupe'),
      functions: {
        once: fn({
          trigger: on({ type: ['t.once'] }),
          emits: ['t.done'],
          handler: async (_e, ctx) => {
            runs++;
            ctx.emit('t.done', { run: runs });
          },
        }),
      },
    });
    const runtime = await start(app);
    const input = event('t.once');
    const js = jetstream(nc);
    // Two stream messages for one event, as when it is published again past the duplicate window.
    await js.publish(names(app.name).eventSubject(input.type), JSON.stringify(input), { msgID: eventKey(input) });
    await runtime.idle();
    await js.publish(names(app.name).eventSubject(input.type), JSON.stringify(input), { msgID: `${eventKey(input)} later` });
    await runtime.idle();
    expect(runs).toBeGreaterThanOrEqual(1);
    expect(await streamCount(app, 't.done')).toBe(1);
    const stored = await jsm.streams.getMessage(names(app.name).stream, { last_by_subj: names(app.name).eventSubject('t.done') });
    expect(stored!.json<CloudEvent>().data).toEqual({ run: 1 });
  });

  it('bounds concurrency per function across every process sharing its durable consumer', async () => {
    let running = 0;
    let peak = 0;
    const handledBy = new Map<string, number>();
    const app = defineApp({
      name: unique('concurrency'),
      functions: {
        slow: fn({
          trigger: on({ type: ['t.slow'] }),
          concurrency: 3,
          handler: async (e) => {
            running++;
            peak = Math.max(peak, running);
            await new Promise((resolve) => setTimeout(resolve, 5));
            running--;
            handledBy.set(e.id, (handledBy.get(e.id) ?? 0) + 1);
          },
        }),
      },
    });
    const first = await start(app);
    await start(app);
    const events = Array.from({ length: 60 }, () => event('t.slow'));
    await first.publish(events);
    await first.idle();
    expect(peak).toBeLessThanOrEqual(3);
    expect(peak).toBeGreaterThan(1);
    expect(handledBy.size).toBe(60);
    expect([...handledBy.values()].every((n) => n === 1)).toBe(true);
  });

  it('times out a slow handler on every attempt and dead-letters it with TimeoutErrors', async () => {
    const app = defineApp({
      name: unique('timeout'),
      functions: {
        slow: fn({
          trigger: on({ type: ['t.slow'] }),
          timeoutMs: 40,
          retry: { maxAttempts: 2, baseDelayMs: 5, maxDelayMs: 10 },
          handler: () => new Promise((resolve) => setTimeout(resolve, 300)),
        }),
      },
    });
    const runtime = await start(app);
    await runtime.publish([event('t.slow')]);
    await runtime.idle();
    const [letter] = await runtime.deadLetters.list();
    expect(letter.attempts.map((a) => a.error.name)).toEqual(['TimeoutError', 'TimeoutError']);
  });

  it('dead-letters an event delivered again and again without an outcome (a worker dying on it each time), without running it once more', async () => {
    let runs = 0;
    const app = defineApp({
      name: unique('poison'),
      functions: { take: fn({ trigger: on({ type: ['t.poison'] }), retry: { maxAttempts: 2 }, handler: async () => void runs++ }) },
    });
    // Creates the durable consumer, then leaves the event to a stand-in for workers that die.
    await (await start(app)).stop();
    const poison = event('t.poison');
    const js = jetstream(nc);
    await js.publish(names(app.name).eventSubject(poison.type), JSON.stringify(poison));
    const consumer = await js.consumers.get(names(app.name).stream, 'take');
    // 2 x maxAttempts + 2 deliveries that end with no outcome recorded: the next one is over the limit.
    for (let delivery = 1; delivery <= 6; delivery++) {
      const msg = await consumer.next({ expires: 5000 });
      expect(msg?.info.deliveryCount).toBe(delivery);
      msg!.nak();
    }
    const runtime = await start(app);
    await runtime.idle();
    const [letter] = await runtime.deadLetters.list('take');
    expect(letter.event.id).toBe(poison.id);
    expect(letter.attempts.at(-1)!.error.message).toBe('delivered 7 times without an outcome (the worker stopped or timed out each time)');
    expect(runs).toBe(0);
  });

  it('says in one line when NATS is unreachable, and when tables have no PostgreSQL', async () => {
    const app = defineApp({ name: unique('unreachable'), functions: {} });
    await expect(NatsRuntime.start(app, { servers: 'nats://127.0.0.1:9', logger: silent, connectTimeoutMs: 1000 })).rejects.toThrow(/^NATS at nats:\/\/127\.0\.0\.1:9 is not reachable: /);
    const withTables = defineApp({ name: unique('tables'), resources: { t: { kind: 'table', partitionKey: 'id' } }, functions: {} });
    await expect(NatsRuntime.start(withTables, { servers: NATS_URL, logger: silent })).rejects.toThrow(/has tables, which live in PostgreSQL on this target/);
  });
});

const withTables = available && (await servicesAvailable('adapters/nats (tables)', 'postgres'));

describe.skipIf(!withTables)('NATS runtime with tables on PostgreSQL', () => {
  const apps: App[] = [];
  const runtimes: NatsRuntime[] = [];
  afterAll(async () => {
    await Promise.all(runtimes.map((r) => r.stop()));
    const nc = await connect({ servers: NATS_URL });
    await deleteAppState(await jetstreamManager(nc), apps, PG_URL);
    await nc.close();
  });

  it('gives each attempt of an ordered function its own runs on fresh state after lost write races', async () => {
    const { app, runs } = losingRacesApp(`nt-races-${randomUUID().slice(0, 6)}`);
    apps.push(app);
    const runtime = await NatsRuntime.start(app, { servers: NATS_URL, pgUrl: PG_URL, logger: silent, drainTimeoutMs: 2000 });
    runtimes.push(runtime);
    const event = (type: string, extra: Partial<CloudEvent> = {}): CloudEvent => ({ specversion: '1.0', id: newEventId(), source: 'test', type, data: {}, ...extra });
    await runtime.publish([event('seed')]);
    await runtime.idle();
    await runtime.publish([event('t', { partitionkey: 'x' })]);
    await runtime.idle();
    expect(runs()).toBe(LOST_RACES + 1);
    expect(await runtime.deadLetters.list('later')).toEqual([]);
  });
});

