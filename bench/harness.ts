/**
 * Shared pieces of the scenarios: the bench app on a runtime in a fresh temp dir, in-process
 * publishing, the HTTP load generator in a worker thread, bare express, and `petrel` child processes.
 */
import express from 'express';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type RequestListener } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Worker } from 'node:worker_threads';
import pino from 'pino';
import type { App } from '../core/app.js';
import type { CloudEvent } from '../core/event.js';
import { LocalRuntime } from '../adapters/local/index.js';
import { startWorker } from '../adapters/http/thread.js';
import { benchApp, echoReply, ECHO_PATH, probe, type BenchAppOptions, type HandlerKind } from './app.js';
import type { LoadJob, LoadReply } from './http-worker.js';
import { log, sleep } from './stats.js';

/** Generous: idle() only waits for the backlog the run itself created. */
export const IDLE_TIMEOUT_MS = 600_000;
/** Clients of every closed-loop HTTP scenario. */
export const HTTP_CONCURRENCY = 16;
export const MAIN_DIR = fileURLToPath(new URL('..', import.meta.url));
export const SILENT = pino({ level: 'silent' });

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `petrel-bench-${prefix}-`));
}

export interface Harness {
  runtime: LocalRuntime;
  stop(): Promise<void>;
}

/** Starts the bench app (or `app`) on the embedded runtime in a fresh temp dir; `stop` closes it and removes the dir. */
export async function startRuntime(kind: HandlerKind, options: BenchAppOptions & { app?: App } = {}): Promise<Harness> {
  const dataDir = tempDir('data');
  probe.handled = 0;
  probe.started = undefined;
  try {
    const runtime = await LocalRuntime.start(options.app ?? benchApp(kind, options), { dataDir, logger: SILENT });
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

/** Publishes batches with at most `inFlight` publish calls outstanding (any target with `publish`). */
export async function publishAll(target: { publish(events: CloudEvent[]): Promise<void> }, all: CloudEvent[][], inFlight: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < all.length) await target.publish(all[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, all.length) }, worker));
}

/** A lost or doubled delivery makes every figure meaningless: fail the bench. */
export function expectHandled(seen: number, expected: number): void {
  if (seen !== expected) throw new Error(`the handler succeeded ${seen} times for ${expected} events (expected exactly once each)`);
}

// ---- HTTP load, from a worker thread ------------------------------------------------------------------

export interface LoadResult {
  /** This thread's clock around the worker's go and done. */
  start: number;
  end: number;
  answered: number;
  elapsedMs: number;
  shed: number;
  /** Requests sent again after a kept-alive socket closed under them (see http-worker.ts). */
  resent: number;
  sendRate?: number;
}

/** An HTTP load generator in a worker thread (bench/http-worker.ts). */
export class HttpLoad {
  private readonly worker: Worker;
  private readonly replies: LoadReply[] = [];
  private waiting?: (reply: LoadReply) => void;
  private failure?: Error;

  constructor() {
    this.worker = startWorker(new URL('./http-worker.ts', import.meta.url));
    this.worker.on('message', (reply: LoadReply) => this.deliver(reply));
    this.worker.on('error', (error) => this.deliver({ type: 'error', message: `load worker crashed: ${error.message}` }));
    this.worker.on('exit', (code) => this.deliver({ type: 'error', message: `load worker exited (code ${code})` }));
  }

  async run(job: LoadJob): Promise<LoadResult> {
    this.worker.postMessage(job);
    await this.reply('ready');
    const start = performance.now();
    this.worker.postMessage('go');
    const done = await this.reply('done');
    if (done.resent > 0) log(`  ${done.resent} request(s) sent again: the server closed an idle kept-alive socket as they went out on it`);
    return { start, end: performance.now(), answered: done.answered, elapsedMs: done.elapsedMs, shed: done.shed, resent: done.resent, sendRate: done.sendRate };
  }

  async close(): Promise<void> {
    this.failure ??= new Error('load worker closed');
    await this.worker.terminate();
  }

  private deliver(reply: LoadReply): void {
    if (reply.type === 'error') this.failure ??= new Error(reply.message);
    else this.replies.push(reply);
    this.waiting?.(reply);
  }

  private async reply<T extends LoadReply['type']>(type: T): Promise<Extract<LoadReply, { type: T }>> {
    for (;;) {
      const reply = this.replies.shift();
      if (reply) {
        if (reply.type !== type) throw new Error(`load worker answered "${reply.type}", expected "${type}"`);
        return reply as Extract<LoadReply, { type: T }>;
      }
      if (this.failure) throw this.failure;
      await new Promise<LoadReply>((resolve) => (this.waiting = resolve));
      this.waiting = undefined;
    }
  }
}

/** Runs `use` with a fresh load worker, closed afterwards. */
export async function withLoad<T>(use: (load: HttpLoad) => Promise<T>): Promise<T> {
  const load = new HttpLoad();
  try {
    return await use(load);
  } finally {
    await load.close();
  }
}

export function portOf(server: { address(): AddressInfo | string | null }): number {
  return (server.address() as AddressInfo).port;
}

export async function listenOn(handler: RequestListener): Promise<{ port: number; close(): Promise<void> }> {
  const server = createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
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

/**
 * The floor for petrel's ingress: bare express 5 doing what it must do at least, and nothing
 * durable. POST /echo answers the echo (express.json, as an express app would); POST /events
 * reads the raw body, parses it and answers 202 with the id, like the ingress.
 */
export function bareExpress(): Promise<{ port: number; close(): Promise<void> }> {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.post(ECHO_PATH, express.json(), (req, res) => {
    res.status(200).json(echoReply(req.body));
  });
  app.post('/events', express.raw({ type: () => true, limit: 256 * 1024 }), (req, res) => {
    const event = JSON.parse((req.body as Buffer).toString('utf8')) as { id: string };
    res.status(202).json({ accepted: 1, ids: [event.id] });
  });
  return listenOn(app);
}

/** A free loopback port (there is a small race until the child binds it; fine for a bench). */
export async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

// ---- petrel in a child process ----------------------------------------------------------------------

export interface PetrelProcess {
  child: ChildProcess;
  port: number;
  /** performance.now() when it was spawned. */
  spawnedAt: number;
  /** Resolves with the performance.now() at which a stdout line containing `text` arrived. */
  lineWith(text: string): Promise<number>;
  /** SIGTERM, then SIGKILL after 10 s; resolves once it has exited. */
  stop(): Promise<void>;
}

/** `node bin/petrel.js <args>` with an app module (the bench app's by default); stderr is kept for the error message. */
export function spawnPetrel(args: string[], port: number, env: Record<string, string>, app = 'bench/app-module.ts'): PetrelProcess {
  const spawnedAt = performance.now();
  const child = spawn(process.execPath, [join(MAIN_DIR, 'bin/petrel.js'), ...args, join(MAIN_DIR, app), '--port', String(port)], {
    cwd: MAIN_DIR,
    env: { ...process.env, PETREL_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let buffered = '';
  const waiters: Array<{ text: string; resolve: (at: number) => void }> = [];
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4000)));
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    const at = performance.now();
    const lines = (buffered + chunk).split('\n');
    buffered = lines.pop()!;
    for (const line of lines) {
      for (const waiter of waiters.filter((w) => line.includes(w.text))) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(at);
      }
    }
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // Never outlives the bench: a crash (or a closed stdout) would otherwise leave it serving.
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  void exited.then(() => process.off('exit', kill));
  return {
    child,
    port,
    spawnedAt,
    lineWith: (text) =>
      Promise.race([
        new Promise<number>((resolve) => waiters.push({ text, resolve })),
        exited.then(() => Promise.reject(new Error(`petrel ${args.join(' ')} exited (code ${child.exitCode}): ${stderr.trim().slice(-1000)}`))),
      ]),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(kill);
      }
    },
  };
}

/** CPU time (user + system) of one thread of a process, in ms, from /proc (the main thread's id is the pid). */
export function threadCpuMs(pid: number, tid: number): number {
  const fields = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Unsettled events per function of a `petrel` process, as its GET /healthz reports them. */
export async function lagOf(port: number): Promise<Record<string, number>> {
  const health = (await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()) as { lag?: Record<string, number> };
  return health.lag ?? {};
}

/** Polls GET /healthz every 2 ms until it answers 200; resolves with performance.now() then. */
export async function waitHealthy(port: number, exited: Promise<unknown>, timeoutMs = 60_000): Promise<number> {
  let gone = false;
  void exited.then(() => (gone = true), () => (gone = true));
  const until = performance.now() + timeoutMs;
  while (performance.now() < until && !gone) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`);
      await res.arrayBuffer();
      if (res.status === 200) return performance.now();
    } catch {
      // not listening yet
    }
    await sleep(2);
  }
  throw new Error(gone ? 'the process exited before /healthz answered' : `/healthz did not answer 200 within ${timeoutMs} ms`);
}
