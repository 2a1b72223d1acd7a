/**
 * One function's consumer of the embedded log: reads past its cursor, routes by the function's
 * pattern, invokes through core/invoke within the concurrency limit, and commits each outcome
 * (effects + completion + emitted events, or a retry, or a dead letter) with the cursor.
 *
 * The cursor is the highest sequence number below which every event is settled, so after a
 * crash delivery resumes there; events settled above it are skipped by their completion record.
 */
import type { AppFunction } from '../../core/app.js';
import { IDEMPOTENCY_TTL_MS, sleep, type AttemptRecord } from '../../core/delivery.js';
import { eventKey, newEventId, type CloudEvent } from '../../core/event.js';
import { conflictedOutcome, invoke, observeEmitted, WriteRaces, type InvokeResult } from '../../core/invoke.js';
import { ConditionFailedError } from '../../core/ports.js';
import type { CommittedTables } from '../../core/session.js';
import type { LogEntry } from './log.js';
import type { LocalContext } from './scope.js';
import { LocalScope } from './scope.js';
import { TableSession } from './tables.js';

interface Attempts {
  event: CloudEvent;
  attempt: number;
  history: AttemptRecord[];
  /** Optimistic write races lost so far (re-runs that spend no attempt). */
  races: WriteRaces;
}

type Delivery = ({ kind: 'stream'; seq: number; completed: boolean } | { kind: 'retry'; key: string }) & Attempts;

/** A delivery attempted, with its outcome still to commit. */
interface Attempted {
  delivery: Delivery;
  result: InvokeResult;
  scope: LocalScope;
}

/** A read entry routed: not for this function, for it, or for it and completed already. */
const enum Route {
  Other,
  Matched,
  Completed,
}

const READ_BATCH = 500;
/** Read-ahead bound: a slow function's backlog stays in the log, not in memory. */
const MAX_OUTSTANDING = 5_000;
/** Most events of one partition an ordered function runs before committing them together. */
const ORDERED_BATCH = 100;
/** Batch work one turn of the event loop runs before the batches step aside for I/O and commits. */
const TURN_BUDGET_MS = 2;
/** When this turn's batch work began: one event loop for every consumer, so one budget. */
let turnStarted = 0;

/**
 * Waits for the next turn of the event loop once this turn's batch work is over its budget.
 * Handlers that never wait on I/O would otherwise run whole batches, every partition's, in one
 * turn, while requests and the commit that would answer them wait.
 */
async function pace(): Promise<void> {
  if (performance.now() - turnStarted <= TURN_BUDGET_MS) return;
  await new Promise((resolve) => setImmediate(resolve));
  // The first batch to resume in a turn starts the turn's budget; the others share it.
  const resumed = performance.now();
  if (resumed - turnStarted > TURN_BUDGET_MS) turnStarted = resumed;
}

export class Consumer {
  private readPos = 0;
  private persisted = 0;
  private cursorSaved = false;
  private buffer: LogEntry[] = [];
  private routes: Route[] = [];
  private bufferIndex = 0;
  /** Stream seqs started, in order, and those of them settled. */
  private started: number[] = [];
  private startedHead = 0;
  private readonly settled = new Set<number>();
  /** Concurrency slots taken: handlers running (and, for ordered functions, their commits). */
  private active = 0;
  /** Deliveries between dispatch and their committed outcome. */
  private running = 0;
  /** Deliveries whose commit lost a write race: run again when a slot is free. */
  private readonly redo: Delivery[] = [];
  /** Ordered functions: deliveries waiting behind a busy partition key. */
  private readonly partitions = new Map<string, Delivery[]>();
  private readonly retrying = new Set<string>();
  private retryTimer: NodeJS.Timeout | undefined;
  private retryAt = Infinity;
  private retryDue = false;
  private stopped = false;
  private idle: Array<() => void> = [];
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly ctx: LocalContext, readonly fn: AppFunction) {}

  start(): void {
    const { records, log, commit } = this.ctx;
    const saved = records.cursor(this.fn.name);
    // A function new to this log starts at its head: it sees events from now on.
    this.readPos = this.persisted = saved ?? log.head;
    this.cursorSaved = saved !== undefined;
    if (!this.cursorSaved) commit.schedule();
    this.unsubscribe = log.onAppend(() => this.pump());
    const due = records.nextRetryDue(this.fn.name, 0);
    if (due !== undefined) this.armRetry(due);
    this.pump();
  }

  /** The persisted position: every event at or below it is settled. */
  cursor(): number {
    while (this.startedHead < this.started.length && this.settled.has(this.started[this.startedHead])) {
      this.settled.delete(this.started[this.startedHead]);
      this.startedHead++;
    }
    if (this.startedHead > 1024 && this.startedHead * 2 > this.started.length) {
      this.started = this.started.slice(this.startedHead);
      this.startedHead = 0;
    }
    return this.startedHead < this.started.length ? this.started[this.startedHead] - 1 : this.readPos;
  }

  /**
   * Called inside every commit transaction: persists the cursor if it moved. Passing events the
   * function does not take commits nothing by itself: the next commit (housekeeping makes one
   * every 100 ms) carries the cursor, and after a crash those events are only passed again.
   */
  persistCursor(): void {
    const cursor = this.cursor();
    if (cursor !== this.persisted || !this.cursorSaved) {
      this.ctx.records.setCursor(this.fn.name, cursor);
      this.persisted = cursor;
      this.cursorSaved = true;
    }
  }

  /** Events in the log this function has not settled yet. */
  lag(): number {
    return this.ctx.log.head - this.cursor();
  }

  armRetry(due: number): void {
    if (due >= this.retryAt || this.stopped) return;
    clearTimeout(this.retryTimer);
    this.retryAt = due;
    this.retryTimer = setTimeout(() => {
      this.retryAt = Infinity;
      this.retryDue = true;
      this.pump();
    }, Math.max(0, due - Date.now()));
  }

  /** Stops taking work; resolves when in-flight invocations have settled. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.unsubscribe?.();
    // Deliveries waiting to re-run are left for the next start: their positions are not settled.
    this.running -= this.redo.splice(0).length;
    if (this.running > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
  }

  private pump(): void {
    if (this.stopped) return;
    while (this.redo.length > 0 && this.active < this.fn.spec.concurrency) this.launch(this.redo.shift()!);
    if (this.retryDue) this.startDueRetries();
    while (this.active < this.fn.spec.concurrency && this.started.length - this.startedHead < MAX_OUTSTANDING) {
      if (this.bufferIndex >= this.buffer.length && !this.readMore()) break;
      const entry = this.buffer[this.bufferIndex];
      const route = this.routes[this.bufferIndex++];
      this.readPos = entry.seq;
      if (route === Route.Other) continue;
      this.started.push(entry.seq);
      this.dispatch({ kind: 'stream', seq: entry.seq, event: entry.take(), attempt: 1, history: [], races: new WriteRaces(), completed: route === Route.Completed });
    }
  }

  /**
   * Reads the next entries past the read position, matches them against the pattern, and looks
   * up completions for the matched ones in one query. False when there are none yet.
   */
  private readMore(): boolean {
    if (this.readPos >= this.ctx.log.head) return false;
    const entries = this.ctx.log.entries(this.readPos, READ_BATCH);
    const pattern = this.fn.pattern;
    const routes = entries.map((entry): Route => (pattern && !pattern.rejectsType(entry.type) && pattern.matches(entry.shared) ? Route.Matched : Route.Other));
    // The matched entries' positions and their completion keys, made once.
    const matched: number[] = [];
    const keys: string[] = [];
    for (let i = 0; i < entries.length; i++) {
      if (routes[i] !== Route.Matched) continue;
      matched.push(i);
      keys.push(eventKey(entries[i].shared));
    }
    // A negative answer can go stale (a duplicate completing meanwhile); the unique completion
    // record still rejects the second commit, so effects stay exactly once.
    const done = keys.length > 0 ? this.ctx.records.completedAmong(this.fn.name, keys) : undefined;
    if (done?.size) for (let j = 0; j < matched.length; j++) if (done.has(keys[j])) routes[matched[j]] = Route.Completed;
    this.buffer = entries;
    this.routes = routes;
    this.bufferIndex = 0;
    return entries.length > 0;
  }

  private dispatch(delivery: Delivery): void {
    this.running++;
    if (this.fn.spec.ordered) {
      const key = delivery.event.partitionkey ?? '';
      const waiting = this.partitions.get(key);
      if (waiting) {
        waiting.push(delivery);
        return;
      }
      this.partitions.set(key, []);
    }
    this.launch(delivery);
  }

  private launch(delivery: Delivery): void {
    this.active++;
    void (this.fn.spec.ordered ? this.runOrdered(delivery) : this.runUnordered(delivery));
  }

  private async runUnordered(delivery: Delivery): Promise<void> {
    if (await this.run(delivery)) this.finish(delivery);
  }

  private startDueRetries(): void {
    const free = this.fn.spec.concurrency - this.active;
    if (free <= 0) return; // retryDue stays set; finish() pumps again
    const now = Date.now();
    const limit = free + this.retrying.size;
    const rows = this.ctx.records.dueRetries(this.fn.name, now, limit);
    let more = rows.length === limit;
    for (const row of rows) {
      if (this.retrying.has(row.key)) continue;
      if (this.active >= this.fn.spec.concurrency) {
        more = true;
        break;
      }
      this.retrying.add(row.key);
      this.dispatch({ kind: 'retry', key: row.key, event: row.event, attempt: row.attempt, history: row.history, races: new WriteRaces() });
    }
    this.retryDue = more;
    // Retries in flight re-arm when they settle; arm for the first one not yet due.
    const next = this.ctx.records.nextRetryDue(this.fn.name, now);
    if (next !== undefined) this.armRetry(next);
  }

  /** One attempt at a delivery; `base` is what its tables read under its own writes. */
  private async attempt(delivery: Delivery, base: CommittedTables): Promise<Attempted> {
    const { ctx, fn } = this;
    // Only the first try of a stream delivery can trust the batch lookup.
    const known = delivery.kind === 'stream' && delivery.attempt === 1 && delivery.races.none ? delivery.completed : undefined;
    const scope = new LocalScope(ctx, fn, delivery.event, known, base);
    const started = performance.now();
    const result = await invoke({ app: ctx.app, fn, event: delivery.event, attempt: delivery.attempt, scope, log: ctx.logger, metrics: ctx.metrics, signal: ctx.signal });
    ctx.onInvoked?.({ fn: fn.name, event: delivery.event, seq: delivery.kind === 'stream' ? delivery.seq : undefined, attempt: delivery.attempt, result, startedAt: performance.timeOrigin + started, durationMs: performance.now() - started });
    return { delivery, result, scope };
  }

  /**
   * Runs a delivery until its outcome is committed. Resolves true when settled, false when it
   * lost a write race and waits in `redo` (unordered functions only).
   * @param first an attempt already made (by an ordered batch), to continue from
   */
  private async run(delivery: Delivery, first?: Attempted): Promise<boolean> {
    const { ctx, fn } = this;
    const ordered = fn.spec.ordered;
    for (;;) {
      const attempted = first ?? (await this.attempt(delivery, ctx.tables));
      const scope = attempted.scope;
      let result = attempted.result;
      first = undefined;
      // A conditional write lost to a concurrent invocation: run again on fresh state, without
      // spending an attempt, a bounded number of times.
      if ((result.outcome === 'retry' || result.outcome === 'dead') && result.error instanceof ConditionFailedError && !this.stopped) {
        if (delivery.races.lost()) {
          await delivery.races.backoff(ctx.signal);
          continue;
        }
        result = conflictedOutcome(fn, delivery.attempt, result.error);
      }
      // Ordered functions retry in place, so nothing behind them in the partition overtakes.
      if (result.outcome === 'retry' && ordered && !this.stopped) {
        delivery.history.push(result.record);
        delivery.attempt++;
        delivery.races.nextAttempt();
        await sleep(result.retryInMs, ctx.signal);
        if (!ctx.signal.aborted) continue;
      }
      // The handler is done: an unordered function's outcome waits for the group commit without
      // holding a slot, so one commit carries many outcomes. An ordered one keeps its partition.
      if (!ordered) this.releaseSlot();
      try {
        await this.settle(delivery, result, scope);
      } catch (error) {
        if (error instanceof ConditionFailedError && !this.stopped && delivery.races.lost()) {
          // A concurrent invocation changed an item this one wrote conditionally: run it again.
          if (ordered) continue;
          this.redo.push(delivery);
          this.pump();
          return false;
        }
        // The effects could not be committed (write races lost too often, or output that cannot
        // be stored): a failed attempt like any other.
        await this.settle(delivery, conflictedOutcome(fn, delivery.attempt, error), scope).catch((failure: unknown) =>
          ctx.logger.error({ err: failure, fn: fn.name }, 'could not record an outcome; the event will be delivered again after restart'),
        );
      }
      return true;
    }
  }

  /**
   * An ordered function's partition: runs its waiting events one after another, each reading
   * the tables as the ones before it left them, and commits their outcomes together, so a busy
   * partition moves many events per commit rather than one. An attempt to be retried ends the
   * batch (it is retried in place once the batch has committed); so does a failed commit, after
   * which each event is run again on its own.
   */
  private async runOrdered(first: Delivery): Promise<void> {
    const key = first.event.partitionkey ?? '';
    const batch: Attempted[] = [];
    // The batch's writes so far: what each attempt reads under its own, and what commits.
    const writes = new TableSession(this.ctx.tables);
    const base = writes.asBase();
    let retry: Attempted | undefined;
    for (let delivery: Delivery | undefined = first; delivery; ) {
      await pace();
      const attempted = await this.attempt(delivery, base);
      if (attempted.result.outcome === 'retry') {
        retry = attempted;
        break;
      }
      batch.push(attempted);
      if (attempted.result.outcome === 'ok') writes.absorb(attempted.scope.session);
      delivery = batch.length < ORDERED_BATCH && !this.stopped ? this.partitions.get(key)?.shift() : undefined;
    }
    if (batch.length === 1) await this.run(batch[0].delivery, batch[0]);
    else if (batch.length > 1) {
      const committed = await this.settleTogether(batch, writes).then(
        () => true,
        () => false,
      );
      // Something in the batch could not commit, so nothing did: each on its own, from scratch.
      if (!committed) for (const { delivery } of batch) await this.run(delivery);
    }
    if (retry) await this.run(retry.delivery, retry);
    for (const { delivery } of retry ? [...batch, retry] : batch) this.finish(delivery);
    this.releasePartition(key);
  }

  /** Commits one attempt's outcome; a duplicate completing meanwhile turns `ok` into `duplicate`. */
  private settle(delivery: Delivery, result: InvokeResult, scope: LocalScope): Promise<void> {
    return this.ctx.commit
      .submit(() => this.writeOutcome(delivery, result, scope, true))
      .then(() => this.committed(result))
      .catch((error: unknown) => {
        if (result.outcome !== 'ok' || !isUniqueViolation(error)) throw error;
        // Completed meanwhile by a duplicate of this event: its effects stand, these are dropped.
        return this.settle(delivery, { outcome: 'duplicate' }, scope);
      });
  }

  /**
   * Commits an ordered batch in one unit of work: the table writes of its successful attempts
   * (gathered, so an item written by every event is written once), then each outcome in order.
   */
  private async settleTogether(batch: Attempted[], writes: TableSession): Promise<void> {
    await this.ctx.commit.submit(() => {
      writes.apply();
      for (const { delivery, result, scope } of batch) this.writeOutcome(delivery, result, scope, false);
    });
    for (const { result } of batch) this.committed(result);
  }

  /**
   * Inside the commit transaction: what an attempt's outcome writes.
   * @param withWrites whether to apply the attempt's table writes (an ordered batch applies them together)
   */
  private writeOutcome(delivery: Delivery, result: InvokeResult, scope: LocalScope, withWrites: boolean): void {
    const { records, log } = this.ctx;
    const fnName = this.fn.name;
    const key = eventKey(delivery.event);
    const isRetry = delivery.kind === 'retry';
    switch (result.outcome) {
      case 'ok':
        if (withWrites) scope.session.apply();
        records.complete(fnName, key, Date.now() + IDEMPOTENCY_TTL_MS);
        log.appendInTransaction(result.emitted.concat(scope.objectEvents));
        if (isRetry) records.deleteRetry(fnName, key);
        break;
      case 'duplicate':
        if (isRetry) records.deleteRetry(fnName, key);
        break;
      case 'retry':
        records.putRetry({ fn: fnName, key, attempt: delivery.attempt + 1, due: Date.now() + result.retryInMs, event: delivery.event, history: [...delivery.history, result.record] });
        break;
      case 'dead':
        records.putDeadLetter({ id: newEventId(), fn: fnName, event: delivery.event, attempts: [...delivery.history, result.record], deadAt: new Date().toISOString() });
        if (isRetry) records.deleteRetry(fnName, key);
        break;
    }
    if (delivery.kind === 'stream') this.settled.add(delivery.seq);
  }

  /** After the commit: metrics for what was emitted, the timer for a retry. */
  private committed(result: InvokeResult): void {
    if (result.outcome === 'ok') observeEmitted(this.ctx.metrics, result.emitted);
    else if (result.outcome === 'retry') this.armRetry(Date.now() + result.retryInMs);
  }

  private releaseSlot(): void {
    this.active--;
    this.pump();
  }

  /** A delivery is settled (or left for the next start, when stopping). */
  private finish(delivery: Delivery): void {
    this.running--;
    if (delivery.kind === 'retry') this.retrying.delete(delivery.key);
    if (this.running === 0 && this.stopped) for (const resolve of this.idle.splice(0)) resolve();
    if (!this.fn.spec.ordered) this.pump();
  }

  /** An ordered batch is over: its slot goes to the partition's next events, or back to the pool. */
  private releasePartition(key: string): void {
    this.active--;
    const waiting = this.partitions.get(key) ?? [];
    if (this.stopped) {
      // Left for the next start: their cursor positions are not settled.
      this.running -= waiting.length;
      this.partitions.delete(key);
      if (this.running === 0) for (const resolve of this.idle.splice(0)) resolve();
    } else if (waiting.length > 0) this.launch(waiting.shift()!);
    else this.partitions.delete(key);
    this.pump();
  }
}

function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  return code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE';
}

