import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LOST_RACES, losingRacesApp } from '../../conformance/races.js';
import { NATS_URL, PG_URL, servicesAvailable } from '../../conformance/services.js';
import { bucket, defineApp, fn, http, on, table, type App } from '../../core/app.js';
import { PermanentError } from '../../core/delivery.js';
import { deriveEventId, newEventId, type CloudEvent } from '../../core/event.js';
import type { Logger } from '../../core/ports.js';
import { toCloudEvents } from '../http/binding.js';
import { PgStore } from '../postgres/store.js';
import { deleteAppState } from '../nats/testing.js';
import { toBinaryHttp } from './encode.js';
import { KnativeFunction } from './server.js';
import { MemoryCompletions, openStores } from './stores.js';
import { ATTEMPT_HEADER, type FunctionStores } from './types.js';

const silent = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Input {
  n: number;
  emit?: number;
  fail?: 'retry' | 'permanent' | 'timeout';
  waitMs?: number;
}

const runs: string[] = [];
const app = defineApp({
  name: 'kn-test',
  functions: {
    enrich: fn({
      trigger: on({ type: ['kn.in'], data: { n: [{ numeric: ['>=', 0] }] } }),
      emits: ['kn.out', 'kn.extra'],
      retry: { maxAttempts: 3 },
      timeoutMs: 300,
      concurrency: 2,
      handler: async (e, ctx) => {
        const d = e.data as Input;
        runs.push(e.id);
        if (d.waitMs) await sleep(d.waitMs);
        if (d.fail === 'retry') throw new Error(`flaky on attempt ${ctx.attempt}`);
        if (d.fail === 'permanent') throw new PermanentError('bad reading');
        if (d.fail === 'timeout') await sleep(2000);
        for (let i = 0; i < (d.emit ?? 1); i++) ctx.emit(i === 0 ? 'kn.out' : 'kn.extra', { n: d.n, i, attempt: ctx.attempt }, { partitionkey: 'p' });
      },
    }),
    api: fn({ trigger: http('GET', '/x'), handler: () => ({ body: 1 }) }),
  },
});

const memoryStores = (): FunctionStores => ({ completions: new MemoryCompletions(), buckets: new Map(), close: async () => undefined });
const input = (data: Input, extra: Partial<CloudEvent> = {}): CloudEvent => ({ specversion: '1.0', id: newEventId(), source: 'test', type: 'kn.in', data, ...extra });
const readBody = (req: IncomingMessage) => new Promise<Buffer>((resolve) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve(Buffer.concat(chunks)));
});

/** A stand-in for K_SINK: records what arrives, answering with `status` after `delayMs`. */
class Sink {
  events: CloudEvent[] = [];
  order: string[] = [];
  status = 202;
  delayMs = 0;
  private server!: Server;
  url = '';

  async start(): Promise<void> {
    this.server = createServer(async (req, res) => {
      const body = await readBody(req);
      await sleep(this.delayMs);
      if (this.status < 300) {
        this.events.push(...toCloudEvents(req.headers, body));
        this.order.push('sink');
      }
      res.writeHead(this.status).end();
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/`;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

describe('a function as a Knative Service', () => {
  const sink = new Sink();
  const started: KnativeFunction[] = [];
  let base: string;
  let fnServer: KnativeFunction;

  const start = async (options: { sink?: string; stores?: FunctionStores; target?: App; name?: string } = {}) => {
    const target = options.target ?? app;
    const f = new KnativeFunction(target, target.function(options.name ?? 'enrich')!, { stores: options.stores ?? memoryStores(), logger: silent, sink: options.sink, drainTimeoutMs: 2000 });
    started.push(f);
    const server = await f.listen(0, '127.0.0.1');
    return { f, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
  };
  const post = async (url: string, event: CloudEvent | CloudEvent[], headers: Record<string, string> = {}, mode: 'binary' | 'structured' = 'binary') => {
    const request = Array.isArray(event)
      ? { headers: { 'content-type': 'application/cloudevents-batch+json' }, body: Buffer.from(JSON.stringify(event)) }
      : mode === 'structured'
        ? { headers: { 'content-type': 'application/cloudevents+json' }, body: Buffer.from(JSON.stringify(event)) }
        : toBinaryHttp(event);
    const response = await fetch(url, { method: 'POST', headers: { ...request.headers, ...headers }, body: new Uint8Array(request.body) });
    const body = Buffer.from(await response.arrayBuffer());
    const responseHeaders = Object.fromEntries(response.headers.entries());
    const json = responseHeaders['content-type']?.startsWith('application/json') ? (JSON.parse(body.toString()) as Record<string, unknown>) : undefined;
    return { status: response.status, headers: responseHeaders, body, json, reply: () => toCloudEvents(responseHeaders, body)[0] };
  };

  beforeAll(async () => {
    await sink.start();
    ({ f: fnServer, url: base } = await start({ sink: sink.url }));
  });
  afterEach(() => {
    sink.events = [];
    sink.order = [];
    sink.status = 202;
    sink.delayMs = 0;
  });
  afterAll(async () => {
    await Promise.all(started.map((f) => f.stop()));
    await sink.close();
  });

  it('answers a binary-mode event with its one emitted event as a binary-mode reply, when the sender takes replies', async () => {
    const event = input({ n: 1 }, { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
    const r = await post(base, event, { prefer: 'reply' });
    expect(r.status).toBe(200);
    expect(r.headers['ce-id']).toBe(deriveEventId(event.id, 'enrich', 0));
    const reply = r.reply();
    expect(reply).toMatchObject({ id: deriveEventId(event.id, 'enrich', 0), type: 'kn.out', source: 'petrel/kn-test/enrich', causationid: event.id, partitionkey: 'p', data: { n: 1, i: 0, attempt: 1 } });
    expect(reply.traceparent).toMatch(/^00-0af7651916cd43dd8448eb211c80319c-/);
    expect(sink.events).toEqual([]);
  });

  it('takes structured and batch mode; emitted events reach K_SINK before the 2xx', async () => {
    sink.delayMs = 50;
    const single = input({ n: 2 });
    const r1 = await post(base, single, {}, 'structured');
    sink.order.push('answered');
    expect(r1.status).toBe(202);
    expect(r1.body.length).toBe(0);
    const batch = [input({ n: 3, emit: 2 }), input({ n: 4 })];
    const r2 = await post(base, batch);
    sink.order.push('answered');
    expect(r2.status).toBe(202);
    expect(r2.json).toEqual({ results: batch.map((e) => ({ id: e.id, outcome: 'done' })) });
    expect(sink.order).toEqual(['sink', 'answered', 'sink', 'sink', 'sink', 'answered']);
    expect(sink.events.map((e) => [e.type, (e.data as { n: number }).n]).sort()).toEqual([['kn.extra', 3], ['kn.out', 2], ['kn.out', 3], ['kn.out', 4]]);
    expect(sink.events.find((e) => e.type === 'kn.extra')?.id).toBe(deriveEventId(batch[0].id, 'enrich', 1));
  });

  it('runs an event id once: a redelivery sends the recorded outbox again without running the handler', async () => {
    const event = input({ n: 5 });
    const first = await post(base, event, { prefer: 'reply' });
    const again = await post(base, { ...event }, { prefer: 'reply' });
    expect(again.status).toBe(200);
    expect(again.reply()).toEqual(first.reply());
    expect(runs.filter((id) => id === event.id)).toHaveLength(1);
    expect(await (await fetch(`${base}/metrics`)).text()).toMatch(/petrel_invocations_total\{function="enrich",outcome="duplicate"\} 1/);
  });

  it('answers 502 when K_SINK fails, so the event is retried, and the retry sends the outbox it recorded', async () => {
    sink.status = 500;
    const event = input({ n: 6, emit: 2 });
    const failed = await post(base, event, { prefer: 'reply' });
    expect(failed.status).toBe(502);
    expect(failed.json).toEqual({ error: 'internal error; see the server log' });
    sink.status = 202;
    const retried = await post(base, event, { prefer: 'reply' });
    expect(retried.status).toBe(202);
    expect(sink.events.map((e) => e.id).sort()).toEqual([deriveEventId(event.id, 'enrich', 0), deriveEventId(event.id, 'enrich', 1)].sort());
    expect(runs.filter((id) => id === event.id)).toHaveLength(1);
  });

  it('skips an event its pattern does not match (the Trigger filters by type only)', async () => {
    const event = input({ n: -1 });
    const r = await post(base, event, { prefer: 'reply' });
    expect(r.status).toBe(202);
    expect(runs).not.toContain(event.id);
  });

  it('answers 5xx for retryable failures and timeouts, 422 for permanent ones and the last attempt, with the attempt record', async () => {
    const flaky = input({ n: 7, fail: 'retry' });
    let r = await post(base, flaky, { [ATTEMPT_HEADER]: '2' });
    expect(r.status).toBe(500);
    expect(r.json).toMatchObject({ outcome: 'retry', id: flaky.id, attempt: { attempt: 2, error: { name: 'Error', message: 'flaky on attempt 2' } } });
    expect(String(r.json!.error)).toMatch(/failed on attempt 2 \(Error\); the event will be retried/);
    r = await post(base, flaky, { [ATTEMPT_HEADER]: '3' });
    expect(r.status).toBe(422);
    expect(r.json).toMatchObject({ outcome: 'dead', attempt: { attempt: 3, error: { message: 'flaky on attempt 3' } } });
    r = await post(base, input({ n: 8, fail: 'permanent' }));
    expect(r.status).toBe(422);
    expect(r.json).toMatchObject({ outcome: 'dead', attempt: { attempt: 1, error: { name: 'PermanentError', message: 'bad reading' } } });
    r = await post(base, input({ n: 9, fail: 'timeout' }));
    expect(r.status).toBe(504);
    expect(r.json).toMatchObject({ outcome: 'retry', attempt: { error: { name: 'TimeoutError' } } });
    const batch = await post(base, [input({ n: 10 }), input({ n: 11, fail: 'retry' })]);
    expect(batch.status).toBe(500);
    expect(batch.json!.results).toMatchObject([{ outcome: 'done' }, { outcome: 'retry' }]);
    expect(sink.events.map((e) => (e.data as { n: number }).n)).toEqual([10]);
  });

  it('answers bad requests with a 4xx JSON error naming the problem', async () => {
    const bare = await fetch(base, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(bare.status).toBe(415);
    expect((await bare.json()) as object).toMatchObject({ error: expect.stringMatching(/expected a CloudEvent/) });
    const broken = await fetch(base, { method: 'POST', headers: { 'content-type': 'application/cloudevents+json' }, body: '{"id":' });
    expect(broken.status).toBe(400);
    const invalid = await post(base, { specversion: '1.0', id: '', source: 's', type: 'kn.in' } as CloudEvent, {}, 'structured');
    expect(invalid.status).toBe(400);
    expect(String(invalid.json!.error)).toMatch(/id is required/);
    const badAttempt = await post(base, input({ n: 1 }), { [ATTEMPT_HEADER]: 'two' });
    expect(badAttempt.status).toBe(400);
    expect(badAttempt.json).toEqual({ error: `header ${ATTEMPT_HEADER} must be a positive integer, got "two"` });
    const huge = await fetch(base, { method: 'POST', headers: { 'content-type': 'application/cloudevents+json' }, body: 'x'.repeat(300 * 1024) });
    expect(huge.status).toBe(413);
    const get = await fetch(base);
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    expect((await fetch(`${base}/nope`, { method: 'POST' })).status).toBe(404);
    // The instance is still serving.
    expect((await post(base, input({ n: 12 }))).status).toBe(202);
  });

  it('sheds load past its concurrency with 429 and Retry-After', async () => {
    const slow = [post(base, input({ n: 13, waitMs: 150 })), post(base, input({ n: 14, waitMs: 150 }))];
    await sleep(50);
    const shed = await post(base, input({ n: 15 }));
    expect(shed.status).toBe(429);
    expect(shed.headers['retry-after']).toBe('1');
    expect((await Promise.all(slow)).map((r) => r.status)).toEqual([202, 202]);
  });

  it('needs K_SINK for events that cannot travel as the reply', async () => {
    const { url } = await start();
    const several = await post(url, input({ n: 16, emit: 2 }), { prefer: 'reply' });
    expect(several.status).toBe(500);
    const single = await post(url, input({ n: 17 }), { prefer: 'reply' });
    expect(single.status).toBe(200);
  });

  it('serves health, readiness and metrics, and drains on stop: not ready, no new events, in-flight ones finish', async () => {
    const { f, url } = await start({ sink: sink.url });
    // A second listener on the same instance, to ask it while the main one stops taking connections.
    const probe = f.handler().listen(0, '127.0.0.1');
    await new Promise((resolve) => probe.once('listening', resolve));
    const probeUrl = `http://127.0.0.1:${(probe.address() as AddressInfo).port}`;
    expect(await (await fetch(`${url}/readyz`)).json()).toEqual({ ready: true });
    expect(await (await fetch(`${url}/healthz`)).json()).toMatchObject({ ok: true, fn: 'enrich', completions: 'memory' });
    const inFlight = post(url, input({ n: 18, waitMs: 200 }));
    await sleep(50);
    const stopped = f.stop();
    const ready = await fetch(`${probeUrl}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ ready: false, reason: 'draining' });
    expect((await post(probeUrl, input({ n: 19 }))).status).toBe(503);
    expect((await inFlight).status).toBe(202);
    await stopped;
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
    probe.close();
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/petrel_invocations_total\{function="enrich",outcome="ok"\} \d+/);
    expect(metrics).toMatch(/petrel_invocations_total\{function="enrich",outcome="dead"\} 2/);
  });

  it('refuses to serve an http-triggered function', () => {
    expect(() => new KnativeFunction(app, app.function('api')!, { stores: memoryStores(), logger: silent })).toThrow(/is http-triggered: the ingress serves it/);
    expect(fnServer.fn.name).toBe('enrich');
  });
});

describe('a function container\'s stores', () => {
  const warnings: string[] = [];
  const logger: Logger = { debug: () => undefined, info: () => undefined, error: () => undefined, warn: (_o, msg) => void warnings.push(String(msg)), child: () => logger };
  const stateful = defineApp({
    name: 'kn-stores',
    resources: { rows: table({ partitionKey: 'pk' }), files: bucket() },
    functions: {
      write: fn({ trigger: on({ type: ['a'] }), uses: { rows: 'write' }, handler: () => undefined }),
      store: fn({ trigger: on({ type: ['a'] }), uses: { files: 'write' }, handler: () => undefined }),
      emit: fn({ trigger: on({ type: ['a'] }), emits: ['b'], handler: () => undefined }),
      look: fn({ trigger: on({ type: ['a'] }), handler: () => undefined }),
    },
  });

  it('says which service a function needs when it is not configured', async () => {
    await expect(openStores(stateful, stateful.function('write')!, { logger })).rejects.toThrow('function "write" uses the tables rows, which live in PostgreSQL on this target: set PETREL_PG_URL');
    await expect(openStores(stateful, stateful.function('store')!, { logger })).rejects.toThrow('function "store" uses the buckets files, which live in the NATS Object Store on this target: set PETREL_NATS_URL');
  });

  it('keeps completion records in memory, with a warning, when neither NATS nor PostgreSQL is configured', async () => {
    const stores = await openStores(stateful, stateful.function('emit')!, { logger });
    expect(stores.completions?.kind).toBe('memory');
    expect(warnings.join('\n')).toMatch(/completion records are kept in memory only.*Set PETREL_NATS_URL/);
    const none = await openStores(stateful, stateful.function('look')!, { logger });
    expect(none.completions).toBeUndefined();
    await Promise.all([stores.close(), none.close()]);
  });
});

const natsAvailable = await servicesAvailable('adapters/knative/server (NATS KV)', 'nats');

describe.skipIf(!natsAvailable)('completion records on NATS KV', () => {
  it('are shared by replicas: an event delivered to a second replica is not run again, and gets the same reply', async () => {
    let runsOfGreet = 0;
    const kvApp = defineApp({
      name: `kn-kv-${randomUUID().slice(0, 6)}`,
      functions: { greet: fn({ trigger: on({ type: ['hi'] }), emits: ['hi.back'], handler: (e, ctx) => void (runsOfGreet++, ctx.emit('hi.back', { to: e.id })) }) },
    });
    const greet = kvApp.function('greet')!;
    const replicas = await Promise.all(
      [1, 2].map(async () => {
        const stores = await openStores(kvApp, greet, { nats: { servers: [NATS_URL] }, logger: silent });
        const f = new KnativeFunction(kvApp, greet, { stores, logger: silent });
        return { f, url: `http://127.0.0.1:${((await f.listen(0, '127.0.0.1')).address() as AddressInfo).port}` };
      }),
    );
    try {
      expect((await (await fetch(`${replicas[0].url}/healthz`)).json()) as object).toMatchObject({ completions: 'nats-kv' });
      const event: CloudEvent = { specversion: '1.0', id: newEventId(), source: 'test', type: 'hi', data: {} };
      const answers = [];
      for (const { url } of replicas) {
        const { headers, body } = toBinaryHttp(event);
        const response = await fetch(url, { method: 'POST', headers: { ...headers, prefer: 'reply' }, body: new Uint8Array(body) });
        answers.push({ status: response.status, id: response.headers.get('ce-id'), data: await response.json() });
      }
      expect(answers).toEqual([1, 2].map(() => ({ status: 200, id: deriveEventId(event.id, 'greet', 0), data: { to: event.id } })));
      expect(runsOfGreet).toBe(1);
    } finally {
      await Promise.all(replicas.map(({ f }) => f.stop()));
      const nc = await connect({ servers: NATS_URL });
      await deleteAppState(await jetstreamManager(nc), [kvApp]);
      await nc.close();
    }
  });
});

const pgAvailable = await servicesAvailable('adapters/knative/server (tables on PostgreSQL)', 'postgres');

describe.skipIf(!pgAvailable)('a function with tables on PostgreSQL', () => {
  it('gives each attempt its own runs on fresh state after lost write races, as the other targets do', async () => {
    const { app: racing, runs } = losingRacesApp(`kn-races-${randomUUID().slice(0, 6)}`);
    const served = await Promise.all(
      ['seed', 'later'].map(async (name) => {
        const fnOfApp = racing.function(name)!;
        const f = new KnativeFunction(racing, fnOfApp, { stores: await openStores(racing, fnOfApp, { pgUrl: PG_URL, logger: silent }), logger: silent, drainTimeoutMs: 2000 });
        return { f, url: `http://127.0.0.1:${((await f.listen(0, '127.0.0.1')).address() as AddressInfo).port}` };
      }),
    );
    // What the dispatcher does: send the event, and again with the next attempt number after a 5xx.
    const deliver = async (url: string, event: CloudEvent, attempt: number) => {
      const { headers, body } = toBinaryHttp(event);
      const response = await fetch(url, { method: 'POST', headers: { ...headers, [ATTEMPT_HEADER]: String(attempt) }, body: new Uint8Array(body) });
      return { status: response.status, body: await response.text() };
    };
    try {
      const event = (type: string): CloudEvent => ({ specversion: '1.0', id: newEventId(), source: 'test', type, data: {}, partitionkey: 'x' });
      expect((await deliver(served[0].url, event('seed'), 1)).status).toBe(202);
      const t = event('t');
      // The first attempt loses 20 races in a row (core/invoke.ts WriteRaces), then fails as a
      // conflict to be retried; the second starts its own count, loses 5 more and wins.
      const first = await deliver(served[1].url, t, 1);
      expect(first.status).toBe(500);
      expect(first.body).toMatch(/will be retried/);
      expect(runs()).toBe(21);
      expect((await deliver(served[1].url, t, 2)).status).toBe(202);
      expect(runs()).toBe(LOST_RACES + 1);
    } finally {
      await Promise.all(served.map(({ f }) => f.stop()));
      const store = await PgStore.connect(PG_URL, { max: 1 });
      await store.dropApp(racing.name);
      await store.close();
    }
  });
});
