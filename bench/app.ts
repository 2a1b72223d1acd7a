/**
 * The app every bench target runs: one function consuming bench events, and an http-triggered
 * echo answering a small JSON POST. It imports only core/, because the cold-start scenario loads
 * it in a fresh process (app-module.ts) and must time petrel, not the bench.
 */
import { defineApp, fn, http, on, table, type App, type CloudEvent, type HttpRequestData } from '../core/index.js';
import { EVENT_TYPE, type BenchData } from './events.js';

/**
 * - noop: records the delivery and returns;
 * - table: also upserts the latest reading of one of 1,000 sensors;
 * - retrying: 1% of first attempts throw (planned: failsFirstAttempt), and succeed on the retry.
 */
export type HandlerKind = 'noop' | 'table' | 'retrying';

/** What the handler records in this process: successful deliveries, and each index's first start time. */
export const probe: { handled: number; started?: Float64Array } = { handled: 0 };

/** The planned failures: 1% of first attempts, the same indexes on every target and peer. */
export function failsFirstAttempt(i: number, attempt: number): boolean {
  return attempt === 1 && i % 100 === 37;
}

export class PlannedFailure extends Error {
  override name = 'PlannedFailure';
}

/**
 * The one handler body every queue in the bench runs (petrel's function, the BullMQ processor):
 * stamp the first start of index `i`, fail if planned, count the success.
 */
export function handleBenchEvent(i: number, attempt: number): void {
  if (probe.started && i >= 0 && Number.isNaN(probe.started[i])) probe.started[i] = performance.now();
  if (failsFirstAttempt(i, attempt)) throw new PlannedFailure(`planned failure of event ${i}, attempt ${attempt}`);
  probe.handled++;
}

/** The echo's answer to a small JSON POST; bare express and the Lambda do the same. */
export function echoReply(body: unknown): { ok: true; name: string | null } {
  const name = typeof body === 'object' && body !== null && typeof (body as { name?: unknown }).name === 'string' ? (body as { name: string }).name : null;
  return { ok: true, name };
}

/** An event with this subject makes app-module.ts print `HANDLED_MARK <id>` once it is handled. */
export const REPORT_SUBJECT = 'report';
export const HANDLED_MARK = 'bench-handled';

export const ECHO_PATH = '/echo';
/** The small JSON body the HTTP scenarios POST. */
export const ECHO_BODY = JSON.stringify({ name: 'sensor-0042', pm25: 12.3, at: '2026-11-28T10:00:00.000Z' });

export interface BenchAppOptions {
  /** Default `bench`; NATS streams are named after it, so concurrent runs need their own. */
  name?: string;
  /** The consuming function's concurrency (petrel's default is 16). */
  concurrency?: number;
  /** Called after each successful delivery (the cold-start scenario prints a line from its process). */
  afterHandled?: (event: CloudEvent<BenchData>) => void;
}

export function benchApp(kind: HandlerKind, options: BenchAppOptions = {}): App {
  const consume = async (event: CloudEvent<BenchData>, attempt: number, put?: (item: Record<string, unknown>) => Promise<void>) => {
    const data = event.data!;
    handleBenchEvent(data.i, kind === 'retrying' ? attempt : 0);
    await put?.({ sensor: data.sensor, pm25: data.pm25, pm10: data.pm10, at: event.time });
    options.afterHandled?.(event);
  };
  const trigger = on({ type: [EVENT_TYPE] });
  const concurrency = options.concurrency ?? 16;
  const echo = fn({
    trigger: http('POST', ECHO_PATH),
    handler: (event) => ({ status: 200, body: echoReply((event.data as HttpRequestData).body) }),
  });
  if (kind !== 'table') {
    return defineApp({
      name: options.name ?? 'bench',
      functions: {
        echo,
        // Retries 200 ms x 2^n with full jitter: the BullMQ peer is configured the same way.
        sink: fn<Record<never, never>, BenchData>({ trigger, concurrency, retry: { maxAttempts: 5, baseDelayMs: 200 }, handler: (event, ctx) => consume(event, ctx.attempt) }),
      },
    });
  }
  return defineApp({
    name: options.name ?? 'bench',
    resources: { latest: table({ partitionKey: 'sensor' }) },
    functions: {
      echo,
      sink: fn<{ latest: 'write' }, BenchData>({
        trigger,
        concurrency,
        uses: { latest: 'write' },
        handler: (event, ctx) => consume(event, ctx.attempt, (item) => ctx.tables.latest.put(item)),
      }),
    },
  });
}
