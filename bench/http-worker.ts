/**
 * The HTTP load generator, run in a worker thread (see HttpLoad in harness.ts) so that building
 * and sending requests does not share the runtime's event loop: the figures are the server's.
 *
 * Protocol: the parent posts a job; the worker prepares it (builds the bodies) and answers
 * `ready`; the parent posts `go` and starts its clock; the worker answers `done` or `error`.
 */
import { Agent, request } from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';
import { BATCH, STRUCTURED } from '../adapters/http/binding.js';
import { batches, benchEvent } from './events.js';

export type LoadJob =
  /** POST `count` events as batches of `batchSize`, `concurrency` requests at once. */
  | { kind: 'batches'; count: number; batchSize: number; warmUp: boolean; concurrency: number }
  /** POST one structured-mode event per request, for `seconds` or `count` requests. */
  | { kind: 'single'; seconds?: number; count?: number; concurrency: number };

export type LoadReply =
  | { type: 'ready' }
  | { type: 'done'; accepted: number; elapsedMs: number; shed: number }
  | { type: 'error'; message: string };

const port = (workerData as { port: number }).port;
const agent = new Agent({ keepAlive: true, maxSockets: 64 });
const parent = parentPort!;
let shed = 0;
let go: (() => void) | undefined;

parent.on('message', (message: LoadJob | 'go') => {
  if (message === 'go') return go?.();
  run(message).catch((error: unknown) => parent.postMessage({ type: 'error', message: error instanceof Error ? error.message : String(error) } satisfies LoadReply));
});

async function run(job: LoadJob): Promise<void> {
  shed = 0;
  const bodies = job.kind === 'batches' ? batches(job.count, job.batchSize, job.warmUp).map((b) => JSON.stringify(b)) : [];
  await new Promise<void>((resolve) => {
    go = resolve;
    parent.postMessage({ type: 'ready' } satisfies LoadReply);
  });
  const start = performance.now();
  let accepted = 0;
  let next = 0;
  const worker =
    job.kind === 'batches'
      ? async () => {
          while (next < bodies.length) {
            const body = bodies[next++];
            await postEvents(BATCH, body);
          }
        }
      : async () => {
          const end = start + (job.seconds ?? Infinity) * 1000;
          while (performance.now() < end && next++ < (job.count ?? Infinity)) {
            await postEvents(STRUCTURED, JSON.stringify(benchEvent(-1)));
            accepted++;
          }
        };
  await Promise.all(Array.from({ length: job.concurrency }, worker));
  if (job.kind === 'batches') accepted = job.count;
  parent.postMessage({ type: 'done', accepted, elapsedMs: performance.now() - start, shed } satisfies LoadReply);
}

/** POSTs `body` to /events expecting 202; a 429 (load shed) is retried after a short pause. */
async function postEvents(contentType: string, body: string): Promise<void> {
  for (;;) {
    const { status, text } = await post(contentType, body);
    if (status === 202) return;
    if (status !== 429) throw new Error(`POST /events answered ${status}: ${text.slice(0, 300)}`);
    shed++;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function post(contentType: string, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const headers = { 'content-type': contentType, 'content-length': Buffer.byteLength(body) };
    const req = request({ host: '127.0.0.1', port, path: '/events', method: 'POST', agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}
