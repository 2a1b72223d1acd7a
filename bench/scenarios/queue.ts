/**
 * Scenario 1: durable event processing by one function that retries failures, against BullMQ.
 * The same handler (bench/app.ts: 1% of first attempts throw, the retry succeeds), the same
 * 200-byte payloads, the same retry policy, the same concurrency (64) and the same publishing
 * (batches of 100, 20 calls in flight), all durable: petrel's log in SQLite (WAL, synchronous
 * NORMAL), BullMQ's Redis with AOF and fsync every second, NATS JetStream on file storage.
 */
import type { CloudEvent } from '../../core/event.js';
import { benchApp, probe } from '../app.js';
import { batches, type BenchData } from '../events.js';
import { expectHandled, IDLE_TIMEOUT_MS, publishAll, startRuntime } from '../harness.js';
import { BULLMQ, bullmqUnavailable, BullmqPeer, withDurableRedis } from '../peers/bullmq.js';
import { natsTarget, startNats } from '../peers/nats.js';
import { log, percentile } from '../stats.js';
import { BATCH_SIZE, IN_PROCESS_IN_FLIGHT, pacedLatency } from './embedded.js';
import { repeat, type BenchOptions, type MetricSpec, type Scenario } from './types.js';

const CONCURRENCY = 64;
const LATENCY_RATE = 2_000;

/** What the scenario drives: petrel's runtimes as they are, BullMQ through BullmqTarget. */
interface QueueTarget {
  publish(events: CloudEvent[]): Promise<void>;
  idle(timeoutMs: number): Promise<void>;
}

const RATE = (who: string) => `${who}: added -> all handled`;
const P50 = (who: string) => `${who}: add -> handler start p50 at 2,000/s`;
const P99 = (who: string) => `${who}: add -> handler start p99 at 2,000/s`;
const WHO = { embedded: 'petrel embedded', nats: 'petrel on NATS', bullmq: 'BullMQ' } as const;

function metrics(): MetricSpec[] {
  const peer = `${BULLMQ} + Redis AOF everysec`;
  const out: MetricSpec[] = [];
  for (const who of [WHO.embedded, WHO.nats]) {
    out.push({ figure: RATE(who), unit: 'events/s', higherIsBetter: true, baseline: { figure: RATE(WHO.bullmq), name: peer }, ...(who === WHO.embedded ? { target: { ratio: 2, text: '>= 2x BullMQ' } } : {}) });
    out.push({ figure: P50(who), unit: 'ms', higherIsBetter: false, baseline: { figure: P50(WHO.bullmq), name: peer } });
    out.push({ figure: P99(who), unit: 'ms', higherIsBetter: false, baseline: { figure: P99(WHO.bullmq), name: peer } });
  }
  return out;
}

export const queueScenario: Scenario = {
  name: '1. durable processing, 1% of first attempts fail (vs BullMQ)',
  metrics: metrics(),
  async measure(o, runs) {
    const missing: Record<string, string> = {};
    const nats = await natsTarget();
    if (!nats.module) log(`scenario 1: NATS rows skipped: ${nats.reason}`);
    const redisDown = await bullmqUnavailable();
    if (redisDown) {
      for (const f of [RATE, P50, P99]) missing[f(WHO.bullmq)] = redisDown;
      log(`scenario 1: BullMQ could not run: ${redisDown}`);
    }
    const tag = `q${process.pid}`;
    const measureAll = () =>
      repeat('scenario 1', runs, async (run) => {
        const figures: Record<string, number> = {};
        const embedded = await startRuntime('retrying', { concurrency: CONCURRENCY });
        try {
          Object.assign(figures, await measureTarget(WHO.embedded, embedded.runtime, o));
        } finally {
          await embedded.stop();
        }
        if (!redisDown) {
          const peer = await BullmqPeer.start(`petrel-bench-${tag}-${run}`, CONCURRENCY);
          try {
            Object.assign(figures, await measureTarget(WHO.bullmq, bullmqTarget(peer), o));
          } finally {
            await peer.close();
          }
        }
        if (nats.module) {
          probe.handled = 0;
          const app = benchApp('retrying', { name: `bench-${tag}-${run}`, concurrency: CONCURRENCY });
          const { runtime, stop } = await startNats(nats.module, app);
          try {
            Object.assign(figures, await measureTarget(WHO.nats, runtime, o));
          } finally {
            await stop();
          }
        }
        return figures;
      });
    if (redisDown) return { runs: await measureAll(), missing };
    const { result, notDurable } = await withDurableRedis(measureAll);
    return { runs: result, notes: notDurable ? { [RATE(WHO.bullmq)]: notDurable } : undefined };
  },
};

/** Throughput (warmed up), then latency at 2,000/s, on one fresh target. */
async function measureTarget(who: string, target: QueueTarget, o: BenchOptions): Promise<Record<string, number>> {
  await publishAll(target, batches(o.warmUp, BATCH_SIZE, true), IN_PROCESS_IN_FLIGHT);
  await target.idle(IDLE_TIMEOUT_MS);
  const work = batches(o.queueEvents, BATCH_SIZE);
  const before = probe.handled;
  const start = performance.now();
  await publishAll(target, work, IN_PROCESS_IN_FLIGHT);
  await target.idle(IDLE_TIMEOUT_MS);
  const elapsed = performance.now() - start;
  expectHandled(probe.handled - before, o.queueEvents);
  const samples = await pacedLatency(target, LATENCY_RATE, o.latencySeconds);
  samples.publish.sort();
  return { [RATE(who)]: (o.queueEvents * 1000) / elapsed, [P50(who)]: percentile(samples.publish, 50), [P99(who)]: percentile(samples.publish, 99) };
}

/** BullMQ behind the same calls: a batch is one addBulk, a single event one `add`; idle waits for completions. */
function bullmqTarget(peer: BullmqPeer): QueueTarget {
  let added = 0;
  return {
    publish: async (events) => {
      added += events.length;
      const data = events.map((e) => e.data as BenchData);
      if (data.length === 1) await peer.queue.add('bench', data[0]);
      else await peer.add(data);
    },
    idle: (timeoutMs) => peer.completion(added, timeoutMs),
  };
}
