/**
 * The one invoke path every adapter calls: event -> handler with its context, under a timeout,
 * skipping events already completed, timing the attempt -> an outcome the adapter commits.
 *
 * The adapter's scope buffers (or keys) the handler's writes; it commits them together with the
 * completion record and the emitted events only when the outcome is `ok`.
 */
import { OBJECT_CREATED_TYPE, type Access, type App, type AppFunction, type Context, type EmitOptions, type HttpResponse, type ResourceSpec } from './app.js';
import { afterFailure, attemptRecord, isPermanent, retryPolicy, sleep, TimeoutError, type AttemptRecord } from './delivery.js';
import { deriveEventId, traceparentFor, type CloudEvent } from './event.js';
import { AccessError, ConditionFailedError, type Bucket, type Item, type KeyValue, type Logger, type Metrics, type ObjectInfo, type QueryOptions, type ReadBucket, type ReadTable, type Table } from './ports.js';

/** Resource views for one attempt, provided by the adapter. */
export interface InvocationScope {
  table(name: string, spec: ResourceSpec & { kind: 'table' }): Table;
  bucket(name: string, spec: ResourceSpec & { kind: 'bucket' }): Bucket;
  /** Has this function already completed this event? (idempotency record) */
  completed(): boolean | Promise<boolean>;
}

export interface InvokeRequest {
  app: App;
  fn: AppFunction;
  event: CloudEvent;
  attempt: number;
  scope: InvocationScope;
  log: Logger;
  metrics?: Metrics;
  /** Aborted when the runtime shuts down. */
  signal?: AbortSignal;
  random?: () => number;
}

export type InvokeResult =
  | { outcome: 'ok'; emitted: CloudEvent[]; response?: HttpResponse }
  | { outcome: 'duplicate' }
  | { outcome: 'retry'; retryInMs: number; record: AttemptRecord; error: unknown }
  | { outcome: 'dead'; record: AttemptRecord; error: unknown };

/** Aborts a handler's signal when its invocation is over (one instance: no per-call allocation). */
const INVOCATION_OVER = new Error('invocation finished');

export async function invoke(request: InvokeRequest): Promise<InvokeResult> {
  const { fn, scope, metrics } = request;
  const started = performance.now();
  if (await scope.completed()) {
    metrics?.invoked(fn.name, 'duplicate', 0);
    return { outcome: 'duplicate' };
  }
  const spec = fn.spec;
  const ctx = new AttemptContext(request);
  for (const [name, access] of Object.entries(spec.uses)) {
    const resource = request.app.resources[name];
    if (resource.kind === 'table') ctx.tables[name] = guardTable(name, scope.table(name, resource), access);
    else ctx.buckets[name] = guardBucket(name, scope.bucket(name, resource), access);
  }
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const error = new TimeoutError(`function "${fn.name}" timed out after ${spec.timeoutMs} ms`);
        reject(error); // first, so a handler that returns on abort does not win the race
        ctx.end(error);
      }, spec.timeoutMs);
    });
    const response = await Promise.race([Promise.resolve(spec.handler(request.event, ctx)), timeout]);
    metrics?.invoked(fn.name, 'ok', performance.now() - started);
    return { outcome: 'ok', emitted: ctx.emitted, response: response ?? undefined };
  } catch (error) {
    const result = failureOutcome(fn, request.attempt, error, request.random);
    metrics?.invoked(fn.name, result.outcome, performance.now() - started);
    ctx.log.warn({ err: result.record.error, permanent: isPermanent(error) }, result.outcome === 'dead' ? 'handler failed; dead-lettering' : 'handler failed; will retry');
    return result;
  } finally {
    clearTimeout(timer);
    ctx.end(INVOCATION_OVER);
  }
}

/**
 * A handler's `ctx` for one attempt. A class, not an object of closures: its signal and child
 * logger are made on first use (most handlers touch neither; made per call they cost a fifth of
 * the embedded runtime's CPU), and methods on a prototype cost nothing per call. The closures it
 * replaced each cost a name (tsx keeps function names) and, measured under the air-quality bench,
 * made about 4 MB of each scavenge survive where 1.3 MB do now (pauses 4.4-5.0 -> 1.6-1.9 ms).
 */
class AttemptContext implements Context {
  readonly tables: Context['tables'] = {};
  readonly buckets: Context['buckets'] = {};
  readonly emitted: CloudEvent[] = [];
  readonly attempt: number;
  readonly deadline: number;
  private controller: AbortController | undefined;
  /** Why the attempt is over (timed out, finished), for a signal made after that. */
  private ended: unknown;
  private logger: Logger | undefined;

  constructor(private readonly request: InvokeRequest) {
    this.attempt = request.attempt;
    this.deadline = Date.now() + request.fn.spec.timeoutMs;
    // Bound once, so a handler may take `emit` off ctx.
    this.emit = this.emit.bind(this);
  }

  get fn(): string {
    return this.request.fn.name;
  }

  emit(type: string, data: unknown, options?: EmitOptions): void {
    const { app, fn, event } = this.request;
    if (!fn.emits.has(type)) {
      const message = `function "${fn.name}" emitted "${type}", which is not in its emits (${[...fn.emits].join(', ') || 'none'})`;
      throw Object.assign(new AccessError(message), { permanent: true });
    }
    this.emitted.push(childEvent(app, fn.name, event, this.emitted.length, type, data, options));
  }

  get log(): Logger {
    const { log, fn, event, attempt } = this.request;
    return (this.logger ??= log.child({ fn: fn.name, eventId: event.id, attempt }));
  }

  get signal(): AbortSignal {
    if (!this.controller) {
      const shutdown = this.request.signal;
      this.controller = new AbortController();
      if (this.ended !== undefined) this.controller.abort(this.ended);
      else if (shutdown?.aborted) this.controller.abort(shutdown.reason);
      else shutdown?.addEventListener('abort', this, { once: true });
    }
    return this.controller.signal;
  }

  /** The runtime is shutting down (this is the shutdown signal's listener). */
  handleEvent(): void {
    this.controller?.abort(this.request.signal?.reason);
  }

  /** The attempt is over (`reason`: timed out, finished): its signal, if made, aborts. */
  end(reason: unknown): void {
    if (this.ended !== undefined) return;
    this.ended = reason;
    if (this.controller) {
      this.controller.abort(reason);
      this.request.signal?.removeEventListener('abort', this);
    }
  }
}

/**
 * Records, per emitted type, the time from the original ingest to now: call it once the emitted
 * events are durable. This is how "ingest to alert" latency is measured on every target.
 */
export function observeEmitted(metrics: Metrics | undefined, emitted: CloudEvent[], now = Date.now()): void {
  if (!metrics?.observeLatency) return;
  for (const event of emitted) {
    const ingested = event.ingesttime ? Date.parse(event.ingesttime) : NaN;
    if (!Number.isNaN(ingested)) metrics.observeLatency(event.type, Math.max(0, now - ingested));
  }
}

/** Runs on fresh state an attempt that lost a write race gets before the loss counts as a failed attempt. */
export const MAX_WRITE_CONFLICTS = 20;

/**
 * The write races one attempt has lost. An attempt whose conditional write lost to a concurrent
 * invocation runs again on fresh state, without spending an attempt, up to MAX_WRITE_CONFLICTS
 * times; then the loss is a failed attempt (conflictedOutcome). Each attempt has its own count.
 */
export class WriteRaces {
  private count = 0;

  /** No race lost in this attempt yet. */
  get none(): boolean {
    return this.count === 0;
  }

  /** Counts a lost race: true while the attempt may run again on fresh state. */
  lost(): boolean {
    if (this.count >= MAX_WRITE_CONFLICTS) return false;
    this.count++;
    return true;
  }

  /** A short random wait, longer with each race lost, so the racing invocations spread out. */
  backoff(signal?: AbortSignal): Promise<void> {
    return sleep(Math.random() * this.count, signal);
  }

  /** The next attempt: its races count afresh. */
  nextAttempt(): void {
    this.count = 0;
  }
}

/**
 * A failed attempt's outcome; one that failed on a conditional write after every run on fresh
 * state says what that means and what helps, as the bare "condition failed" did not.
 */
export function conflictedOutcome(fn: AppFunction, attempt: number, error: unknown): Extract<InvokeResult, { outcome: 'retry' | 'dead' }> {
  if (!(error instanceof ConditionFailedError)) return failureOutcome(fn, attempt, error);
  const advice = `${error.message}, still after ${MAX_WRITE_CONFLICTS} runs on fresh state: either the condition cannot hold, or more invocations write these items at once than get through ("${fn.name}" runs up to ${fn.spec.concurrency} at once; ordered: true, with the items' key as partitionkey, runs their writers one at a time)`;
  return failureOutcome(fn, attempt, new ConditionFailedError(advice));
}

/** The outcome of a failed attempt under the function's retry policy. */
export function failureOutcome(fn: AppFunction, attempt: number, error: unknown, random?: () => number): Extract<InvokeResult, { outcome: 'retry' | 'dead' }> {
  const record = attemptRecord(attempt, error);
  const next = afterFailure(attempt, error, retryPolicy(fn.spec.retry), random);
  return 'dead' in next ? { outcome: 'dead', record, error } : { outcome: 'retry', retryInMs: next.retryInMs, record, error };
}

/**
 * The `petrel.object.created` event for an object a handler put while handling `input`: its id
 * derives from the input and the object, so a retried put announces the object once.
 */
export function objectCreatedEvent(app: App, fnName: string, input: CloudEvent, bucket: string, object: ObjectInfo): CloudEvent {
  const source = `petrel/${app.name}/bucket/${bucket}`;
  return childEvent(app, fnName, input, `object:${bucket}/${object.key}`, OBJECT_CREATED_TYPE, { bucket, ...object }, { source, subject: object.key });
}

/** An event emitted while handling `input`: deterministic id, causation and trace carried over. */
export function childEvent(app: App, fnName: string, input: CloudEvent, index: number | string, type: string, data: unknown, options: EmitOptions = {}): CloudEvent {
  const id = deriveEventId(input.id, fnName, index);
  const event: CloudEvent = {
    specversion: '1.0',
    id,
    source: options.source ?? `petrel/${app.name}/${fnName}`,
    type,
    time: new Date().toISOString(),
    datacontenttype: 'application/json',
    data,
    causationid: input.id,
    traceparent: traceparentFor(id, input.traceparent),
  };
  const partitionkey = options.partitionkey ?? input.partitionkey;
  if (partitionkey !== undefined) event.partitionkey = partitionkey;
  if (options.subject !== undefined) event.subject = options.subject;
  if (input.ingesttime !== undefined) event.ingesttime = input.ingesttime;
  return event;
}

function denied(resource: string, operation: string): Promise<never> {
  return Promise.reject(Object.assign(new AccessError(`"${resource}" is granted read-only; ${operation} needs uses: { ${resource}: 'write' }`), { permanent: true }));
}

function guardTable(name: string, table: Table, access: Access): Table | ReadTable {
  return access === 'write' ? table : new ReadOnlyTable(name, table);
}

/** A table granted `read`: reads pass through, writes are refused (a class: one per table per attempt). */
class ReadOnlyTable implements ReadTable {
  constructor(
    private readonly name: string,
    private readonly table: Table,
  ) {}

  get(key: Item): Promise<Item | undefined> {
    return this.table.get(key);
  }

  query(pk: KeyValue, options?: QueryOptions): Promise<Item[]> {
    return this.table.query(pk, options);
  }

  put(): Promise<never> {
    return denied(this.name, 'put');
  }

  delete(): Promise<never> {
    return denied(this.name, 'delete');
  }
}

function guardBucket(name: string, bucket: Bucket, access: Access): Bucket | ReadBucket {
  if (access === 'write') return bucket;
  return {
    get: (key) => bucket.get(key),
    list: (prefix) => bucket.list(prefix),
    put: () => denied(name, 'put'),
    delete: () => denied(name, 'delete'),
  } as ReadBucket;
}
