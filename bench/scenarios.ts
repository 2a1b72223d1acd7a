/**
 * The measured scenarios. Each `run` is one repetition on a fresh runtime (fresh temp dir), warmed
 * up first, and returns its figures by metric name; run.ts repeats it and reports the medians.
 */
import type { LocalRuntime } from '../adapters/local/index.js';
import { batches, benchEvent } from './events.js';
import { bareExpress, HttpLoad, log, pace, percentile, probe, publishAll, startRuntime, type HandlerKind } from './harness.js';

export interface BenchOptions {
  /** Events per throughput run. */
  events: number;
  /** Events published (in batches) before each measured run. */
  warmUp: number;
  /** Length of each fixed-rate latency window. */
  latencySeconds: number;
  /** Length of each single-event POST window. */
  postSeconds: number;
}

export interface Target {
  value: number;
  /** E.g. 'target 20k events/s'; becomes baselineName in the results file. */
  name: string;
}

export interface MetricSpec {
  name: string;
  unit: string;
  higherIsBetter: boolean;
  /** Only the figures the issue sets a target for have one. */
  target?: Target;
  /** Or: another figure of the same scenario is the baseline (a peer measured in the same run). */
  baselineFrom?: { metric: string; name: string };
}

export interface Scenario {
  name: string;
  metrics: MetricSpec[];
  run(options: BenchOptions): Promise<Record<string, number>>;
}

const THROUGHPUT_TARGET: Target = { value: 20_000, name: 'target 20k events/s' };
const P99_TARGET: Target = { value: 10, name: 'target p99 < 10 ms' };
const BATCH_SIZE = 100;
const IN_PROCESS_IN_FLIGHT = 20;
const HTTP_BATCH_CONCURRENCY = 8;
const HTTP_SINGLE_CONCURRENCY = 16;
/** Generous: idle() is only waiting for the backlog the run itself created. */
const IDLE_TIMEOUT_MS = 600_000;

const PERCENTILES = [50, 90, 99, 100] as const;
const ACCEPT = 'accept -> handler start';
const PUBLISH = 'publish call -> handler start';

const SINGLE = `accepted requests (1 event each), c=${HTTP_SINGLE_CONCURRENCY}`;
const EXPRESS = `bare express 5, same requests, c=${HTTP_SINGLE_CONCURRENCY}`;

const HANDLED = 'accepted durably and handled';
const ACCEPTED = 'accepted durably (publish only)';
const throughputMetrics: MetricSpec[] = [
  { name: HANDLED, unit: 'events/s', higherIsBetter: true, target: THROUGHPUT_TARGET },
  { name: ACCEPTED, unit: 'events/s', higherIsBetter: true },
];

export const scenarios: Scenario[] = [
  { name: 'durable in-process, no-op handler', metrics: throughputMetrics, run: (o) => durableInProcess('noop', o) },
  { name: 'durable in-process, table-write handler', metrics: throughputMetrics, run: (o) => durableInProcess('table', o) },
  { name: 'durable over HTTP, batches of 100', metrics: throughputMetrics, run: durableOverHttp },
  {
    name: 'HTTP single-event structured POST',
    metrics: [
      { name: SINGLE, unit: 'requests/s', higherIsBetter: true, baselineFrom: { metric: EXPRESS, name: 'bare express 5 POST (parse, 202), same client' } },
      { name: EXPRESS, unit: 'requests/s', higherIsBetter: true },
    ],
    run: singleEventPosts,
  },
  { name: 'latency at 1,000 events/s', metrics: latencyMetrics(true), run: (o) => latency(1_000, o) },
  { name: 'latency at 5,000 events/s', metrics: latencyMetrics(false), run: (o) => latency(5_000, o) },
];

// ---- 1. durable throughput, in-process ------------------------------------------------------------

async function durableInProcess(kind: HandlerKind, o: BenchOptions): Promise<Record<string, number>> {
  const { runtime, stop } = await startRuntime(kind);
  try {
    await publishAll(runtime, batches(o.warmUp, BATCH_SIZE, true), IN_PROCESS_IN_FLIGHT);
    await runtime.idle(IDLE_TIMEOUT_MS);
    // Built before the clock starts, so the figure is the runtime's, not the generator's.
    const work = batches(o.events, BATCH_SIZE);
    const before = probe.handled;
    const start = performance.now();
    await publishAll(runtime, work, IN_PROCESS_IN_FLIGHT);
    const published = performance.now();
    await runtime.idle(IDLE_TIMEOUT_MS);
    const done = performance.now();
    expectHandled(probe.handled - before, o.events);
    return throughput(o.events, start, published, done);
  } finally {
    await stop();
  }
}

// ---- 2. durable throughput over HTTP ----------------------------------------------------------------

async function durableOverHttp(o: BenchOptions): Promise<Record<string, number>> {
  const { runtime, stop } = await startRuntime('noop');
  const load = await HttpLoad.aimAt(runtime);
  try {
    const job = { kind: 'batches', batchSize: BATCH_SIZE, concurrency: HTTP_BATCH_CONCURRENCY } as const;
    await load.run({ ...job, count: o.warmUp, warmUp: true });
    await runtime.idle(IDLE_TIMEOUT_MS);
    const before = probe.handled;
    const { start, end, shed } = await load.run({ ...job, count: o.events, warmUp: false });
    await runtime.idle(IDLE_TIMEOUT_MS);
    const done = performance.now();
    expectHandled(probe.handled - before, o.events);
    if (shed > 0) log(`  note: the ingress shed ${shed} batch(es) with 429; they were retried`);
    return throughput(o.events, start, end, done);
  } finally {
    await load.close();
    await stop();
  }
}

async function singleEventPosts(o: BenchOptions): Promise<Record<string, number>> {
  const single = { kind: 'single', concurrency: HTTP_SINGLE_CONCURRENCY } as const;
  const warmUp = Math.min(1, o.postSeconds / 3); // seconds: request count would scale with the machine
  const figures: Record<string, number> = {};
  const { runtime, stop } = await startRuntime('noop');
  let load = await HttpLoad.aimAt(runtime);
  try {
    await load.run({ ...single, seconds: warmUp });
    await runtime.idle(IDLE_TIMEOUT_MS);
    const before = probe.handled;
    const { accepted, elapsedMs } = await load.run({ ...single, seconds: o.postSeconds });
    await runtime.idle(IDLE_TIMEOUT_MS);
    expectHandled(probe.handled - before, accepted);
    figures[SINGLE] = (accepted * 1000) / elapsedMs;
  } finally {
    await load.close();
    await stop();
  }
  // The same client against bare express shows how much of the figure is express itself.
  const peer = await bareExpress();
  load = new HttpLoad(peer.port);
  try {
    await load.run({ ...single, seconds: warmUp });
    const { accepted, elapsedMs } = await load.run({ ...single, seconds: o.postSeconds });
    figures[EXPRESS] = (accepted * 1000) / elapsedMs;
  } finally {
    await load.close();
    await peer.close();
  }
  return figures;
}

// ---- 3. latency at a fixed rate ---------------------------------------------------------------------

function latencyMetrics(withTarget: boolean): MetricSpec[] {
  const metrics: MetricSpec[] = [];
  for (const what of [ACCEPT, PUBLISH]) {
    for (const p of PERCENTILES) {
      metrics.push({ name: `${what} ${p === 100 ? 'max' : `p${p}`}`, unit: 'ms', higherIsBetter: false, target: withTarget && p === 99 ? P99_TARGET : undefined });
    }
  }
  metrics.push({ name: 'achieved publish rate', unit: 'events/s', higherIsBetter: true });
  return metrics;
}

/**
 * One event per publish call, paced at `rate`. Handler-side stamps go by the event's index into
 * arrays here: the handler receives a copy parsed from the log, so a stamp written into the event
 * object after `publish` resolves would never reach it. The accept stamp is taken in the publish
 * promise's own reaction, which runs before the consumer's invoke continues (both are queued by
 * the same commit, the publish first).
 */
async function latency(rate: number, o: BenchOptions): Promise<Record<string, number>> {
  const { runtime, stop } = await startRuntime('noop');
  try {
    await publishAll(runtime, batches(o.warmUp, BATCH_SIZE, true), IN_PROCESS_IN_FLIGHT);
    await runtime.idle(IDLE_TIMEOUT_MS);
    await paced(runtime, rate, Math.ceil(rate / 2)); // half a second at the rate: timers and paths warm

    const total = Math.round(rate * o.latencySeconds);
    const samples = await paced(runtime, rate, total, true);
    const figures: Record<string, number> = { 'achieved publish rate': samples.rate };
    for (const [what, values] of [[ACCEPT, samples.accept], [PUBLISH, samples.publish]] as const) {
      values.sort();
      for (const p of PERCENTILES) figures[`${what} ${p === 100 ? 'max' : `p${p}`}`] = percentile(values, p);
    }
    return figures;
  } finally {
    probe.started = undefined;
    await stop();
  }
}

async function paced(runtime: LocalRuntime, rate: number, total: number, measure = false) {
  const events = Array.from({ length: total }, (_, k) => benchEvent(measure ? k : -1));
  const called = new Float64Array(total);
  const accepted = new Float64Array(total).fill(NaN);
  const started = new Float64Array(total).fill(NaN);
  if (measure) probe.started = started;
  const pending: Promise<void>[] = [];
  let failure: unknown;
  const before = probe.handled;
  const achieved = await pace(rate, total, (k) => {
    called[k] = performance.now();
    pending.push(
      runtime.publish([events[k]]).then(
        () => void (accepted[k] = performance.now()),
        (error: unknown) => void (failure ??= error),
      ),
    );
  });
  await Promise.all(pending);
  if (failure) throw failure;
  await runtime.idle(IDLE_TIMEOUT_MS);
  probe.started = undefined;
  expectHandled(probe.handled - before, total);
  const accept = new Float64Array(total);
  const publish = new Float64Array(total);
  if (measure) {
    for (let k = 0; k < total; k++) {
      if (Number.isNaN(started[k])) throw new Error(`event ${k} of ${total} was accepted but never reached the handler`);
      accept[k] = started[k] - accepted[k];
      publish[k] = started[k] - called[k];
    }
  }
  return { rate: achieved, accept, publish };
}

// ---- helpers ----------------------------------------------------------------------------------------

function throughput(events: number, start: number, published: number, done: number): Record<string, number> {
  return { [HANDLED]: (events * 1000) / (done - start), [ACCEPTED]: (events * 1000) / (published - start) };
}

/** A lost or doubled delivery makes every figure meaningless: fail the bench. */
function expectHandled(seen: number, expected: number): void {
  if (seen !== expected) throw new Error(`the handler ran ${seen} times for ${expected} events (expected exactly once each)`);
}
