/**
 * One function as a Knative Service: CloudEvents arrive over HTTP (binary, structured or batch
 * mode) on `POST /`, run through core/invoke, and the answer tells the sender what Knative
 * Eventing's data-plane contract says it should do:
 *
 *   done            200 with the one emitted event as the reply (binary mode), when the sender
 *                   takes replies (`Prefer: reply`); else 202, every emitted event POSTed to
 *                   K_SINK (binary mode) first, so an accepted event's effects are durable
 *   duplicate       as done, sending the outbox recorded at completion again
 *   not matched     202 (the Trigger filters by type only; core/pattern decides the rest)
 *   retry           500 (504 for a timeout): Knative retries 5xx
 *   dead            422: permanent error, or the last attempt: Knative does not retry other 4xx
 *   bad input       400 / 413 / 415 with a JSON body naming the problem (not retried)
 *   over capacity   429 with Retry-After (retried); draining: 503 (retried on another instance)
 *
 * Failure bodies carry the attempt's record (error name and message), which Knative passes to the
 * dead-letter sink as `knativeerrordata` and petrel's dispatcher keeps in the dead letter.
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Server } from 'node:http';
import { setMaxListeners } from 'node:events';
import type { App, AppFunction, BucketSpec, TableSpec } from '../../core/app.js';
import { TimeoutError, type AttemptRecord } from '../../core/delivery.js';
import { eventKey, traceparentFor, type CloudEvent } from '../../core/event.js';
import { BODY_LIMIT } from '../../core/http.js';
import { conflictedOutcome, failureOutcome, invoke, objectCreatedEvent, observeEmitted, WriteRaces, type InvocationScope, type InvokeResult } from '../../core/invoke.js';
import { ConditionFailedError, type Bucket, type Table } from '../../core/ports.js';
import type { TableSession } from '../../core/session.js';
import { BindingError, toCloudEvents } from '../http/binding.js';
import { HttpServer } from '../http/server.js';
import { errorBody, errorStatus } from '../http/errors.js';
import { PromMetrics } from '../http/metrics.js';
import { ObjectStoreBucket } from '../nats/bucket.js';
import { redactUrl } from '../../core/redact.js';
import { toBinaryHttp } from './encode.js';
import { ATTEMPT_HEADER, type FunctionStores, type KnativeFunctionOptions } from './types.js';

/** How long a POST to K_SINK may take. */
const SINK_TIMEOUT_MS = 10_000;

type Processed =
  | { id: string; outcome: 'done'; key: string; outbox: CloudEvent[] }
  | { id: string; outcome: 'retry' | 'dead'; record: AttemptRecord; timeout: boolean };

/** An answer other than 2xx that names its own status (read by the ingress' errorStatus). */
class StatusError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** One attempt's resources: buffered PostgreSQL tables, Object Store buckets announcing their puts. */
class KnativeScope implements InvocationScope {
  session?: TableSession;
  readonly objectEvents: CloudEvent[] = [];

  constructor(private readonly app: App, private readonly fn: AppFunction, private readonly event: CloudEvent, private readonly stores: FunctionStores) {}

  table(name: string, spec: TableSpec): Table {
    if (!this.stores.pg) throw new Error(`table "${name}" needs PostgreSQL: set PETREL_PG_URL`);
    this.session ??= this.stores.pg.session(this.app.name);
    return this.session.table(name, spec);
  }

  bucket(name: string, _spec: BucketSpec): Bucket {
    return new ObjectStoreBucket(this.stores.buckets.get(name)!, name, (info) => {
      this.objectEvents.push(objectCreatedEvent(this.app, this.fn.name, this.event, name, info));
    });
  }

  completed(): boolean {
    return false; // looked up before invoking, to send the recorded outbox again
  }
}

export class KnativeFunction {
  readonly metrics: PromMetrics;
  private inFlight = 0;
  private listening = false;
  private draining = false;
  private http?: HttpServer;
  private stopping?: Promise<void>;
  private idleWaiters: Array<() => void> = [];
  private readonly shutdown = new AbortController();

  constructor(readonly app: App, readonly fn: AppFunction, private readonly options: KnativeFunctionOptions) {
    if (!fn.pattern) throw new Error(`function "${fn.name}" is http-triggered: the ingress serves it, not a Knative Service of its own`);
    setMaxListeners(0, this.shutdown.signal);
    this.metrics = new PromMetrics({ lag: () => ({ [fn.name]: this.inFlight }), deadLetters: () => ({}) });
  }

  /** `POST /` (CloudEvents), `GET /healthz` (live), `GET /readyz` (ready), `GET /metrics`. */
  handler(): express.Express {
    const server = express();
    server.disable('x-powered-by');
    server.set('etag', false);
    server.get('/healthz', (_req, res) => {
      res.json({ ok: true, app: this.app.name, fn: this.fn.name, inFlight: this.inFlight, completions: this.options.stores.completions?.kind ?? 'none' });
    });
    server.get('/readyz', (_req, res) => {
      const ready = this.listening && !this.draining;
      res.status(ready ? 200 : 503).json({ ready, ...(ready ? {} : { reason: this.draining ? 'draining' : 'starting' }) });
    });
    server.get('/metrics', async (_req, res, next) => {
      try {
        res.type(this.metrics.registry.contentType).send(await this.metrics.registry.metrics());
      } catch (error) {
        next(error);
      }
    });
    const raw = express.raw({ type: () => true, limit: BODY_LIMIT });
    server.post('/', (req, res, next) => {
      if (!this.admit(res)) return;
      // The body is read here, not as middleware, so that every admitted request is settled once.
      raw(req, res, (error?: unknown) => {
        (error ? Promise.reject(error) : this.receive(req, res)).catch(next).finally(() => this.settled());
      });
    });
    server.all('/', (req, res) => {
      res.setHeader('Allow', 'POST');
      res.status(405).json({ error: `${req.method} is not supported: POST a CloudEvent` });
    });
    server.use((req, res) => {
      res.status(404).json({ error: `no route for ${req.method} ${req.path}` });
    });
    server.use((error: unknown, req: Request, res: Response, _next: NextFunction) => {
      const status = errorStatus(error);
      if (status >= 500) this.options.logger.error({ err: error, fn: this.fn.name }, 'event request failed');
      if (res.headersSent) return void res.end();
      res.status(status).json(errorBody(error, status));
    });
    return server;
  }

  /** Serves on `port` (0 picks a free one); ready once listening. */
  async listen(port: number, host = '0.0.0.0'): Promise<Server> {
    this.http = await HttpServer.listen(this.handler(), port, host);
    this.listening = true;
    return this.http.server;
  }

  /** Drains: not ready, no new events (503), in-flight ones finish (aborted after the drain timeout), then closes. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.draining = true;
      this.http?.stopAccepting();
      const abort = setTimeout(() => this.shutdown.abort(new Error('drain timed out')), this.options.drainTimeoutMs ?? 10_000);
      if (this.inFlight > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
      clearTimeout(abort);
      await this.http?.close();
      await this.options.stores.close();
    })();
    return this.stopping;
  }

  /** Counts a request in before its body is read, so a drain waits for it; answers 503 while draining, 429 past the concurrency limit. */
  private admit(res: Response): boolean {
    if (this.draining) {
      res.setHeader('Connection', 'close');
      res.status(503).json({ error: 'this instance is shutting down; retry' });
      return false;
    }
    if (this.inFlight >= this.fn.spec.concurrency) {
      res.setHeader('Retry-After', '1');
      res.status(429).json({ error: `function "${this.fn.name}" is at its concurrency limit (${this.fn.spec.concurrency}); retry after 1 s` });
      return false;
    }
    this.inFlight++;
    return true;
  }

  private settled(): void {
    this.inFlight--;
    if (this.inFlight === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  private async receive(req: Request, res: Response): Promise<void> {
    const events = toCloudEvents(req.headers, Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0));
    const attempt = attemptOf(req.header(ATTEMPT_HEADER));
    const now = new Date().toISOString();
    const results: Processed[] = [];
    // One at a time: a batch keeps its order, and the concurrency limit counts requests.
    for (const event of events) {
      event.ingesttime ??= now;
      event.traceparent ??= traceparentFor(event.id, req.header('traceparent'));
      results.push(await this.process(event, attempt));
    }
    const done = results.filter((r): r is Extract<Processed, { outcome: 'done' }> => r.outcome === 'done');
    const outbox = done.flatMap((r) => r.outbox);
    const batch = events.length > 1;
    const reply = !batch && outbox.length === 1 && prefersReply(req.header('prefer'));
    // Done events' outboxes go out even when others in a batch failed: those are settled for good.
    if (outbox.length > 0 && !reply) {
      await this.sendToSink(outbox);
      for (const r of done) if (r.outbox.length) this.options.stores.completions?.delivered(r.key);
    }
    const failed = results.filter((r): r is Extract<Processed, { outcome: 'retry' | 'dead' }> => r.outcome !== 'done');
    if (failed.length > 0) {
      const retry = failed.filter((r) => r.outcome === 'retry');
      const status = retry.length === 0 ? 422 : retry.every((r) => r.timeout) ? 504 : 500;
      const summary = (r: (typeof failed)[number]) => ({ id: r.id, outcome: r.outcome, attempt: r.record });
      const what = retry.length ? 'will be retried' : 'is not retried';
      res.status(status).json(
        batch
          ? { error: `${failed.length} of ${events.length} events failed in function "${this.fn.name}"; the batch ${what}`, results: results.map((r) => (r.outcome === 'done' ? { id: r.id, outcome: 'done' } : summary(r))) }
          : { error: `function "${this.fn.name}" failed on attempt ${attempt} (${failed[0].record.error.name}); the event ${what}`, ...summary(failed[0]) },
      );
    } else if (reply) {
      const { headers, body } = toBinaryHttp(outbox[0]);
      res.status(200).set(headers).send(body);
    } else if (batch) res.status(202).json({ results: results.map((r) => ({ id: r.id, outcome: r.outcome })) });
    else res.status(202).end();
    observeEmitted(this.metrics, outbox);
  }

  /** One event through the function: skipped if its pattern does not match, deduplicated, invoked, committed. */
  private async process(event: CloudEvent, attempt: number): Promise<Processed> {
    const { app, fn } = this;
    const { stores, logger } = this.options;
    const key = eventKey(event);
    if (!fn.pattern!.matches(event)) return { id: event.id, outcome: 'done', key, outbox: [] };
    const prior = await stores.completions?.completion(key);
    if (prior) {
      this.metrics.invoked(fn.name, 'duplicate', 0);
      return { id: event.id, outcome: 'done', key, outbox: prior };
    }
    const races = new WriteRaces();
    for (;;) {
      const scope = new KnativeScope(app, fn, event, stores);
      let result: InvokeResult = await invoke({ app, fn, event, attempt, scope, log: logger, metrics: this.metrics, signal: this.shutdown.signal });
      if (result.outcome === 'ok') {
        const outbox = scope.objectEvents.length ? result.emitted.concat(scope.objectEvents) : result.emitted;
        try {
          return { id: event.id, outcome: 'done', key, outbox: stores.completions ? await stores.completions.commit(key, scope.session, outbox) : outbox };
        } catch (error) {
          result = failureOutcome(fn, attempt, error);
        }
      }
      if (result.outcome === 'duplicate') return { id: event.id, outcome: 'done', key, outbox: [] };
      // A conditional write lost to a concurrent invocation: run again on fresh state, without spending an attempt.
      if (result.error instanceof ConditionFailedError && !this.draining) {
        if (races.lost()) {
          await races.backoff(this.shutdown.signal);
          continue;
        }
        result = conflictedOutcome(fn, attempt, result.error);
      }
      return { id: event.id, outcome: result.outcome, record: result.record, timeout: result.error instanceof TimeoutError };
    }
  }

  /** POSTs events to K_SINK in binary mode; resolves once every one is answered 2xx. */
  private async sendToSink(events: CloudEvent[]): Promise<void> {
    const { sink } = this.options;
    if (!sink) {
      throw new StatusError(500, `function "${this.fn.name}" emitted ${events.length} event(s) that cannot travel as a reply (one event, to a sender that sent Prefer: reply), and K_SINK is not set`);
    }
    await Promise.all(
      events.map(async (event) => {
        const { headers, body } = toBinaryHttp(event);
        let response: globalThis.Response;
        try {
          response = await fetch(sink, { method: 'POST', headers, body: new Uint8Array(body), signal: AbortSignal.timeout(SINK_TIMEOUT_MS) });
        } catch (error) {
          throw new StatusError(502, `K_SINK ${redactUrl(sink)} did not take event ${event.id}: ${(error as Error).message}`);
        }
        await response.arrayBuffer().catch(() => undefined);
        if (!response.ok) throw new StatusError(502, `K_SINK ${redactUrl(sink)} answered ${response.status} for event ${event.id}`);
      }),
    );
  }
}

/** The attempt number a dispatcher sent (ATTEMPT_HEADER), else 1. */
function attemptOf(value: string | undefined): number {
  if (value === undefined) return 1;
  if (!/^[1-9]\d{0,5}$/.test(value.trim())) throw new BindingError(400, `header ${ATTEMPT_HEADER} must be a positive integer, got ${JSON.stringify(value.slice(0, 20))}`);
  return Number(value);
}

/** Does a Prefer header (RFC 7240) ask for a reply? */
function prefersReply(prefer: string | undefined): boolean {
  return (prefer ?? '').split(',').some((p) => p.split(';')[0].trim().toLowerCase() === 'reply');
}
