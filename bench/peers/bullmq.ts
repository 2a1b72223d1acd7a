/**
 * The BullMQ peer: a queue and a worker on the local Redis, running the bench's handler with the
 * same retry policy as petrel's function (5 attempts, 200 ms x 2^n with full jitter), and Redis
 * made durable for the run (AOF, fsync every second: like SQLite WAL with synchronous=NORMAL, it
 * survives a crash of the process and may lose the last second on power loss).
 */
import { Queue, Worker, type Job, type JobsOptions } from 'bullmq';
import { Redis } from 'ioredis';
import { createRequire } from 'node:module';
import { handleBenchEvent } from '../app.js';
import type { BenchData } from '../events.js';
import { log, sleep } from '../stats.js';

export const REDIS = { host: '127.0.0.1', port: Number(process.env.PETREL_REDIS_PORT ?? 6379) };
const version = (createRequire(import.meta.url)('bullmq/package.json') as { version: string }).version;
export const BULLMQ = `BullMQ ${version}`;

const JOB_OPTIONS: JobsOptions = {
  attempts: 5,
  backoff: { type: 'exponential', delay: 200, jitter: 1 },
  // The lightest setting for BullMQ: completed jobs are not kept.
  removeOnComplete: true,
  removeOnFail: 1000,
};

/** Why BullMQ cannot run here, or undefined. */
export async function bullmqUnavailable(): Promise<string | undefined> {
  const client = new Redis({ ...REDIS, lazyConnect: true, maxRetriesPerRequest: 1 });
  client.on('error', () => undefined);
  try {
    await Promise.race([client.connect(), sleep(2000).then(() => Promise.reject(new Error('no answer within 2 s')))]);
    await client.call('PING');
    return undefined;
  } catch (error) {
    return `Redis at ${REDIS.host}:${REDIS.port} is not reachable (${(error as Error).message})`;
  } finally {
    client.disconnect();
  }
}

/**
 * Turns on AOF with fsync every second for the duration of `use`, then restores what was there.
 * Resolves `use`'s result and, when Redis refused CONFIG, why it could not be made durable.
 */
export async function withDurableRedis<T>(use: () => Promise<T>): Promise<{ result: T; notDurable?: string }> {
  const client = new Redis({ ...REDIS, lazyConnect: true, maxRetriesPerRequest: 1 });
  client.on('error', () => undefined);
  await client.connect();
  const setting = async (name: string) => ((await client.call('CONFIG', 'GET', name)) as string[])[1];
  let previous: { appendonly: string; appendfsync: string } | undefined;
  let notDurable: string | undefined;
  const restore = async () => {
    if (!previous) return;
    await client.call('CONFIG', 'SET', 'appendfsync', previous.appendfsync);
    await client.call('CONFIG', 'SET', 'appendonly', previous.appendonly);
    log(`Redis restored: appendonly ${previous.appendonly}, appendfsync ${previous.appendfsync}`);
    previous = undefined;
  };
  const interrupted = () => void restore().finally(() => process.exit(130));
  try {
    try {
      previous = { appendonly: await setting('appendonly'), appendfsync: await setting('appendfsync') };
      process.once('SIGINT', interrupted);
      await client.call('CONFIG', 'SET', 'appendfsync', 'everysec');
      await client.call('CONFIG', 'SET', 'appendonly', 'yes');
      await aofReady(client);
      log(`Redis durable for the BullMQ runs: appendonly yes, appendfsync everysec (was ${previous.appendonly}, ${previous.appendfsync})`);
    } catch (error) {
      notDurable = `Redis refused CONFIG (${(error as Error).message}); BullMQ ran on Redis as configured`;
      log(`warning: ${notDurable}`);
    }
    return { result: await use(), notDurable };
  } finally {
    process.removeListener('SIGINT', interrupted);
    await restore();
    await client.quit();
  }
}

/** Turning AOF on rewrites the data set in the background; measure only once that is done. */
async function aofReady(client: Redis): Promise<void> {
  for (let waited = 0; waited < 60_000; waited += 50) {
    const info = String(await client.call('INFO', 'persistence'));
    if (/aof_enabled:1/.test(info) && /aof_rewrite_in_progress:0/.test(info) && /aof_rewrite_scheduled:0/.test(info)) return;
    await sleep(50);
  }
  throw new Error('the AOF rewrite did not finish within 60 s');
}

/** A fresh queue and worker; `completed` counts jobs BullMQ has recorded as completed. */
export class BullmqPeer {
  readonly queue: Queue<BenchData>;
  readonly worker: Worker<BenchData>;
  completed = 0;
  private waiter?: { count: number; resolve: () => void };

  private constructor(name: string, concurrency: number) {
    this.queue = new Queue<BenchData>(name, { connection: REDIS, defaultJobOptions: JOB_OPTIONS });
    this.worker = new Worker<BenchData>(name, async (job: Job<BenchData>) => handleBenchEvent(job.data.i, job.attemptsMade + 1), { connection: REDIS, concurrency });
    this.worker.on('completed', () => {
      this.completed++;
      if (this.waiter && this.completed >= this.waiter.count) this.waiter.resolve();
    });
  }

  static async start(name: string, concurrency: number): Promise<BullmqPeer> {
    const peer = new BullmqPeer(name, concurrency);
    await Promise.all([peer.queue.waitUntilReady(), peer.worker.waitUntilReady()]);
    return peer;
  }

  /** Adds a batch of jobs (one addBulk call). */
  add(batch: BenchData[]): Promise<unknown> {
    return this.queue.addBulk(batch.map((data) => ({ name: 'bench', data })));
  }

  /** Resolves once `count` jobs in all have completed. */
  completion(count: number, timeoutMs: number): Promise<void> {
    if (this.completed >= count) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`BullMQ completed ${this.completed} of ${count} jobs within ${timeoutMs} ms`)), timeoutMs);
      this.waiter = {
        count,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
    });
  }

  async close(): Promise<void> {
    await this.worker.close();
    await this.queue.obliterate({ force: true });
    await this.queue.close();
  }
}
