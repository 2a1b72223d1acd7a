/** The dispatcher against endpoints that misbehave in each way Knative's data-plane contract names. */
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NATS_URL, servicesAvailable } from '../../conformance/services.js';
import { defineApp, fn, on, type App } from '../../core/app.js';
import { newEventId, type CloudEvent } from '../../core/event.js';
import { toCloudEvents } from '../http/binding.js';
import { NatsRuntime } from '../nats/runtime.js';
import { names } from '../nats/subjects.js';
import { deleteAppState, freePort } from '../nats/testing.js';
import { HttpDispatcher, ingressApp } from './dispatcher.js';
import { toBinaryHttp } from './encode.js';
import { ATTEMPT_HEADER } from './types.js';

const available = await servicesAvailable('adapters/knative/dispatcher', 'nats');
const logger = pino({ level: 'silent' });

describe.skipIf(!available)('HTTP dispatcher', () => {
  const fast = { maxAttempts: 3, baseDelayMs: 5, maxDelayMs: 20 };
  const app: App = defineApp({
    name: `kd-${randomUUID().slice(0, 6)}`,
    functions: {
      answer: fn({ trigger: on({ type: ['d.in'] }), emits: ['d.out'], retry: fast, timeoutMs: 300, handler: () => undefined }),
      watch: fn({ trigger: on({ type: ['d.out'] }), handler: () => undefined }),
      slow: fn({ trigger: on({ type: ['d.slow'] }), retry: { maxAttempts: 1 }, timeoutMs: 100, handler: () => undefined }),
      gone: fn({ trigger: on({ type: ['d.gone'] }), retry: { maxAttempts: 1 }, handler: () => undefined }),
    },
  });
  /** What the endpoint does with each event, by `data.mode`; every request it gets, in order. */
  const requests: Array<{ fn: string; event: CloudEvent; attempt: string | undefined; prefer: string | undefined }> = [];
  let endpoint: Server;
  let runtime: NatsRuntime;
  let dispatcher: HttpDispatcher;
  let nc: NatsConnection;
  let jsm: JetStreamManager;

  const respond = async (fnName: string, req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const [event] = toCloudEvents(req.headers, Buffer.concat(chunks));
    requests.push({ fn: fnName, event, attempt: req.headers[ATTEMPT_HEADER] as string | undefined, prefer: req.headers.prefer as string | undefined });
    const mode = (event.data as { mode?: string } | undefined)?.mode;
    if (fnName === 'slow') return void setTimeout(() => res.writeHead(202).end(), 3000);
    if (fnName !== 'answer' || mode === 'ok') return void res.writeHead(202).end();
    if (mode === 'reply') {
      const reply = toBinaryHttp({ specversion: '1.0', id: `reply-${event.id}`, source: 'endpoint', type: 'd.out', data: { for: event.id } });
      return void res.writeHead(200, reply.headers).end(reply.body);
    }
    if (mode === 'bad') return void res.writeHead(400, { 'content-type': 'text/plain' }).end('cannot parse this');
    if (mode === 'busy') return void res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'x', attempt: { attempt: 0, at: new Date().toISOString(), error: { name: 'Busy', message: `busy on ${String(req.headers[ATTEMPT_HEADER])}` } } }));
  };

  const publish = (type: string, data: unknown) => {
    const event: CloudEvent = { specversion: '1.0', id: newEventId(), source: 'test', type, data };
    return runtime.publish([event]).then(() => event);
  };

  beforeAll(async () => {
    nc = await connect({ servers: NATS_URL });
    jsm = await jetstreamManager(nc);
    runtime = await NatsRuntime.start(ingressApp(app), { servers: NATS_URL, logger });
    endpoint = createServer((req, res) => void respond(req.url!.slice(1), req, res));
    await new Promise<void>((resolve) => endpoint.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}`;
    const nobody = `http://127.0.0.1:${await freePort()}/`;
    dispatcher = await HttpDispatcher.start(app, { nats: { servers: [NATS_URL] }, urls: { answer: `${base}/answer`, watch: `${base}/watch`, slow: `${base}/slow`, gone: nobody }, logger });
  });

  afterAll(async () => {
    await dispatcher?.stop();
    await runtime?.stop();
    endpoint?.closeAllConnections();
    endpoint?.close();
    await deleteAppState(jsm, [app]);
    await nc?.close();
  });

  it('POSTs each event in binary mode with Prefer: reply and the attempt, and publishes a reply to the stream', async () => {
    const input = await publish('d.in', { mode: 'reply' });
    await dispatcher.idle();
    const forInput = requests.filter((r) => r.event.id === input.id);
    expect(forInput).toEqual([{ fn: 'answer', event: expect.objectContaining({ id: input.id, type: 'd.in', data: { mode: 'reply' } }), attempt: '1', prefer: 'reply' }]);
    const replies = requests.filter((r) => r.fn === 'watch' && r.event.id === `reply-${input.id}`);
    expect(replies).toHaveLength(1);
    expect(replies[0].event).toMatchObject({ type: 'd.out', source: 'endpoint', data: { for: input.id } });
    const out = names(app.name).eventSubject('d.out');
    const { state } = await jsm.streams.info(names(app.name).stream, { subjects_filter: out });
    expect(state.subjects).toEqual({ [out]: 1 });
  });

  it('dead-letters a 4xx answer at once, with the status and body as its error', async () => {
    const input = await publish('d.in', { mode: 'bad' });
    await dispatcher.idle();
    expect(requests.filter((r) => r.event.id === input.id)).toHaveLength(1);
    const letter = (await runtime.deadLetters.list('answer')).find((l) => l.event.id === input.id)!;
    expect(letter.attempts.map((a) => [a.attempt, a.error.message])).toEqual([[1, 'function "answer" answered 400: cannot parse this']]);
  });

  it('retries 5xx answers with backoff up to maxAttempts, keeping the attempt records the function sent', async () => {
    const input = await publish('d.in', { mode: 'busy' });
    await dispatcher.idle();
    expect(requests.filter((r) => r.event.id === input.id).map((r) => r.attempt)).toEqual(['1', '2', '3']);
    const letter = (await runtime.deadLetters.list('answer')).find((l) => l.event.id === input.id)!;
    expect(letter.attempts.map((a) => [a.attempt, a.error.name, a.error.message])).toEqual([
      [1, 'Busy', 'busy on 1'],
      [2, 'Busy', 'busy on 2'],
      [3, 'Busy', 'busy on 3'],
    ]);
  });

  it('counts an answer that does not come in time, or an endpoint that does not answer, as a failed attempt', async () => {
    const input = await publish('d.slow', {});
    await dispatcher.idle();
    const letter = (await runtime.deadLetters.list('slow')).find((l) => l.event.id === input.id)!;
    expect(letter.attempts.map((a) => [a.attempt, a.error.name, a.error.message])).toEqual([[1, 'TimeoutError', 'function "slow" did not answer within 2100 ms']]);
    const lost = await publish('d.gone', {});
    await dispatcher.idle();
    const unreachable = (await runtime.deadLetters.list('gone')).find((l) => l.event.id === lost.id)!;
    expect(unreachable.attempts.map((a) => a.error.message)).toEqual(['POST to function "gone" failed: ECONNREFUSED']);
  });

  it('refuses to start without a URL for every event function, or with a URL for none', async () => {
    await expect(HttpDispatcher.start(app, { nats: { servers: [NATS_URL] }, urls: { answer: 'http://x', other: 'http://y' }, logger })).rejects.toThrow(
      'dispatching needs a URL for each function with an event trigger (answer, watch, slow, gone); missing: watch, slow, gone; no such functions: other',
    );
    const unknownApp = defineApp({ name: `kd-none-${randomUUID().slice(0, 6)}`, functions: { f: fn({ trigger: on({ type: ['x'] }), handler: () => undefined }) } });
    await expect(HttpDispatcher.start(unknownApp, { nats: { servers: [NATS_URL] }, urls: { f: 'http://x' }, logger })).rejects.toThrow(/the stream of app "kd-none-.*" is not there .*start the NATS runtime for its ingress first/);
  });
});
