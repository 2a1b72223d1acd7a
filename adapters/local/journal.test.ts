import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { defineApp, fn, http, on, type App } from '../../core/app.js';
import { newEventId, traceIdOf, type CloudEvent } from '../../core/event.js';
import { httpRequestEvent } from '../../core/http.js';
import type { InvokeResult } from '../../core/invoke.js';
import { InvocationJournal, journey } from './journal.js';
import { LocalRuntime } from './runtime.js';

const dirs: string[] = [];
const runtimes: LocalRuntime[] = [];

afterEach(async () => {
  await Promise.all(runtimes.splice(0).map((r) => r.stop()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function start(app: App, journal: InvocationJournal): Promise<LocalRuntime> {
  const dataDir = mkdtempSync(join(tmpdir(), 'petrel-journal-'));
  dirs.push(dataDir);
  const runtime = await LocalRuntime.start(app, { dataDir, logger: pino({ level: 'silent' }), onInvoked: journal.record });
  runtimes.push(runtime);
  return runtime;
}

const ok: InvokeResult = { outcome: 'ok', emitted: [] };

function event(id: string, extra: Partial<CloudEvent> = {}): CloudEvent {
  return { specversion: '1.0', id, source: 'test', type: 'thing', ...extra };
}

/** POST /in -> `a` -> [forward] -> `b` -> [flaky: fails once] and [sink]. */
function chainApp(): App {
  let failed = false;
  return defineApp({
    name: 'journal',
    functions: {
      receive: fn({ trigger: http('POST', '/in'), emits: ['a'], handler: async (_e, ctx) => void ctx.emit('a', { n: 1 }) }),
      forward: fn({ trigger: on({ type: ['a'] }), emits: ['b'], handler: async (e, ctx) => void ctx.emit('b', { from: e.id }) }),
      flaky: fn({
        trigger: on({ type: ['b'] }),
        retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 2 },
        handler: async () => {
          if (!failed) {
            failed = true;
            throw new Error('first attempt fails');
          }
        },
      }),
      sink: fn({ trigger: on({ type: ['b'] }), handler: async () => undefined }),
    },
  });
}

async function send(runtime: LocalRuntime, app: App): Promise<void> {
  const receive = app.functions.find((f) => f.name === 'receive')!;
  const request = httpRequestEvent(app, receive, { method: 'POST', path: '/in', params: {}, query: {}, headers: { 'content-type': 'application/json' }, body: Buffer.from('{}') });
  expect((await runtime.invokeHttp(receive, request)).status).toBe(202);
  await runtime.idle();
}

function logged(runtime: LocalRuntime, type: string): CloudEvent {
  const found = runtime.events(0, 1000).find((e) => e.event.type === type);
  expect(found, `an event of type ${type} in the log`).toBeDefined();
  return found!.event;
}

describe('invocation journal', () => {
  it('keeps the newest `capacity` records, oldest first per event', () => {
    const journal = new InvocationJournal(3);
    for (let i = 1; i <= 5; i++) journal.record({ fn: 'f', event: event(`e${i}`), attempt: 1, result: ok, startedAt: i, durationMs: 1 });
    expect(journal.size).toBe(3);
    expect(journal.invocationsOf('e1')).toEqual([]);
    expect(journal.invocationsOf('e2')).toEqual([]);
    expect(journal.invocationsOf('e5').map((r) => r.startedAt)).toEqual([5]);
    journal.record({ fn: 'g', event: event('e5'), attempt: 2, result: ok, startedAt: 6, durationMs: 1 });
    expect(journal.invocationsOf('e5').map((r) => `${r.fn}#${r.attempt}`)).toEqual(['f#1', 'g#2']);
    expect(journal.invocationsOf('e3')).toEqual([]);
    expect(() => new InvocationJournal(0)).toThrow(/positive integer/);
  });

  it('records what an invocation did: outcome, error, emitted ids, and the event attributes only', () => {
    const journal = new InvocationJournal();
    const input = event('in', { causationid: 'cause', traceparent: '00-0123456789abcdef0123456789abcdef-0123456789abcdef-01', data: { big: 'x'.repeat(1000) } });
    journal.record({ fn: 'f', event: input, seq: 7, attempt: 2, result: { outcome: 'ok', emitted: [event('out1'), event('out2')] }, startedAt: 10, durationMs: 2 });
    journal.record({ fn: 'f', event: input, attempt: 3, result: { outcome: 'dead', record: { attempt: 3, at: '', error: { name: 'TypeError', message: 'bad' } }, error: new TypeError('bad') }, startedAt: 20, durationMs: 1 });
    const [first, second] = journal.invocationsOf('in');
    expect(first).toMatchObject({ fn: 'f', eventId: 'in', type: 'thing', causationid: 'cause', seq: 7, attempt: 2, outcome: 'ok', emitted: ['out1', 'out2'] });
    expect(first).not.toHaveProperty('data');
    expect(second).toMatchObject({ outcome: 'dead', error: 'TypeError: bad', emitted: [] });
  });
});

describe('journey', () => {
  it('follows causation from an event back to the HTTP request, with every invocation and its timing', async () => {
    const journal = new InvocationJournal();
    const app = chainApp();
    const runtime = await start(app, journal);
    await send(runtime, app);
    const b = logged(runtime, 'b');

    const found = journey(b.id, journal, runtime)!;
    expect(found.steps.map((s) => [s.event.type, s.found])).toEqual([['petrel.http.request', 'journal'], ['a', 'log'], ['b', 'log']]);
    expect(found.complete).toBe(true);
    expect(found.traceId).toBe(traceIdOf(b.traceparent));
    expect(found.ingestToEventMs).toBeGreaterThanOrEqual(0);
    const [request, a, last] = found.steps;
    expect(request.invocations.map((i) => [i.fn, i.outcome])).toEqual([['receive', 'ok']]);
    expect(request.invocations[0].emitted).toEqual([a.event.id]);
    expect(a.event.data).toEqual({ n: 1 });
    expect(a.invocations.map((i) => [i.fn, i.outcome])).toEqual([['forward', 'ok']]);
    const attempts = last.invocations.map((i) => `${i.fn}#${i.attempt}:${i.outcome}`).sort();
    expect(attempts).toEqual(['flaky#1:retry', 'flaky#2:ok', 'sink#1:ok']);
    expect(last.invocations.find((i) => i.outcome === 'retry')?.error).toBe('Error: first attempt fails');
    for (const invocation of found.steps.flatMap((s) => s.invocations)) {
      expect(invocation.durationMs).toBeGreaterThanOrEqual(0);
      expect(invocation.startedAt).toBeGreaterThan(Date.now() - 60_000);
    }
  });

  it('finds an event nobody has handled by scanning the log, and says when the start is forgotten', async () => {
    const journal = new InvocationJournal(1);
    const app = chainApp();
    const runtime = await start(app, journal);
    await send(runtime, app);
    // The journal kept only the last invocation (of `b`): `a` comes from the log, the request is gone.
    const found = journey(logged(runtime, 'b').id, journal, runtime)!;
    expect(found.steps.map((s) => s.found)).toEqual(['missing', 'log', 'log']);
    expect(found.steps[1].invocations).toEqual([]);
    expect(found.complete).toBe(false);
    expect(found.ingestToEventMs).toBeUndefined();

    const orphan = { ...event(newEventId()), type: 'unrouted' };
    await runtime.publish([orphan]);
    const alone = journey(orphan.id, journal, runtime)!;
    expect(alone.steps.map((s) => [s.event.id, s.found, s.invocations.length])).toEqual([[orphan.id, 'log', 0]]);
    expect(alone.complete).toBe(true);
    expect(journey('no-such-event', journal, runtime)).toBeUndefined();
  });
});
