/**
 * The console's live endpoints, which need the running runtime rather than tables, so `petrel dev`
 * mounts them (see `dev` in app.ts) instead of the app declaring them as functions:
 *
 *   GET /alerts/stream[?location=&kind=]  Server-Sent Events: `event: alert`, `id: <event id>`,
 *                                         `data: <alert as GET /alerts serves it, plus ingestedAt:
 *                                         when the reading it came from arrived>`, sent once the
 *                                         alert is committed; a comment line every 15 s keeps it open.
 *   GET /stats                            JSON: throughput, ingest-to-alert latency p50/p99,
 *                                         errors, retries, dead letters, backlog (see `Stats`).
 *
 * Written against node:http types and a structural view of the runtime, so it needs no adapter.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CloudEvent } from '../../core/index.js';
import { ALERT_RAISED, type AlertRecord } from './alerting.js';
import { publicAlert } from './alerts.js';
import { ALERT_KINDS } from './config.js';

/** What the live endpoints need from a runtime (LocalRuntime has it). */
export interface LiveSource {
  /** Calls `listener` with each event of `type` once it is committed; returns the unsubscribe. */
  onEvent(type: string, listener: (event: CloudEvent) => void): () => void;
  metrics: { registry: { getMetricsAsJSON(): Promise<MetricJson[]> } };
}

interface MetricJson {
  name: string;
  values: Array<{ value: number; labels: Record<string, string | number | undefined> }>;
}

export interface LiveRoute {
  method: 'GET';
  path: string;
  handle(req: IncomingMessage, res: ServerResponse): void;
}

/** GET /stats body. Rates are per second over the last `windowSeconds` (less just after start). */
export interface Stats {
  windowSeconds: number;
  /** Readings settled by `assess` per second (its idle ticks too: one a minute per location). */
  readingsPerSecond: number;
  /** Handler invocations per second, all functions. */
  eventsPerSecond: number;
  /** Ingest (HTTP or MQTT accepted) to alert committed, over the alerts of the last 5 minutes. */
  ingestToAlert: { alerts: number; p50Ms: number | null; p99Ms: number | null; maxMs: number | null };
  /** Failed attempts, attempts scheduled again, events dead-lettered: totals, and per second in the window. */
  errors: { total: number; perSecond: number };
  retries: { total: number; perSecond: number };
  deadLetters: { total: number; stored: number };
  /** Events in the log not yet settled, per function. */
  backlog: Record<string, number>;
}

interface Sample {
  at: number;
  readings: number;
  invocations: number;
  errors: number;
  retries: number;
}

const SAMPLE_EVERY_MS = 5_000;
const RATE_WINDOW_MS = 60_000;
const LATENCY_WINDOW_MS = 5 * 60_000;
const MAX_LATENCY_SAMPLES = 10_000;
const HEARTBEAT_MS = 15_000;
/** A client this far behind is dropped rather than buffered without bound. */
const MAX_BUFFERED_BYTES = 1 << 20;

function total(metrics: MetricJson[], name: string, filter: (labels: MetricJson['values'][number]['labels']) => boolean = () => true): number {
  return metrics.find((m) => m.name === name)?.values.filter((v) => filter(v.labels)).reduce((sum, v) => sum + v.value, 0) ?? 0;
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: number[], p: number): number | null {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] : null;
}

export class LiveApi {
  readonly routes: LiveRoute[];
  private readonly samples: Sample[] = [];
  private readonly latencies: Array<[at: number, ms: number]> = [];
  private readonly timer: NodeJS.Timeout;
  private readonly unsubscribe: () => void;

  constructor(private readonly source: LiveSource) {
    this.unsubscribe = source.onEvent(ALERT_RAISED, (event) => this.observe(event));
    this.timer = setInterval(() => void this.sample().catch(() => undefined), SAMPLE_EVERY_MS);
    this.timer.unref();
    void this.sample().catch(() => undefined);
    this.routes = [
      { method: 'GET', path: '/alerts/stream', handle: (req, res) => this.stream(req, res) },
      { method: 'GET', path: '/stats', handle: (_req, res) => void this.serveStats(res) },
    ];
  }

  close(): void {
    clearInterval(this.timer);
    this.unsubscribe();
  }

  async stats(now = Date.now()): Promise<Stats> {
    const metrics = await this.source.metrics.registry.getMetricsAsJSON();
    const current = this.toSample(metrics, now);
    const first = this.samples.find((s) => s.at >= now - RATE_WINDOW_MS) ?? current;
    const seconds = Math.max(0.001, (current.at - first.at) / 1000);
    const rate = (key: keyof Omit<Sample, 'at'>) => round((current[key] - first[key]) / seconds);
    while (this.latencies.length && this.latencies[0][0] < now - LATENCY_WINDOW_MS) this.latencies.shift();
    const sorted = this.latencies.map(([, ms]) => ms).sort((a, b) => a - b);
    const backlog: Record<string, number> = {};
    for (const v of metrics.find((m) => m.name === 'petrel_lag_events')?.values ?? []) backlog[String(v.labels.function)] = v.value;
    return {
      windowSeconds: round(seconds),
      readingsPerSecond: rate('readings'),
      eventsPerSecond: rate('invocations'),
      ingestToAlert: { alerts: sorted.length, p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99), maxMs: sorted.at(-1) ?? null },
      errors: { total: current.errors, perSecond: rate('errors') },
      retries: { total: current.retries, perSecond: rate('retries') },
      deadLetters: { total: total(metrics, 'petrel_dead_letters_total'), stored: total(metrics, 'petrel_dead_letters') },
      backlog,
    };
  }

  private observe(event: CloudEvent): void {
    const ingested = event.ingesttime ? Date.parse(event.ingesttime) : NaN;
    if (Number.isNaN(ingested)) return;
    const now = Date.now();
    this.latencies.push([now, Math.max(0, now - ingested)]);
    if (this.latencies.length > MAX_LATENCY_SAMPLES) this.latencies.shift();
  }

  private toSample(metrics: MetricJson[], at: number): Sample {
    return {
      at,
      readings: total(metrics, 'petrel_invocations_total', (l) => l.function === 'assess' && l.outcome === 'ok'),
      invocations: total(metrics, 'petrel_invocations_total'),
      errors: total(metrics, 'petrel_errors_total'),
      retries: total(metrics, 'petrel_retries_total'),
    };
  }

  private async sample(): Promise<void> {
    const now = Date.now();
    this.samples.push(this.toSample(await this.source.metrics.registry.getMetricsAsJSON(), now));
    while (this.samples.length > 1 && this.samples[1].at <= now - RATE_WINDOW_MS) this.samples.shift();
  }

  private async serveStats(res: ServerResponse): Promise<void> {
    try {
      json(res, 200, await this.stats());
    } catch {
      json(res, 500, { error: 'could not read the metrics; see the server log' });
    }
  }

  private stream(req: IncomingMessage, res: ServerResponse): void {
    const query = new URL(req.url ?? '/', 'http://localhost').searchParams;
    const location = query.get('location');
    const kind = query.get('kind');
    if (kind !== null && !(ALERT_KINDS as readonly string[]).includes(kind)) return json(res, 400, { error: `kind must be one of ${ALERT_KINDS.join(', ')}, got "${kind}"` });
    if (location === '') return json(res, 400, { error: 'location must be a non-empty string' });
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.write('retry: 3000\n: alerts as they are raised\n\n');
    const close = () => {
      off();
      clearInterval(heartbeat);
      res.end();
    };
    const off = this.source.onEvent(ALERT_RAISED, (event) => {
      const alert = event.data as AlertRecord;
      if ((location !== null && alert.location !== location) || (kind !== null && alert.kind !== kind)) return;
      if (res.writableLength > MAX_BUFFERED_BYTES) return close();
      // ingestedAt: what a subscriber needs to see the ingest-to-alert latency for itself.
      res.write(`id: ${event.id}\nevent: alert\ndata: ${JSON.stringify({ ...publicAlert(alert), ingestedAt: event.ingesttime })}\n\n`);
    });
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), HEARTBEAT_MS);
    req.once('close', close);
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
