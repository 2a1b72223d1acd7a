/**
 * The ingress on a thread of its own (thread-worker.ts), for a runtime whose own thread is busy
 * with the app (the embedded runtime): that thread only answers the hot routes' requests, handed
 * over with their bodies read, and serves express to the ingress thread on a loopback port.
 *
 * Measured (air-quality bench, 2,000 readings/s over HTTP, one per request, 3 interleaved runs
 * each): 419-429 -> 378-392 us of the runtime thread per reading.
 */
import { buildSync } from 'esbuild';
import type { AddressInfo } from 'node:net';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker, type ResourceLimits } from 'node:worker_threads';
import type { Logger } from '../../core/ports.js';
import type { Ingress } from './ingress.js';
import { HttpServer, type Listening } from './server.js';
import type { FromIngressThread, ThreadSetup, ToIngressThread } from './wire.js';

/** Hot requests the ingress thread lets wait for this thread at most (then 429s): memory stays bounded. */
export const MAX_WAITING = 4096;

/**
 * What the ingress thread allocates dies young (requests, replies): a small young generation keeps
 * its memory small. With V8's default the process's RSS swung by 50 MB under 2,000 requests/s.
 */
const INGRESS_HEAP: ResourceLimits = { maxYoungGenerationSizeMb: 4 };

export class IngressThread implements Listening {
  private worker: Worker;
  private readonly bound: AddressInfo;
  private exited!: Promise<void>;
  private stopping = false;
  private closing?: Promise<void>;

  private constructor(
    private readonly ingress: Ingress,
    private readonly rest: HttpServer,
    private readonly setup: ThreadSetup,
    private readonly logger: Logger,
    started: { worker: Worker; address: AddressInfo },
  ) {
    this.worker = started.worker;
    this.bound = started.address;
    this.watch();
  }

  /** Serves `ingress` on `port` (0 picks a free one) and `host` from an ingress thread; rejects clearly if the port is taken. */
  static async listen(ingress: Ingress, port: number, host: string, logger: Logger, maxWaiting = MAX_WAITING): Promise<IngressThread> {
    const rest = await HttpServer.listen(ingress.rest, 0, '127.0.0.1');
    // The ingress thread keeps its connections here open: none is closed for idleness just as a request goes out on it.
    rest.server.keepAliveTimeout = 0;
    const setup: ThreadSetup = { port, host, restPort: rest.address().port, routes: ingress.hot.routes, maxWaiting };
    try {
      const started = await startThread(ingress, setup);
      // Started again on the same port if it ever stops: the port 0 stood for is now known.
      return new IngressThread(ingress, rest, { ...setup, port: started.address.port }, logger, started);
    } catch (error) {
      await rest.close();
      throw error;
    }
  }

  address(): AddressInfo {
    return this.bound;
  }

  stopAccepting(): void {
    this.stopping = true;
    this.worker.postMessage({ kind: 'stop-accepting' } satisfies ToIngressThread);
    this.rest.stopAccepting();
  }

  close(): Promise<void> {
    this.stopping = true;
    this.closing ??= (async () => {
      this.worker.postMessage({ kind: 'close' } satisfies ToIngressThread);
      await this.exited;
      await this.rest.close();
    })();
    return this.closing;
  }

  /** A thread that stops unasked (a bug, out of memory) is logged and started again. */
  private watch(): void {
    const worker = this.worker;
    worker.on('error', (error) => this.logger.error({ err: error }, 'the ingress thread failed'));
    this.exited = new Promise((resolve) =>
      worker.once('exit', (code) => {
        resolve();
        if (this.stopping) return;
        this.logger.error({ code }, 'the ingress thread stopped; starting it again');
        startThread(this.ingress, this.setup).then(
          (started) => {
            this.worker = started.worker;
            this.watch();
            if (this.stopping) this.worker.postMessage({ kind: 'close' } satisfies ToIngressThread);
          },
          (error: unknown) => this.logger.error({ err: error }, 'the ingress thread could not be started again; HTTP is no longer served'),
        );
      }),
    );
  }
}

/** Starts an ingress thread and hands its hot requests to `ingress`; resolves once it listens. */
async function startThread(ingress: Ingress, setup: ThreadSetup): Promise<{ worker: Worker; address: AddressInfo }> {
  const worker = startWorker(new URL(`./thread-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url), setup, INGRESS_HEAP);
  const send = (message: ToIngressThread) => worker.postMessage(message);
  try {
    const address = await new Promise<AddressInfo>((resolve, reject) => {
      worker.on('message', (message: FromIngressThread) => {
        if (message.kind === 'request') {
          void ingress.hot.answer(message.request).then((reply) => send({ kind: 'reply', id: message.id, reply }));
        } else if (message.kind === 'listening') resolve(message.address);
        else reject(new Error(message.message));
      });
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`the ingress thread exited (code ${code}) before listening`)));
    });
    return { worker, address };
  } catch (error) {
    await worker.terminate();
    throw error;
  }
}

/**
 * A worker thread running `entry` (TypeScript or JavaScript) with what it imports, bundled by
 * esbuild into one script. Worker threads do not inherit tsx's loader on Node 20; registering it
 * in the worker took 170-250 ms (it starts a loader thread of its own), bundling and starting
 * about 100 ms.
 */
export function startWorker(entry: URL, workerData?: unknown, resourceLimits?: ResourceLimits): Worker {
  const bundle = buildSync({ entryPoints: [fileURLToPath(entry)], bundle: true, platform: 'node', format: 'cjs', target: 'node20', write: false, logLevel: 'silent' });
  return new Worker(bundle.outputFiles[0].text, { eval: true, workerData, resourceLimits });
}
