/**
 * The NATS JetStream runtime: the app's events on one stream, each function a durable consumer
 * shared by every process running the app, tables on PostgreSQL, buckets on the Object Store,
 * and the shared HTTP ingress in front.
 *
 * @example
 * const runtime = await NatsRuntime.start(app, { servers: 'nats://127.0.0.1:4222', pgUrl: process.env.PETREL_PG_URL });
 * await runtime.listen(3000);
 * process.on('SIGTERM', () => runtime.stop());
 */
import { DiscardPolicy, jetstream, jetstreamManager, JetStreamApiCodes, JetStreamApiError, RetentionPolicy, StorageType, type JetStreamManager, type StreamConfig } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { connect, headers, nanos, type NatsConnection } from '@nats-io/transport-node';
import { setMaxListeners } from 'node:events';
import type { Server } from 'node:http';
import pino from 'pino';
import { scheduledEvent, type App, type AppFunction, type HttpResponse } from '../../core/app.js';
import { IDEMPOTENCY_TTL_MS, type DeadLetter } from '../../core/delivery.js';
import { eventKey, type CloudEvent } from '../../core/event.js';
import { invoke, observeEmitted } from '../../core/invoke.js';
import type { Logger } from '../../core/ports.js';
import { createIngress, inOneThread, type IngressOptions } from '../http/ingress.js';
import { HttpServer } from '../http/server.js';
import { PromMetrics } from '../http/metrics.js';
import type { DeadLetterAdmin, IngressTarget } from '../http/types.js';
import { redactUrl } from '../../core/redact.js';
import { PgStore } from '../postgres/store.js';
import { OutboxMarks, type NatsContext } from './context.js';
import { NatsRecords } from './records.js';
import { names } from './subjects.js';
import { REDRIVE_HEADER } from './durable.js';
import { commitOk, FunctionWorker, NatsScope } from './worker.js';

export interface NatsRuntimeOptions {
  /** NATS server URL(s), e.g. nats://127.0.0.1:4222. */
  servers: string | string[];
  /** PostgreSQL URL; required when the app has tables. */
  pgUrl?: string;
  logger?: Logger;
  /** Stream, KV and Object Store replicas: 3 in a 3-node cluster. Default 1. */
  replicas?: number;
  /** JetStream's duplicate window (message-id dedupe). Default 2 minutes. */
  duplicateWindowMs?: number;
  /** How long events stay in the stream. Default 7 days. */
  maxAgeMs?: number;
  /** Past this many unsettled events for any function, the ingress answers 429. Default 100,000. */
  maxBacklog?: number;
  /** How long `stop` waits for in-flight handlers before aborting them. Default 10 s. */
  drainTimeoutMs?: number;
  /** Fails start if NATS does not answer within this time. Default 5 s. */
  connectTimeoutMs?: number;
}

/** Lag and dead-letter counts are read from the server this often (metrics, 429, health). */
const REFRESH_MS = 1000;

export class NatsRuntime implements IngressTarget {
  readonly metrics: PromMetrics;
  readonly deadLetters: DeadLetterAdmin;
  private readonly ctx: NatsContext;
  private readonly workers: FunctionWorker[];
  private readonly shutdown = new AbortController();
  private readonly timers: NodeJS.Timeout[] = [];
  private deadLetterCounts: Record<string, number> = {};
  private http?: HttpServer;
  private stopping?: Promise<void>;

  private constructor(
    readonly app: App,
    private readonly nc: NatsConnection,
    jsm: JetStreamManager,
    records: NatsRecords,
    pg: PgStore | undefined,
    objectStores: Map<string, ObjectStore>,
    private readonly options: Required<Pick<NatsRuntimeOptions, 'maxBacklog' | 'drainTimeoutMs'>> & { logger: Logger },
  ) {
    const js = jetstream(nc);
    const appNames = names(app.name);
    // Every in-flight invocation listens for shutdown.
    setMaxListeners(0, this.shutdown.signal);
    this.metrics = new PromMetrics({
      lag: () => Object.fromEntries(this.workers.map((w) => [w.fn.name, w.lag()])),
      deadLetters: () => this.deadLetterCounts,
    });
    this.ctx = {
      app,
      js,
      jsm,
      names: appNames,
      records,
      pg,
      objectStores,
      logger: options.logger,
      metrics: this.metrics,
      signal: this.shutdown.signal,
      publish: async (events) => {
        await Promise.all(events.map((event) => js.publish(appNames.eventSubject(event.type), JSON.stringify(event), { msgID: eventKey(event) })));
      },
      outboxes: new OutboxMarks(() => pg, app.name, options.logger),
      deadLettered: (fn) => (this.deadLetterCounts[fn] = (this.deadLetterCounts[fn] ?? 0) + 1),
    };
    this.workers = app.functions.filter((f) => f.pattern).map((f) => new FunctionWorker(this.ctx, f));
    this.deadLetters = {
      list: (fn) => records.deadLetters(fn),
      get: (id) => records.deadLetter(id),
      redrive: async (id) => {
        const letter = await records.deadLetter(id);
        return letter ? (await this.redrive([letter])) === 1 : false;
      },
      redriveAll: async (fn) => this.redrive(await records.deadLetters(fn)),
    };
  }

  /** Connects, creates (or opens) the app's stream, KV buckets, object stores and consumers, and starts its workers. */
  static async start(app: App, options: NatsRuntimeOptions): Promise<NatsRuntime> {
    const logger = options.logger ?? pino({ name: app.name });
    const servers = Array.isArray(options.servers) ? options.servers : [options.servers];
    const replicas = options.replicas ?? 1;
    const hasTables = Object.values(app.resources).some((r) => r.kind === 'table');
    if (hasTables && !options.pgUrl) throw new Error(`app "${app.name}" has tables, which live in PostgreSQL on this target: give a PostgreSQL URL (--pg or PETREL_PG_URL)`);
    let nc: NatsConnection;
    try {
      nc = await connect({ servers, name: `petrel-${app.name}`, timeout: options.connectTimeoutMs ?? 5000, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    } catch (error) {
      throw new Error(`NATS at ${servers.map(redactUrl).join(', ')} is not reachable: ${(error as Error).message}`);
    }
    let pg: PgStore | undefined;
    try {
      const jsm = await jetstreamManager(nc);
      const js = jetstream(nc);
      const appNames = names(app.name);
      const maxAge = nanos(options.maxAgeMs ?? 7 * 24 * 3600 * 1000);
      await ensureStream(jsm, { name: appNames.stream, subjects: [appNames.subjects], num_replicas: replicas, duplicate_window: nanos(options.duplicateWindowMs ?? 120_000), max_age: maxAge });
      await ensureStream(jsm, { name: appNames.deadLetterStream, subjects: [appNames.deadLetterSubjects], num_replicas: replicas, duplicate_window: nanos(120_000) });
      const kvm = new Kvm(js);
      const completions = await kvm.create(appNames.completions, { ttl: IDEMPOTENCY_TTL_MS, history: 1, replicas });
      const attempts = await kvm.create(appNames.attempts, { ttl: IDEMPOTENCY_TTL_MS, history: 1, replicas });
      const objm = new Objm(js);
      const objectStores = new Map<string, ObjectStore>();
      for (const [name, resource] of Object.entries(app.resources)) {
        if (resource.kind !== 'bucket') continue;
        if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new Error(`bucket "${name}": on NATS a bucket name holds only letters, digits, "-" and "_"`);
        objectStores.set(name, await objm.create(appNames.objectStore(name), { replicas }));
      }
      if (hasTables) pg = await PgStore.connect(options.pgUrl!);
      const runtime = new NatsRuntime(app, nc, jsm, new NatsRecords(app.name, js, jsm, completions, attempts), pg, objectStores, {
        logger,
        maxBacklog: options.maxBacklog ?? 100_000,
        drainTimeoutMs: options.drainTimeoutMs ?? 10_000,
      });
      await Promise.all(runtime.workers.map((w) => w.start()));
      runtime.startTimers();
      await runtime.refresh();
      return runtime;
    } catch (error) {
      await pg?.close().catch(() => undefined);
      await nc.close().catch(() => undefined);
      throw error;
    }
  }

  /** Serves the ingress on `port` (0 picks a free one); rejects clearly if the port is taken. */
  async listen(port: number, host = '127.0.0.1', extend?: IngressOptions['extend']): Promise<Server> {
    this.http = await HttpServer.listen(inOneThread(createIngress(this, { logger: this.options.logger, extend })), port, host);
    return this.http.server;
  }

  /** Resolves once every event is in the stream (after its PubAck). */
  publish(events: CloudEvent[]): Promise<void> {
    if (this.stopping) return Promise.reject(Object.assign(new Error('shutting down'), { status: 503 }));
    return this.ctx.publish(events);
  }

  async invokeHttp(fn: AppFunction, event: CloudEvent): Promise<HttpResponse> {
    const scope = new NatsScope(this.ctx, fn, event);
    const result = await invoke({ app: this.app, fn, event, attempt: 1, scope, log: this.ctx.logger, metrics: this.metrics, signal: this.shutdown.signal });
    if (result.outcome !== 'ok') {
      if (result.outcome === 'duplicate') return { status: 200 };
      return { status: 500, body: { error: `function "${fn.name}" failed (${result.record.error.name}); see the server log`, eventId: event.id } };
    }
    await commitOk(this.ctx, fn, event, scope, result.emitted, false);
    observeEmitted(this.metrics, result.emitted);
    return result.response ?? { status: result.emitted.length ? 202 : 200 };
  }

  overloaded(): boolean {
    return this.workers.some((w) => w.lag() > this.options.maxBacklog);
  }

  health(): { ok: boolean; [detail: string]: unknown } {
    const lag = Object.fromEntries(this.workers.map((w) => [w.fn.name, w.lag()]));
    return { ok: !this.stopping && !this.nc.isClosed(), app: this.app.name, nats: this.nc.getServer(), lag };
  }

  /** Resolves when every function has settled every event in the stream (retries included). */
  async idle(timeoutMs = 15_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      await this.ctx.outboxes.drain();
      // A cluster electing a new leader answers nothing for a moment: keep asking until the deadline.
      const lags = await Promise.all(this.workers.map((w) => w.refresh())).catch(() => undefined);
      if (lags?.every((n) => n === 0) && !this.workers.some((w) => w.busy())) return;
      if (Date.now() > until) throw new Error(`not idle after ${timeoutMs} ms: ${JSON.stringify(this.health().lag)}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** Stops intake, lets in-flight handlers finish (aborting them after the drain timeout), closes. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const timer of this.timers) clearInterval(timer);
      this.http?.stopAccepting();
      const abort = setTimeout(() => this.shutdown.abort(new Error('runtime stopping')), this.options.drainTimeoutMs);
      await Promise.all(this.workers.map((w) => w.stop()));
      clearTimeout(abort);
      this.shutdown.abort(new Error('runtime stopped'));
      await this.ctx.outboxes.drain();
      await this.http?.close();
      await this.nc.drain().catch(() => undefined);
      await this.ctx.pg?.close();
    })();
    return this.stopping;
  }

  /**
   * Stops as a crash would: the NATS connection is cut with no drain, nothing in flight is acked,
   * handlers are aborted. For tests of what survives a crash.
   */
  crash(): Promise<void> {
    this.stopping ??= (async () => {
      for (const timer of this.timers) clearInterval(timer);
      void this.http?.close();
      await this.nc.close().catch(() => undefined);
      this.shutdown.abort(new Error('runtime crashed'));
      await Promise.all(this.workers.map((w) => w.stop()));
      await this.ctx.pg?.close().catch(() => undefined);
    })();
    return this.stopping;
  }

  private async refresh(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.refresh()));
    this.deadLetterCounts = await this.ctx.records.deadLetterCounts();
  }

  private startTimers(): void {
    const every = (ms: number, run: () => unknown) => this.timers.push(setInterval(run, ms).unref());
    every(REFRESH_MS, () => this.refresh().catch((error: unknown) => this.ctx.logger.warn({ err: error }, 'could not read consumer state')));
    for (const worker of this.workers) every(worker.keepAliveEveryMs, () => worker.keepAlive());
    if (this.ctx.pg) every(3600_000, () => this.ctx.pg!.sweep().catch((error: unknown) => this.ctx.logger.warn({ err: error }, 'sweep failed')));
    // Schedules fire in every process; the period-derived id makes JetStream keep one.
    for (const fn of this.app.functions) {
      const trigger = fn.spec.trigger;
      if (trigger.kind !== 'schedule') continue;
      const fire = () => {
        const period = Math.floor(Date.now() / trigger.everyMs);
        this.ctx.publish([scheduledEvent(this.app.name, fn.name, trigger, period)]).catch((error: unknown) => this.ctx.logger.error({ err: error, fn: fn.name }, 'could not fire schedule'));
      };
      const first = setTimeout(() => {
        fire();
        every(trigger.everyMs, fire);
      }, trigger.everyMs - (Date.now() % trigger.everyMs));
      this.timers.push(first.unref());
    }
  }

  /** Re-delivers dead letters to their own function only (a header names it), then deletes them. */
  private async redrive(letters: DeadLetter[]): Promise<number> {
    const { js, names: appNames, records } = this.ctx;
    for (const letter of letters) {
      const h = headers();
      h.set(REDRIVE_HEADER, letter.fn);
      await js.publish(appNames.eventSubject(letter.event.type), JSON.stringify(letter.event), { msgID: `redrive:${letter.id}`, headers: h });
      await records.deleteDeadLetter(letter);
      this.deadLetterCounts[letter.fn] = Math.max(0, (this.deadLetterCounts[letter.fn] ?? 1) - 1);
    }
    return letters.length;
  }
}

/** Creates a stream, or leaves an existing one as it is. */
async function ensureStream(jsm: JetStreamManager, config: Partial<StreamConfig> & { name: string }): Promise<void> {
  try {
    await jsm.streams.info(config.name);
  } catch (error) {
    if (!(error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound)) throw error;
    await jsm.streams.add({ retention: RetentionPolicy.Limits, storage: StorageType.File, discard: DiscardPolicy.Old, ...config });
  }
}
