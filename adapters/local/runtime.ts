/**
 * The embedded runtime: the app's functions in this process over a durable SQLite log.
 *
 * @example
 * const runtime = await LocalRuntime.start(app, { dataDir: '.petrel' });
 * const server = await runtime.listen(3000); // server.address().port
 * process.on('SIGTERM', () => runtime.stop());
 */
import { join } from 'node:path';
import pino from 'pino';
import { scheduledEvent, type App, type AppFunction, type HttpResponse } from '../../core/app.js';
import type { DeadLetter } from '../../core/delivery.js';
import { eventKey, type CloudEvent } from '../../core/event.js';
import { invoke, observeEmitted } from '../../core/invoke.js';
import type { Logger } from '../../core/ports.js';
import { createIngress, inOneThread, type IngressOptions } from '../http/ingress.js';
import { HttpServer, type Listening } from '../http/server.js';
import { IngressThread } from '../http/thread.js';
import { PromMetrics } from '../http/metrics.js';
import type { DeadLetterAdmin, IngressTarget } from '../http/types.js';
import { Consumer } from './consumer.js';
import { Checkpointer } from './checkpointer.js';
import { GroupCommit, openDatabase, type Db } from './db.js';
import type { Invocation } from './journal.js';
import { EventLog } from './log.js';
import { DeliveryRecords } from './records.js';
import { LocalScope, type LocalContext } from './scope.js';
import { SqliteTables } from './tables.js';

export interface LocalRuntimeOptions {
  /** Where the log, tables and buckets live; default `.petrel`. */
  dataDir?: string;
  synchronous?: 'normal' | 'full';
  logger?: Logger;
  /** Past this many unsettled events for any function, the ingress answers 429. Default 100,000. */
  maxBacklog?: number;
  /** Settled events kept in the log for inspection. Default 10,000. */
  retainEvents?: number;
  /** How long `stop` waits for in-flight handlers before aborting them. Default 10 s. */
  drainTimeoutMs?: number;
  /** Called after every handler attempt, e.g. `new InvocationJournal().record` (journal.ts); keep it cheap. */
  onInvoked?: (invocation: Invocation) => void;
}

export interface ListenOptions extends Omit<IngressOptions, 'logger'> {
  /**
   * Parse HTTP and write replies on a thread of their own (adapters/http/thread.ts), leaving the
   * runtime's thread to the app; default true. false serves everything on the runtime's thread.
   */
  ingressThread?: boolean;
}

/**
 * Housekeeping (log truncation, expired completions and items) runs this often, deleting at most
 * HOUSEKEEPING_BATCH rows of each kind: small passes never stall a commit for long, and together
 * they keep up with 5,000 new rows/s of each kind. (Once a second, 1,000 a pass, the log of the
 * air-quality bench grew by 1,000 events/s at 2,000 readings/s.)
 */
const HOUSEKEEPING_INTERVAL_MS = 100;
const HOUSEKEEPING_BATCH = 500;

export class LocalRuntime implements IngressTarget {
  readonly metrics: PromMetrics;
  readonly deadLetters: DeadLetterAdmin;
  private readonly ctx: LocalContext;
  private readonly consumers: Consumer[];
  private readonly shutdown = new AbortController();
  private readonly timers: NodeJS.Timeout[] = [];
  private http?: Listening;
  private readonly eventListeners = new Map<string, Set<(event: CloudEvent) => void>>();
  private unwatchLog?: () => void;
  private watchedSeq = 0;
  private fatal?: unknown;
  private stopping?: Promise<void>;
  private readonly checkpointer: Checkpointer;

  private constructor(readonly app: App, private readonly db: Db, private readonly options: Required<Omit<LocalRuntimeOptions, 'logger' | 'synchronous' | 'onInvoked'>> & Pick<LocalRuntimeOptions, 'onInvoked'> & { logger: Logger }) {
    this.checkpointer = Checkpointer.start(db, options.logger);
    const commit = new GroupCommit(db, (error) => {
      this.fatal = error;
      options.logger.error({ err: error }, 'the data store failed; no further events are accepted');
    });
    const records = new DeliveryRecords(db);
    // Before the log: its after-commit hook wakes consumers, who read what the tables' hook updates.
    const tables = new SqliteTables(db, commit);
    this.metrics = new PromMetrics({
      lag: () => Object.fromEntries(this.consumers.map((c) => [c.fn.name, c.lag()])),
      deadLetters: () => Object.fromEntries(records.counts().dead),
    });
    this.ctx = {
      app,
      commit,
      log: new EventLog(db, commit),
      records,
      tables,
      bucketsDir: join(options.dataDir, 'buckets'),
      logger: options.logger,
      metrics: this.metrics,
      signal: this.shutdown.signal,
      onInvoked: options.onInvoked,
    };
    this.consumers = app.functions.filter((f) => f.pattern).map((f) => new Consumer(this.ctx, f));
    commit.onBeforeCommit(() => {
      for (const consumer of this.consumers) consumer.persistCursor();
    });
    this.deadLetters = {
      list: async (fn) => records.deadLetters(fn),
      get: async (id) => records.deadLetter(id),
      redrive: async (id) => (await this.redrive([id])) === 1,
      redriveAll: async (fn) => this.redrive(records.deadLetters(fn, Number.MAX_SAFE_INTEGER).map((l) => l.id)),
    };
  }

  static async start(app: App, options: LocalRuntimeOptions = {}): Promise<LocalRuntime> {
    const dataDir = options.dataDir ?? '.petrel';
    const logger = options.logger ?? pino({ name: app.name });
    const db = openDatabase({ dataDir, synchronous: options.synchronous });
    const runtime = new LocalRuntime(app, db, {
      dataDir,
      logger,
      maxBacklog: options.maxBacklog ?? 100_000,
      retainEvents: options.retainEvents ?? 10_000,
      drainTimeoutMs: options.drainTimeoutMs ?? 10_000,
      onInvoked: options.onInvoked,
    });
    for (const consumer of runtime.consumers) consumer.start();
    runtime.startSchedules();
    runtime.timers.push(setInterval(() => runtime.housekeeping(), HOUSEKEEPING_INTERVAL_MS).unref());
    return runtime;
  }

  /**
   * Serves the ingress on `port` (0 picks a free one); rejects clearly if the port is taken. Its
   * HTTP work runs on a thread of its own unless `ingressThread: false`.
   */
  async listen(port: number, host = '127.0.0.1', options: IngressOptions['extend'] | ListenOptions = {}): Promise<Listening> {
    const { ingressThread = true, ...extra } = typeof options === 'function' ? { extend: options } : options;
    const ingress = createIngress(this, { logger: this.options.logger, ...extra });
    this.http = ingressThread ? await IngressThread.listen(ingress, port, host, this.options.logger) : await HttpServer.listen(inOneThread(ingress), port, host);
    return this.http;
  }

  publish(events: CloudEvent[]): Promise<void> {
    if (this.fatal) return Promise.reject(new Error('the data store failed; see the log'));
    if (this.stopping) return Promise.reject(Object.assign(new Error('shutting down'), { status: 503 }));
    return this.ctx.log.append(events);
  }

  async invokeHttp(fn: AppFunction, event: CloudEvent): Promise<HttpResponse> {
    const scope = new LocalScope(this.ctx, fn, event, false);
    const started = performance.now();
    const result = await invoke({ app: this.app, fn, event, attempt: 1, scope, log: this.ctx.logger, metrics: this.metrics, signal: this.shutdown.signal });
    this.ctx.onInvoked?.({ fn: fn.name, event, attempt: 1, result, startedAt: performance.timeOrigin + started, durationMs: performance.now() - started });
    if (result.outcome !== 'ok') {
      if (result.outcome === 'duplicate') return { status: 200 };
      return { status: 500, body: { error: `function "${fn.name}" failed (${result.record.error.name}); see the server log`, eventId: event.id } };
    }
    await this.ctx.commit.submit(() => {
      scope.session.apply();
      this.ctx.log.appendInTransaction(result.emitted.concat(scope.objectEvents));
    });
    observeEmitted(this.metrics, result.emitted);
    return result.response ?? { status: result.emitted.length ? 202 : 200 };
  }

  overloaded(): boolean {
    return this.consumers.some((c) => c.lag() > this.options.maxBacklog);
  }

  health(): { ok: boolean; [detail: string]: unknown } {
    const lag = Object.fromEntries(this.consumers.map((c) => [c.fn.name, c.lag()]));
    return { ok: !this.fatal && !this.stopping, app: this.app.name, head: this.ctx.log.head, lag };
  }

  /**
   * Calls `listener` with each event of `type` appended to the log from now on, once its commit is
   * durable (published, emitted or redriven alike): for in-process bridges such as Server-Sent
   * Events. Returns the unsubscribe. The log is read back only while someone listens.
   */
  onEvent(type: string, listener: (event: CloudEvent) => void): () => void {
    const listeners = this.eventListeners.get(type) ?? new Set();
    this.eventListeners.set(type, listeners);
    listeners.add(listener);
    if (!this.unwatchLog) {
      this.watchedSeq = this.ctx.log.head;
      this.unwatchLog = this.ctx.log.onAppend(() => this.notifyListeners());
    }
    return () => {
      listeners.delete(listener);
      if (listeners.size === 0) this.eventListeners.delete(type);
      if (this.eventListeners.size === 0) {
        this.unwatchLog?.();
        this.unwatchLog = undefined;
      }
    };
  }

  private notifyListeners(): void {
    const head = this.ctx.log.head;
    while (this.watchedSeq < head && this.unwatchLog) {
      const entries = this.ctx.log.entries(this.watchedSeq, 1000);
      if (entries.length === 0) break;
      for (const entry of entries) {
        if (entry.seq > head) return;
        this.watchedSeq = entry.seq;
        const listeners = this.eventListeners.get(entry.type);
        if (!listeners) continue;
        const event = entry.take();
        for (const listener of listeners) {
          try {
            listener(event);
          } catch (error) {
            this.ctx.logger.error({ err: error, type: event.type }, 'an event listener failed');
          }
        }
      }
    }
  }

  /** Events in the log, newest last, for tests and the console. */
  events(afterSeq = 0, limit = 1000): Array<{ seq: number; event: CloudEvent }> {
    return this.ctx.log.read(afterSeq, limit);
  }

  /** Resolves when every function has settled every event appended so far, and no retry is pending soon. */
  async idle(timeoutMs = 15_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      await this.ctx.commit.drain();
      const pending = this.ctx.records.counts().retries;
      if (this.consumers.every((c) => c.lag() === 0) && pending.size === 0) return;
      if (Date.now() > until) throw new Error(`not idle after ${timeoutMs} ms: ${JSON.stringify(this.health().lag)}, retries ${JSON.stringify([...pending])}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  /** Stops intake, lets in-flight handlers finish (aborting them after the drain timeout), closes. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const timer of this.timers) clearInterval(timer);
      this.http?.stopAccepting();
      const abort = setTimeout(() => this.shutdown.abort(new Error('runtime stopping')), this.options.drainTimeoutMs);
      await Promise.all(this.consumers.map((c) => c.stop()));
      clearTimeout(abort);
      this.shutdown.abort(new Error('runtime stopped'));
      // One last commit for the cursors that moved past events no function wanted.
      this.ctx.commit.schedule();
      await this.ctx.commit.drain();
      await this.http?.close();
      await this.checkpointer.stop();
      this.db.close();
    })();
    return this.stopping;
  }

  private async redrive(ids: string[]): Promise<number> {
    const { records, commit } = this.ctx;
    const letters = ids.map((id) => records.deadLetter(id)).filter((l): l is DeadLetter => l !== undefined);
    const now = Date.now();
    await commit.submit(() => {
      for (const letter of letters) {
        records.deleteDeadLetter(letter.id);
        records.putRetry({ fn: letter.fn, key: eventKey(letter.event), attempt: 1, due: now, event: letter.event, history: [] });
      }
    });
    for (const letter of letters) this.consumers.find((c) => c.fn.name === letter.fn)?.armRetry(now);
    return letters.length;
  }

  /** Schedule triggers: one event per period, with an id derived from the period so a restart never fires it twice. */
  private startSchedules(): void {
    for (const fn of this.app.functions) {
      const trigger = fn.spec.trigger;
      if (trigger.kind !== 'schedule') continue;
      const fire = () => {
        const period = Math.floor(Date.now() / trigger.everyMs);
        void this.publish([scheduledEvent(this.app.name, fn.name, trigger, period)]).catch((error) =>
          this.ctx.logger.error({ err: error, fn: fn.name }, 'could not fire schedule'),
        );
      };
      const delay = trigger.everyMs - (Date.now() % trigger.everyMs);
      const first = setTimeout(() => {
        fire();
        this.timers.push(setInterval(fire, trigger.everyMs));
      }, delay);
      this.timers.push(first);
    }
  }

  private housekeeping(): void {
    const { records, log, tables, commit } = this.ctx;
    void commit
      .submit(() => {
        log.truncate(Math.min(log.head, ...this.consumers.map((c) => c.cursor())), this.options.retainEvents, HOUSEKEEPING_BATCH);
        records.sweepCompletions(HOUSEKEEPING_BATCH);
        tables.sweep(HOUSEKEEPING_BATCH);
      })
      .catch((error) => this.ctx.logger.error({ err: error }, 'housekeeping failed'));
  }
}
