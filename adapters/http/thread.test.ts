import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import type { Worker } from 'node:worker_threads';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { defineApp, fn, http } from '../../core/index.js';
import { LocalRuntime } from '../local/index.js';
import { createIngress } from './ingress.js';
import { IngressThread } from './thread.js';

const logger = pino({ level: 'silent' });
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A runtime whose `POST /hold` waits until `release()`; torn down after each test. */
async function startRuntime() {
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const app = defineApp({
    name: 'thread-test',
    functions: {
      hold: fn({ trigger: http('POST', '/hold'), handler: async () => (await held, { status: 200, body: { released: true } }) }),
      echo: fn({ trigger: http('GET', '/echo/:word'), handler: async (event) => ({ status: 200, body: event.data }) }),
      stamp: fn({ trigger: http('POST', '/stamp'), handler: async (event) => ({ status: 200, body: { ingesttime: event.ingesttime } }) }),
    },
  });
  const dataDir = mkdtempSync(join(tmpdir(), 'petrel-thread-'));
  const runtime = await LocalRuntime.start(app, { dataDir, logger });
  cleanups.push(async () => {
    release();
    await runtime.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });
  return { runtime, release };
}

describe('the ingress thread', () => {
  it('hands a hot route its request (path parameters, query, headers) and passes everything else through to express', async () => {
    const { runtime } = await startRuntime();
    const server = await runtime.listen(0, '127.0.0.1', { ingressThread: true });
    const base = `http://127.0.0.1:${server.address().port}`;
    const echo = await fetch(`${base}/ECHO/caf%C3%A9?n=1&n=2`, { headers: { 'x-trace': 'abc' } });
    expect(echo.status).toBe(200);
    expect(await echo.json()).toMatchObject({ method: 'GET', path: '/ECHO/caf%C3%A9', params: { word: 'café' }, query: { n: ['1', '2'] }, headers: { 'x-trace': 'abc' } });
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ ok: true, app: 'thread-test' });
    const missing = await fetch(`${base}/nowhere`, { method: 'DELETE' });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: 'no route for DELETE /nowhere' });
  });

  it('stamps the ingest time when a request arrives, not when the runtime thread gets to it', async () => {
    const { runtime } = await startRuntime();
    const server = await runtime.listen(0, '127.0.0.1');
    const sent = Date.now();
    const answer = await new Promise<string>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: server.address().port, path: '/stamp', method: 'POST' }, (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
      // Once the request is on its way, keep this (the runtime's) thread busy for 300 ms.
      req.on('finish', () => {
        const until = Date.now() + 300;
        while (Date.now() < until);
      });
      req.end();
    });
    const { ingesttime } = JSON.parse(answer) as { ingesttime: string };
    expect(Date.parse(ingesttime) - sent).toBeLessThan(200);
  });

  it('streams a passed-through response as it is written, and ends it upstream when the client goes away', async () => {
    const { runtime } = await startRuntime();
    let closedUpstream!: () => void;
    const upstreamClosed = new Promise<void>((resolve) => (closedUpstream = resolve));
    const server = await runtime.listen(0, '127.0.0.1', {
      extend: (router) =>
        router.get('/stream', (req, res) => {
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.write('data: first\n\n');
          req.on('close', closedUpstream);
        }),
    });
    const first = await new Promise<{ type: string | undefined; chunk: string; close: () => void }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: server.address().port, path: '/stream' }, (res) => {
        res.once('data', (chunk: Buffer) => resolve({ type: res.headers['content-type'], chunk: chunk.toString(), close: () => req.destroy() }));
      });
      req.on('error', reject);
      req.end();
    });
    expect(first).toMatchObject({ type: 'text/event-stream', chunk: 'data: first\n\n' });
    first.close();
    await upstreamClosed;
  });

  it('answers 429 once too many requests wait for the runtime thread, and serves again after', async () => {
    const { runtime, release } = await startRuntime();
    const thread = await IngressThread.listen(createIngress(runtime, { logger }), 0, '127.0.0.1', logger, 2);
    cleanups.push(() => thread.close());
    const base = `http://127.0.0.1:${thread.address().port}`;
    const waiting = [fetch(`${base}/hold`, { method: 'POST' }), fetch(`${base}/hold`, { method: 'POST' })];
    // Until both are with the runtime thread, a third might still get in: ask until it is refused.
    let third: Response;
    do third = await fetch(`${base}/hold`, { method: 'POST' });
    while (third.status !== 429);
    expect(third.headers.get('retry-after')).toBe('1');
    expect(await third.json()).toEqual({ error: '2 requests are waiting for the runtime; retry after 1 s' });
    release();
    for (const answer of await Promise.all(waiting)) expect(await answer.json()).toEqual({ released: true });
    expect((await fetch(`${base}/hold`, { method: 'POST' })).status).toBe(200);
  });

  it('starts the thread again on the same port if it stops unasked', async () => {
    const { runtime } = await startRuntime();
    const thread = await IngressThread.listen(createIngress(runtime, { logger }), 0, '127.0.0.1', logger);
    cleanups.push(() => thread.close());
    const base = `http://127.0.0.1:${thread.address().port}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    await (thread as unknown as { worker: Worker }).worker.terminate();
    let status = 0;
    const until = Date.now() + 5_000;
    while (status !== 200 && Date.now() < until) status = await fetch(`${base}/healthz`).then((r) => r.status, () => 0);
    expect(status).toBe(200);
  });

  it('says so when the port is taken, and stops listening when the runtime stops', async () => {
    const { runtime } = await startRuntime();
    const server = await runtime.listen(0, '127.0.0.1');
    const port = server.address().port;
    const other = await startRuntime();
    await expect(other.runtime.listen(port, '127.0.0.1')).rejects.toThrow(`port ${port} on 127.0.0.1 is already in use; set PORT to another port`);
    await runtime.stop();
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
  });
});
