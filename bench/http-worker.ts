/**
 * The HTTP load generator, run in a worker thread (see HttpLoad in harness.ts) so that building
 * and sending requests does not share the server's event loop: the figures are the server's.
 * Every target gets the same client: node:http with keep-alive, at most 64 sockets.
 *
 * Protocol: the parent posts a job; the worker prepares it (builds the bodies) and answers
 * `ready`; the parent posts `go` and starts its clock; the worker answers `done` or `error`.
 */
import { Agent, request } from 'node:http';
import { parentPort } from 'node:worker_threads';
import { BATCH, STRUCTURED } from '../adapters/http/binding.js';
import { batches, benchEvent } from './events.js';
import { readingAt, type ReadingPlan } from './readings.js';
import { pace } from './stats.js';

export interface LoadTarget {
  port: number;
  path: string;
  headers?: Record<string, string>;
  /** The status a handled request answers; 429 is retried after a pause, anything else fails the job. */
  status: number;
}

export type BodySpec =
  /** Bench event k as a structured-mode CloudEvent (sensor k mod 1,000; nothing stamps it, as no scenario stamps over HTTP). */
  | { kind: 'bench-event' }
  | { kind: 'fixed'; body: string; contentType: string }
  /** Reading k of the plan, as JSON. */
  | { kind: 'reading'; plan: ReadingPlan };

export type LoadJob =
  /** POST `count` bench events as batches of `batchSize`, `concurrency` requests at once. */
  | { kind: 'batches'; target: LoadTarget; count: number; batchSize: number; warmUp: boolean; concurrency: number }
  /** Closed loop: `concurrency` clients, each sending its next request when the last is answered, for `seconds` or `count` requests. */
  | { kind: 'closed'; target: LoadTarget; body: BodySpec; concurrency: number; seconds?: number; count?: number }
  /** Open loop: `count` requests at `rate` per second, whatever the answers take. */
  | { kind: 'paced'; target: LoadTarget; body: BodySpec; rate: number; count: number };

export type LoadReply =
  | { type: 'ready' }
  /**
   * `answered`: requests (or, for batches, events) answered with the expected status; `resent`:
   * requests sent again after the server closed an idle kept-alive socket as they went out on it.
   */
  | { type: 'done'; answered: number; elapsedMs: number; shed: number; resent: number; sendRate?: number }
  | { type: 'error'; message: string };

const agent = new Agent({ keepAlive: true, maxSockets: 64 });
const parent = parentPort!;
let shed = 0;
let resent = 0;
let go: (() => void) | undefined;

parent.on('message', (message: LoadJob | 'go') => {
  if (message === 'go') return go?.();
  run(message).catch((error: unknown) => parent.postMessage({ type: 'error', message: error instanceof Error ? error.message : String(error) } satisfies LoadReply));
});

async function run(job: LoadJob): Promise<void> {
  shed = 0;
  resent = 0;
  const prebuilt = job.kind === 'batches' ? batches(job.count, job.batchSize, job.warmUp).map((b) => JSON.stringify(b)) : [];
  await new Promise<void>((resolve) => {
    go = resolve;
    parent.postMessage({ type: 'ready' } satisfies LoadReply);
  });
  const start = performance.now();
  const startMs = Date.now();
  let answered = 0;
  let sendRate: number | undefined;
  if (job.kind === 'batches') {
    let next = 0;
    const client = async () => {
      while (next < prebuilt.length) await send(job.target, BATCH, prebuilt[next++]);
    };
    await Promise.all(Array.from({ length: job.concurrency }, client));
    answered = job.count;
  } else if (job.kind === 'closed') {
    const end = start + (job.seconds ?? Infinity) * 1000;
    const limit = job.count ?? Infinity;
    let next = 0;
    const client = async () => {
      while (performance.now() < end && next < limit) {
        const [contentType, body] = bodyOf(job.body, next++, startMs);
        await send(job.target, contentType, body);
        answered++;
      }
    };
    await Promise.all(Array.from({ length: job.concurrency }, client));
  } else {
    // A device sends its next reading once the last one is answered, as a real one does; without
    // this, a late tick's catch-up burst could deliver two readings of a device out of order.
    const devices = job.body.kind === 'reading' ? job.body.plan.devices : 0;
    const lastOfDevice: Array<Promise<void>> = [];
    const pending: Promise<void>[] = [];
    let failure: unknown;
    sendRate = await pace(job.rate, job.count, (k) => {
      const [contentType, body] = bodyOf(job.body, k, startMs);
      const after = devices > 0 ? lastOfDevice[k % devices] : undefined;
      const sent = (after ?? Promise.resolve()).then(() => send(job.target, contentType, body)).then(() => void answered++, (error: unknown) => void (failure ??= error));
      if (devices > 0) lastOfDevice[k % devices] = sent;
      pending.push(sent);
    });
    await Promise.all(pending);
    if (failure) throw failure;
  }
  parent.postMessage({ type: 'done', answered, elapsedMs: performance.now() - start, shed, resent, sendRate } satisfies LoadReply);
}

function bodyOf(spec: BodySpec, k: number, startMs: number): [contentType: string, body: string] {
  switch (spec.kind) {
    case 'bench-event':
      return [STRUCTURED, JSON.stringify(benchEvent(k))];
    case 'fixed':
      return [spec.contentType, spec.body];
    case 'reading':
      return ['application/json', JSON.stringify(readingAt(spec.plan, k, startMs))];
  }
}

/**
 * POSTs `body` expecting the target's status; a 429 (load shed) is retried after a short pause.
 * A request that went out on a kept-alive socket the server was closing for idleness is sent
 * again once, as Node's docs advise (ClientRequest.reusedSocket): every body here is safe to
 * resend (events by id, readings by device and time).
 */
async function send(target: LoadTarget, contentType: string, body: string): Promise<void> {
  for (let resends = 0; ; ) {
    const answer = await post(target, contentType, body).catch((error: Error & { reusedSocket?: boolean; code?: string }) => {
      if (!error.reusedSocket || resends > 0 || !(error.code === 'ECONNRESET' || error.message === 'socket hang up')) throw error;
      resends++;
      resent++;
      return undefined;
    });
    if (!answer) continue;
    const { status, text } = answer;
    if (status === target.status) return;
    if (status !== 429) throw new Error(`POST ${target.path} answered ${status}, expected ${target.status}: ${text.slice(0, 300)}`);
    shed++;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function post(target: LoadTarget, contentType: string, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const headers = { ...target.headers, 'content-type': contentType, 'content-length': Buffer.byteLength(body) };
    const req = request({ host: '127.0.0.1', port: target.port, path: target.path, method: 'POST', agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', (error) => reject(Object.assign(error, { reusedSocket: req.reusedSocket })));
    req.end(body);
  });
}
