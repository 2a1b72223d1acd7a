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
import type { JsMsg } from '@nats-io/jetstream';
import type { AppFunction, BucketSpec, TableSpec } from '../../core/app.js';
import { attemptRecord, retryPolicy, sleep, type AttemptRecord } from '../../core/delivery.js';
import { eventKey, newEventId, type CloudEvent } from '../../core/event.js';
import { conflictedOutcome, failureOutcome, invoke, objectCreatedEvent, observeEmitted, WriteRaces, type InvocationScope, type InvokeResult } from '../../core/invoke.js';
import { ConditionFailedError, type Bucket, type Table } from '../../core/ports.js';
import type { TableSession } from '../../core/session.js';
import { ObjectStoreBucket } from './bucket.js';
import type { NatsContext } from './context.js';
import { DurableConsumer } from './durable.js';
import { recordKey } from './subjects.js';

/** Ack wait beyond the function's timeout: time to commit, publish and ack after the handler. */
const ACK_MARGIN_MS = 2000;

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

export class FunctionWorker extends DurableConsumer {
  constructor(private readonly ctx: NatsContext, fn: AppFunction) {
    super(ctx, fn, fn.spec.timeoutMs + ACK_MARGIN_MS);
  }

  protected async deliver(msg: JsMsg, event: CloudEvent): Promise<void> {
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
    const races = new WriteRaces();
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
      if (result.error instanceof ConditionFailedError && !this.stopped) {
        if (races.lost()) {
          await races.backoff(ctx.signal);
          continue;
        }
        result = conflictedOutcome(fn, attempt, result.error);
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
          races.nextAttempt();
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
