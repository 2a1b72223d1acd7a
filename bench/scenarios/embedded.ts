/**
 * The embedded runtime on its own, against the targets of its own issue: durable throughput
 * (in-process and over HTTP) and accept-to-handler latency at fixed rates.
 */
import { probe, type HandlerKind } from '../app.js';
import { batches, benchEvent } from '../events.js';
import { expectHandled, IDLE_TIMEOUT_MS, portOf, publishAll, startRuntime, withLoad } from '../harness.js';
import { latencyFigures, log, pace } from '../stats.js';
import { repeat, type BenchOptions, type MetricSpec, type Scenario } from './types.js';

const THROUGHPUT_TARGET = { value: 20_000, name: 'target 20k events/s' };
const P99_TARGET = { value: 10, name: 'target p99 < 10 ms' };
export const BATCH_SIZE = 100;
export const IN_PROCESS_IN_FLIGHT = 20;
const HTTP_BATCH_CONCURRENCY = 8;

const HANDLED = 'accepted durably and handled';
const ACCEPTED = 'accepted durably (publish only)';
const throughputMetrics: MetricSpec[] = [
  { figure: HANDLED, unit: 'events/s', higherIsBetter: true, baseline: THROUGHPUT_TARGET, target: { ratio: 1, text: '>= 20k events/s' } },
  { figure: ACCEPTED, unit: 'events/s', higherIsBetter: true },
];

const ACCEPT = 'accept -> handler start';
const PUBLISH = 'publish call -> handler start';

function latencyMetrics(withTarget: boolean): MetricSpec[] {
  const metrics: MetricSpec[] = [];
  for (const what of [ACCEPT, PUBLISH]) {
    for (const p of ['p50', 'p99', 'max']) {
      const target = withTarget && what === ACCEPT && p === 'p99';
      metrics.push({ figure: `${what} ${p}`, unit: 'ms', higherIsBetter: false, ...(target ? { baseline: P99_TARGET, target: { ratio: 1, text: 'p99 < 10 ms' } } : {}) });
    }
  }
  metrics.push({ figure: 'achieved publish rate', unit: 'events/s', higherIsBetter: true });
  return metrics;
}

export const embeddedScenarios: Scenario[] = [
  {
    name: 'embedded: durable in-process, no-op handler',
    metrics: throughputMetrics,
    measure: (o, runs) => measured(repeat('embedded no-op', runs, () => durableInProcess('noop', o))),
  },
  {
    name: 'embedded: durable in-process, table-write handler',
    metrics: throughputMetrics,
    measure: (o, runs) => measured(repeat('embedded table-write', runs, () => durableInProcess('table', o))),
  },
  {
    name: 'embedded: durable over HTTP, batches of 100',
    metrics: throughputMetrics,
    measure: (o, runs) => measured(repeat('embedded over HTTP', runs, () => durableOverHttp(o))),
  },
  {
    name: 'embedded: latency at 1,000 events/s',
    metrics: latencyMetrics(true),
    measure: (o, runs) => measured(repeat('embedded latency 1k/s', runs, () => latency(1_000, o))),
  },
  {
    name: 'embedded: latency at 5,000 events/s',
    metrics: latencyMetrics(false),
    measure: (o, runs) => measured(repeat('embedded latency 5k/s', runs, () => latency(5_000, o))),
  },
];

async function measured(runs: Promise<Array<Record<string, number>>>) {
  return { runs: await runs };
}

// ---- durable throughput -----------------------------------------------------------------------------

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

async function durableOverHttp(o: BenchOptions): Promise<Record<string, number>> {
  const { runtime, stop } = await startRuntime('noop');
  try {
    const target = { port: portOf(await runtime.listen(0)), path: '/events', status: 202 };
    return await withLoad(async (load) => {
      const job = { kind: 'batches', target, batchSize: BATCH_SIZE, concurrency: HTTP_BATCH_CONCURRENCY } as const;
      await load.run({ ...job, count: o.warmUp, warmUp: true });
      await runtime.idle(IDLE_TIMEOUT_MS);
      const before = probe.handled;
      const { start, end, shed } = await load.run({ ...job, count: o.events, warmUp: false });
      await runtime.idle(IDLE_TIMEOUT_MS);
      const done = performance.now();
      expectHandled(probe.handled - before, o.events);
      if (shed > 0) log(`  note: the ingress shed ${shed} batch(es) with 429; they were retried`);
      return throughput(o.events, start, end, done);
    });
  } finally {
    await stop();
  }
}

function throughput(events: number, start: number, published: number, done: number): Record<string, number> {
  return { [HANDLED]: (events * 1000) / (done - start), [ACCEPTED]: (events * 1000) / (published - start) };
}

// ---- latency at a fixed rate ------------------------------------------------------------------------

async function latency(rate: number, o: BenchOptions): Promise<Record<string, number>> {
  const { runtime, stop } = await startRuntime('noop');
  try {
    await publishAll(runtime, batches(o.warmUp, BATCH_SIZE, true), IN_PROCESS_IN_FLIGHT);
    await runtime.idle(IDLE_TIMEOUT_MS);
    const samples = await pacedLatency(runtime, rate, o.latencySeconds);
    return { 'achieved publish rate': samples.rate, ...latencyFigures(ACCEPT, samples.accept), ...latencyFigures(PUBLISH, samples.publish) };
  } finally {
    await stop();
  }
}

/**
 * One event per publish call at `rate`, for half a second unmeasured (timers and paths warm) and
 * then `seconds` measured; `idle` waits for the target to settle everything. Handler-side stamps
 * go by the event's index into arrays here: the handler receives a copy parsed from the log or
 * the stream, so a stamp written into the event object would never reach it. The accept stamp
 * is taken in the publish promise's own reaction.
 */
export async function pacedLatency(target: { publish(events: ReturnType<typeof benchEvent>[]): Promise<void>; idle(timeoutMs: number): Promise<void> }, rate: number, seconds: number) {
  await pacedRun(target, rate, Math.ceil(rate / 2), false);
  return pacedRun(target, rate, Math.round(rate * seconds), true);
}

async function pacedRun(target: Parameters<typeof pacedLatency>[0], rate: number, total: number, measure: boolean) {
  const events = Array.from({ length: total }, (_, k) => benchEvent(measure ? k : -1));
  const called = new Float64Array(total);
  const accepted = new Float64Array(total).fill(NaN);
  const started = new Float64Array(total).fill(NaN);
  if (measure) probe.started = started;
  const pending: Promise<void>[] = [];
  let failure: unknown;
  const before = probe.handled;
  try {
    const achieved = await pace(rate, total, (k) => {
      called[k] = performance.now();
      pending.push(
        target.publish([events[k]]).then(
          () => void (accepted[k] = performance.now()),
          (error: unknown) => void (failure ??= error),
        ),
      );
    });
    await Promise.all(pending);
    if (failure) throw failure;
    await target.idle(IDLE_TIMEOUT_MS);
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
  } finally {
    probe.started = undefined;
  }
}
