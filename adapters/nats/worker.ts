/**
 * One function's worker: a durable pull consumer shared by every process running the app, each
 * message routed by the function's pattern and invoked through core/invoke, then settled:
 *
 *   ok        commit effects + completion (+ outbox) -> publish the outbox -> ack
 *   retry     attempt history to KV -> nak(backoff)   (ordered functions retry in place)
 *   dead      dead letter with every attempt -> term
 *
 * A redelivered event that is already completed re-publishes its outbox (JetStream drops the
 * duplicates by message id) and is acked, so a crash between commit and ack loses nothing.
 */
import { AckPolicy, DeliverPolicy, JetStreamApiCodes, JetStreamApiError, type Consumer, type ConsumerConfig, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import { triggerPattern, type AppFunction, type BucketSpec, type TableSpec } from '../../core/app.js';
import { attemptRecord, retryPolicy, sleep, type AttemptRecord } from '../../core/delivery.js';
import { eventKey, newEventId, type CloudEvent } from '../../core/event.js';
import { failureOutcome, invoke, objectCreatedEvent, observeEmitted, type InvocationScope, type InvokeResult } from '../../core/invoke.js';
import { ConditionFailedError, type Bucket, type Table } from '../../core/ports.js';
import type { TableSession } from '../../core/session.js';
import { ObjectStoreBucket } from './bucket.js';
import type { NatsContext } from './context.js';
import { filterSubject, recordKey } from './subjects.js';

/** Header naming the one function a redriven dead letter is for. */
export const REDRIVE_HEADER = 'Petrel-Redrive';
/** Ack wait beyond the function's timeout: time to commit, publish and ack after the handler. */
const ACK_MARGIN_MS = 2000;
/** Re-runs after losing an optimistic write race before the loss counts as a failed attempt. */
const MAX_CONFLICTS = 20;
/** Pull batch cap; the server never hands out more than max_ack_pending anyway. */
const MAX_BATCH = 256;

const decoder = new TextDecoder();

/** Does this function keep its completion record (and effects) in PostgreSQL? */
export function usesTables(ctx: NatsContext, fn: AppFunction): boolean {
  return Object.keys(fn.spec.uses).some((name) => ctx.app.resources[name]?.kind === 'table');
}

/**
 * Does this function have effects to protect (emitted events, writes)? One without keeps no
 * completion record: running it again changes nothing, and a record would cost a write per event.
 */
export function hasEffects(fn: AppFunction): boolean {
  return fn.emits.size > 0 || Object.values(fn.spec.uses).includes('write');
}

/** One attempt's resources: buffered PostgreSQL tables and Object Store buckets. */
export class NatsScope implements InvocationScope {
  session?: TableSession;
  /** `petrel.object.created` events for this attempt's bucket puts, published with its outcome. */
  readonly objectEvents: CloudEvent[] = [];

  constructor(private readonly ctx: NatsContext, private readonly fn: AppFunction, private readonly event: CloudEvent) {}

  table(name: string, _spec: TableSpec): Table {
    if (!this.ctx.pg) throw new Error(`table "${name}" needs PostgreSQL: start the runtime with a PostgreSQL URL`);
    this.session ??= this.ctx.pg.session(this.ctx.app.name);
    return this.session.table(name, _spec);
  }

  bucket(name: string, _spec: BucketSpec): Bucket {
    const { app } = this.ctx;
    return new ObjectStoreBucket(this.ctx.objectStores.get(name)!, name, (info) => {
      this.objectEvents.push(objectCreatedEvent(app, this.fn.name, this.event, name, info));
    });
  }

  completed(): boolean {
    return false; // the worker checks completion itself, before invoking, to re-publish an outbox
  }
}

/**
 * Makes an `ok` outcome durable, then publishes its outbox: with tables, effects + completion +
 * outbox in one PostgreSQL transaction; without, completion + outbox in one KV entry. If the event
 * was completed before (a duplicate), the stored outbox is published again instead; JetStream
 * drops what it already has by message id.
 */
export async function commitOk(ctx: NatsContext, fn: AppFunction, event: CloudEvent, scope: NatsScope, emitted: CloudEvent[], record: boolean): Promise<void> {
  const outbox = scope.objectEvents.length ? emitted.concat(scope.objectEvents) : emitted;
  const key = eventKey(event);
  if (usesTables(ctx, fn)) {
    if (!scope.session?.size && !outbox.length && !record) return;
    const result = await ctx.pg!.commit(ctx.app.name, scope.session, { fn: fn.name, key, outbox });
    const publish = result.committed ? outbox : (result.duplicate.outbox ?? []);
    if (publish.length) {
      await ctx.publish(publish);
      ctx.outboxes.clear(fn.name, key);
    }
    return;
  }
  if (!record || !hasEffects(fn)) {
    if (outbox.length) await ctx.publish(outbox);
    return;
  }
  const result = await ctx.records.complete(recordKey(fn.name, key), outbox);
  const publish = result.created ? outbox : result.outbox;
  if (publish.length) await ctx.publish(publish);
}

export class FunctionWorker {
  private consumer?: Consumer;
  private messages?: ConsumerMessages;
  /** Messages being handled, with when they arrived (for progress acks). */
  private readonly inFlight = new Map<JsMsg, number>();
  private stopped = false;
  private lagCache = 0;
  private readonly ackWaitMs: number;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly ctx: NatsContext, readonly fn: AppFunction) {
    this.ackWaitMs = fn.spec.timeoutMs + ACK_MARGIN_MS;
  }

  /** The durable consumer's settings, derived from the function's spec. */
  consumerConfig(): Partial<ConsumerConfig> & { durable_name: string } {
    const { fn } = this;
    return {
      durable_name: fn.name,
      ack_policy: AckPolicy.Explicit,
      // A function new to the stream sees events from now on.
      deliver_policy: DeliverPolicy.New,
      filter_subject: filterSubject(this.ctx.app.name, triggerPattern(fn.spec.trigger, fn.name)),
      ack_wait: nanos(this.ackWaitMs),
      // Unlimited: petrel counts attempts and dead-letters itself, so the server never drops silently.
      max_deliver: -1,
      // Ordered functions: one event at a time across every process, so order holds per key.
      max_ack_pending: fn.spec.ordered ? 1 : fn.spec.concurrency,
    };
  }

  async start(): Promise<void> {
    const { jsm, js, names } = this.ctx;
    const config = this.consumerConfig();
    try {
      const info = await jsm.consumers.info(names.stream, config.durable_name);
      const c = info.config;
      if (c.filter_subject !== config.filter_subject || c.ack_wait !== config.ack_wait || c.max_ack_pending !== config.max_ack_pending || c.max_deliver !== config.max_deliver) {
        await jsm.consumers.update(names.stream, config.durable_name, { filter_subject: config.filter_subject, ack_wait: config.ack_wait, max_ack_pending: config.max_ack_pending, max_deliver: config.max_deliver });
      }
    } catch (error) {
      if (!(error instanceof JetStreamApiError && error.code === JetStreamApiCodes.ConsumerNotFound)) throw error;
      await jsm.consumers.add(names.stream, config);
    }
    this.consumer = await js.consumers.get(names.stream, config.durable_name);
    const batch = Math.min(config.max_ack_pending!, MAX_BATCH);
    this.messages = await this.consumer.consume({
      max_messages: batch,
      callback: (msg) => {
        // Stopping: hand it straight back so another process takes it now, not after ack wait.
        if (this.stopped) return settle(() => msg.nak());
        void this.handle(msg);
      },
    });
  }

  /** Events not yet settled by this function (pending + unacknowledged), as of the last refresh. */
  lag(): number {
    return this.lagCache;
  }

  busy(): boolean {
    return this.inFlight.size > 0;
  }

  async refresh(): Promise<number> {
    if (!this.consumer) return this.lagCache;
    const info = await this.consumer.info();
    this.lagCache = info.num_pending + info.num_ack_pending;
    return this.lagCache;
  }

  /** Tells the server that long-running messages are still being worked on. */
  keepAlive(now = Date.now()): void {
    for (const [msg, since] of this.inFlight) if (now - since > this.ackWaitMs / 3) msg.working();
  }

  get keepAliveEveryMs(): number {
    return Math.max(100, this.ackWaitMs / 3);
  }

  /** Stops pulling; resolves when in-flight messages have settled. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.messages?.close().catch(() => undefined);
    if (this.inFlight.size > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private async handle(msg: JsMsg): Promise<void> {
    const { ctx, fn } = this;
    let event: CloudEvent;
    try {
      event = JSON.parse(decoder.decode(msg.data)) as CloudEvent;
    } catch {
      ctx.logger.error({ fn: fn.name, subject: msg.subject, seq: msg.seq }, 'message is not a JSON CloudEvent; terminated');
      return msg.term();
    }
    const redriveFor = msg.headers?.get(REDRIVE_HEADER);
    if ((redriveFor && redriveFor !== fn.name) || !fn.pattern!.matches(event)) return msg.ack();
    this.inFlight.set(msg, Date.now());
    try {
      await this.deliver(msg, event);
    } catch (error) {
      // Settling failed (NATS or PostgreSQL unreachable): the message is redelivered after ack wait
      // or now, and the completion record keeps the retry from doubling anything.
      ctx.logger.error({ err: error, fn: fn.name, eventId: event.id }, 'could not settle an event; it will be delivered again');
      if (!this.stopped) settle(() => msg.nak(1000));
    } finally {
      this.inFlight.delete(msg);
      if (this.inFlight.size === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }

  private async deliver(msg: JsMsg, event: CloudEvent): Promise<void> {
    const { ctx, fn } = this;
    const key = eventKey(event);
    const historyKey = recordKey(fn.name, key);
    const delivered = msg.info.deliveryCount;
    let history: AttemptRecord[] = [];
    // A first delivery runs at once: the commit itself finds an existing completion (an event
    // published again past the duplicate window). A redelivery looks first, to skip the handler.
    if (delivered > 1) {
      if (hasEffects(fn) && (await this.completedBefore(event, key, historyKey))) {
        ctx.metrics.invoked(fn.name, 'duplicate', 0);
        return msg.ack();
      }
      history = await ctx.records.history(historyKey);
    }
    let attempt = Math.max(delivered, history.length + 1);
    const maxAttempts = retryPolicy(fn.spec.retry).maxAttempts;
    if (delivered > 2 * maxAttempts + 2) {
      // A poison pill that kills its worker before any outcome is recorded: stop the loop.
      const record = attemptRecord(attempt, new Error(`delivered ${delivered} times without an outcome (the worker stopped or timed out each time)`));
      return this.deadLetter(msg, event, historyKey, [...history, record], history.length > 0);
    }
    let conflicts = 0;
    for (;;) {
      const scope = new NatsScope(ctx, fn, event);
      let result: InvokeResult = await invoke({ app: ctx.app, fn, event, attempt, scope, log: ctx.logger, metrics: ctx.metrics, signal: ctx.signal });
      if (result.outcome === 'ok') {
        try {
          await commitOk(ctx, fn, event, scope, result.emitted, true);
          msg.ack();
          if (history.length > 0) await ctx.records.clearHistory(historyKey);
          observeEmitted(ctx.metrics, result.emitted);
          return;
        } catch (error) {
          result = failureOutcome(fn, attempt, error);
        }
      }
      if (result.outcome === 'duplicate') return msg.ack();
      // A conditional write lost to a concurrent invocation: run again on fresh state, without
      // spending an attempt, a bounded number of times.
      if (result.error instanceof ConditionFailedError && conflicts < MAX_CONFLICTS && !this.stopped) {
        conflicts++;
        await sleep(Math.random() * conflicts, ctx.signal);
        continue;
      }
      const stored = history.length > 0;
      history = [...history, result.record];
      if (result.outcome === 'dead') return this.deadLetter(msg, event, historyKey, history, stored);
      await ctx.records.putHistory(historyKey, history);
      // Ordered functions retry in place: the event stays unacknowledged, so nothing behind it overtakes.
      if (fn.spec.ordered && !this.stopped) {
        await sleep(result.retryInMs, ctx.signal);
        if (!this.stopped) {
          attempt++;
          continue;
        }
      }
      return msg.nak(result.retryInMs);
    }
  }

  private async deadLetter(msg: JsMsg, event: CloudEvent, historyKey: string, attempts: AttemptRecord[], stored: boolean): Promise<void> {
    const { ctx, fn } = this;
    await ctx.records.putDeadLetter({ id: newEventId(), fn: fn.name, event, attempts, deadAt: new Date().toISOString() });
    // No reason text: nats-server 2.9 ignores a +TERM that carries one.
    msg.term();
    if (stored) await ctx.records.clearHistory(historyKey);
    ctx.deadLettered(fn.name);
  }

  /** Completed before? Then its outbox is published again (JetStream drops what it has). */
  private async completedBefore(event: CloudEvent, key: string, historyKey: string): Promise<boolean> {
    const { ctx, fn } = this;
    if (!usesTables(ctx, fn)) {
      const outbox = await ctx.records.completion(historyKey);
      if (outbox?.length) await ctx.publish(outbox);
      return outbox !== undefined;
    }
    const completion = await ctx.pg!.completion(ctx.app.name, fn.name, key);
    if (!completion) return false;
    if (completion.outbox?.length) {
      await ctx.publish(completion.outbox);
      ctx.outboxes.clear(fn.name, key);
    }
    return true;
  }
}

/** Acks on a connection that is gone throw; the server redelivers after ack wait anyway. */
function settle(ack: () => void): void {
  try {
    ack();
  } catch {
    // nothing to do: see above
  }
}

