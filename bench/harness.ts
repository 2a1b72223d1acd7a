/**
 * Shared pieces of the embedded benchmarks: the one-function app, a runtime in a fresh temp dir,
 * an HTTP load generator in a worker thread, a precise pacer and percentile helpers.
 */
import express from 'express';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import pino from 'pino';
import { defineApp, fn, on, table, type App } from '../core/app.js';
import type { CloudEvent } from '../core/event.js';
import { LocalRuntime } from '../adapters/local/index.js';
import { EVENT_TYPE, type BenchData } from './events.js';
import type { LoadJob, LoadReply } from './http-worker.js';

export type HandlerKind = 'noop' | 'table';

/** What the handler records: deliveries seen, and (latency scenarios) its start time per index. */
export const probe: { handled: number; started?: Float64Array } = { handled: 0 };

/** Called first thing in the handler. */
function onHandled(i: number): void {
  if (probe.started && i >= 0) probe.started[i] = performance.now();
  probe.handled++;
}

/** A one-function app; 'table' upserts the latest reading of one of 1,000 sensors per event. */
export function benchApp(kind: HandlerKind): App {
  if (kind === 'noop') {
    return defineApp({
      name: 'bench',
      functions: {
        sink: fn<Record<never, never>, BenchData>({
          trigger: on({ type: [EVENT_TYPE] }),
          handler: (event) => onHandled(event.data!.i),
        }),
      },
    });
  }
  return defineApp({
    name: 'bench',
    resources: { latest: table({ partitionKey: 'sensor' }) },
    functions: {
      sink: fn<{ latest: 'write' }, BenchData>({
        trigger: on({ type: [EVENT_TYPE] }),
        uses: { latest: 'write' },
        handler: async (event, ctx) => {
          const data = event.data!;
          onHandled(data.i);
          await ctx.tables.latest.put({ sensor: data.sensor, pm25: data.pm25, pm10: data.pm10, at: event.time });
        },
      }),
    },
  });
}

export interface Harness {
  runtime: LocalRuntime;
  stop(): Promise<void>;
}

/** Starts the app on the embedded runtime in a fresh temp dir; `stop` closes it and removes the dir. */
export async function startRuntime(kind: HandlerKind): Promise<Harness> {
  const dataDir = mkdtempSync(join(tmpdir(), 'petrel-bench-'));
  probe.handled = 0;
  probe.started = undefined;
  try {
    const runtime = await LocalRuntime.start(benchApp(kind), { dataDir, logger: pino({ level: 'silent' }) });
    return {
      runtime,
      stop: async () => {
        try {
          await runtime.stop();
        } finally {
          rmSync(dataDir, { recursive: true, force: true });
        }
      },
    };
  } catch (error) {
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
}

/** Publishes batches in-process with at most `inFlight` publish calls outstanding. */
export async function publishAll(runtime: LocalRuntime, all: CloudEvent[][], inFlight: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < all.length) await runtime.publish(all[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, all.length) }, worker));
}

// ---- HTTP load, from a worker thread ------------------------------------------------------------------

/** An HTTP load generator in a worker thread (bench/http-worker.ts) aimed at the runtime's ingress. */
export class HttpLoad {
  private readonly worker: Worker;
  private readonly replies: LoadReply[] = [];
  private waiting?: (reply: LoadReply) => void;
  private failure?: Error;

  constructor(port: number) {
    // Worker threads do not inherit tsx's loader on Node 20: register it in the worker, then import.
    const tsx = import.meta.resolve('tsx/esm/api');
    const entry = new URL('./http-worker.ts', import.meta.url).href;
    const boot = `import(${JSON.stringify(tsx)}).then((api) => api.tsImport(${JSON.stringify(entry)}, ${JSON.stringify(import.meta.url)}))`;
    this.worker = new Worker(boot, { eval: true, workerData: { port } });
    this.worker.on('message', (reply: LoadReply) => this.deliver(reply));
    this.worker.on('error', (error) => this.deliver({ type: 'error', message: `load worker crashed: ${error.message}` }));
    this.worker.on('exit', (code) => this.deliver({ type: 'error', message: `load worker exited (code ${code})` }));
  }

  static async aimAt(runtime: LocalRuntime): Promise<HttpLoad> {
    return new HttpLoad(portOf(await runtime.listen(0)));
  }

  /** Runs a job; `start`/`end` are this thread's clock around the worker's go and done. */
  async run(job: LoadJob): Promise<{ start: number; end: number; accepted: number; elapsedMs: number; shed: number }> {
    this.worker.postMessage(job);
    await this.reply('ready');
    const start = performance.now();
    this.worker.postMessage('go');
    const done = await this.reply('done');
    return { start, end: performance.now(), accepted: done.accepted, elapsedMs: done.elapsedMs, shed: done.shed };
  }

  close(): Promise<number> {
    return this.worker.terminate();
  }

  private deliver(reply: LoadReply): void {
    if (reply.type === 'error') this.failure ??= new Error(reply.message);
    else this.replies.push(reply);
    this.waiting?.(reply);
  }

  private async reply<T extends LoadReply['type']>(type: T): Promise<Extract<LoadReply, { type: T }>> {
    for (;;) {
      if (this.failure) throw this.failure;
      const reply = this.replies.shift();
      if (reply) {
        if (reply.type !== type) throw new Error(`load worker answered "${reply.type}", expected "${type}"`);
        return reply as Extract<LoadReply, { type: T }>;
      }
      await new Promise<LoadReply>((resolve) => (this.waiting = resolve));
      this.waiting = undefined;
    }
  }
}

function portOf(server: Server): number {
  return (server.address() as AddressInfo).port;
}

/**
 * The floor for single-event POSTs: bare express 5 doing what the ingress must do at least (raw
 * body, JSON.parse, 202 with a JSON body), and nothing durable.
 */
export async function bareExpress(): Promise<{ port: number; close(): Promise<void> }> {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.post('/events', express.raw({ type: () => true, limit: 256 * 1024 }), (req, res) => {
    const event = JSON.parse((req.body as Buffer).toString('utf8')) as { id: string };
    res.status(202).json({ accepted: 1, ids: [event.id] });
  });
  const server = await new Promise<Server>((resolve, reject) => {
    const listening = app.listen(0, '127.0.0.1', (error?: Error) => (error ? reject(error) : resolve(listening)));
  });
  return {
    port: portOf(server),
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

// ---- pacing and statistics -------------------------------------------------------------------------

/**
 * Calls `fire(k)` for k = 0..total-1 at `perSecond`, catching up every 1 ms tick on however many
 * are due since the start (so a late tick does not lower the rate). Resolves with the achieved rate.
 */
export function pace(perSecond: number, total: number, fire: (k: number) => void): Promise<number> {
  return new Promise((resolve) => {
    const start = performance.now();
    let sent = 0;
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - start) * perSecond) / 1000));
      while (sent < due) fire(sent++);
      if (sent < total) return;
      clearInterval(timer);
      resolve((sent * 1000) / (performance.now() - start));
    };
    const timer = setInterval(tick, 1);
  });
}

/** Percentile of an ascending-sorted array (nearest rank). */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export function log(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}
