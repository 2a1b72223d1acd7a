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
import { failureOutcome, invoke, observeEmitted, type InvokeResult } from '../../core/invoke.js';
import { ConditionFailedError } from '../../core/ports.js';
import type { LogEntry } from './log.js';
import type { LocalContext } from './scope.js';
import { LocalScope } from './scope.js';

interface Attempts {
  event: CloudEvent;
  attempt: number;
  history: AttemptRecord[];
  /** Optimistic write races lost so far (re-runs that spend no attempt). */
  conflicts: number;
}

type Delivery = ({ kind: 'stream'; seq: number; completed: boolean } | { kind: 'retry'; key: string }) & Attempts;

interface BufferedEntry extends LogEntry {
  matched: boolean;
  completed: boolean;
}

const READ_BATCH = 500;
/** Read-ahead bound: a slow function's backlog stays in the log, not in memory. */
const MAX_OUTSTANDING = 5_000;
/** Re-runs after losing an optimistic write race before the loss counts as a failed attempt. */
const MAX_CONFLICTS = 20;

export class Consumer {
  private readPos = 0;
  private persisted = 0;
  private cursorSaved = false;
  private buffer: BufferedEntry[] = [];
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

  /** Called inside every commit transaction: persists the cursor if it moved. */
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
    const moved = this.readPos;
    while (this.active < this.fn.spec.concurrency && this.started.length - this.startedHead < MAX_OUTSTANDING) {
      const entry = this.next();
      if (!entry) break;
      if (!entry.matched) continue;
      this.started.push(entry.seq);
      this.dispatch({ kind: 'stream', seq: entry.seq, event: entry.event, attempt: 1, history: [], conflicts: 0, completed: entry.completed });
    }
    if (this.readPos !== moved && this.active === 0) this.ctx.commit.schedule();
  }

  private next(): BufferedEntry | undefined {
    if (this.bufferIndex >= this.buffer.length) {
      if (this.readPos >= this.ctx.log.head) return undefined;
      this.buffer = this.route(this.ctx.log.read(this.readPos, READ_BATCH));
      this.bufferIndex = 0;
      if (this.buffer.length === 0) return undefined;
    }
    const entry = this.buffer[this.bufferIndex++];
    this.readPos = entry.seq;
    return entry;
  }

  /** Matches a read batch against the pattern, and looks up completions for it in one query. */
  private route(entries: LogEntry[]): BufferedEntry[] {
    const routed = entries.map((entry) => ({ ...entry, matched: this.fn.pattern?.matches(entry.event) === true, completed: false }));
    const matched = routed.filter((entry) => entry.matched);
    if (matched.length === 0) return routed;
    // A negative answer can go stale (a duplicate completing meanwhile); the unique completion
    // record still rejects the second commit, so effects stay exactly once.
    const done = this.ctx.records.completedAmong(this.fn.name, matched.map((entry) => eventKey(entry.event)));
    if (done.size > 0) for (const entry of matched) entry.completed = done.has(eventKey(entry.event));
    return routed;
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
    void this.run(delivery);
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
      this.dispatch({ kind: 'retry', key: row.key, event: row.event, attempt: row.attempt, history: row.history, conflicts: 0 });
    }
    this.retryDue = more;
    // Retries in flight re-arm when they settle; arm for the first one not yet due.
    const next = this.ctx.records.nextRetryDue(this.fn.name, now);
    if (next !== undefined) this.armRetry(next);
  }

  private async run(delivery: Delivery): Promise<void> {
    const { ctx, fn } = this;
    const ordered = fn.spec.ordered;
    for (;;) {
      // Only the first try of a stream delivery can trust the batch lookup.
      const known = delivery.kind === 'stream' && delivery.attempt === 1 && delivery.conflicts === 0 ? delivery.completed : undefined;
      const scope = new LocalScope(ctx, fn, delivery.event, known);
      const started = performance.now();
      const result = await invoke({ app: ctx.app, fn, event: delivery.event, attempt: delivery.attempt, scope, log: ctx.logger, metrics: ctx.metrics, signal: ctx.signal });
      ctx.onInvoked?.({ fn: fn.name, event: delivery.event, seq: delivery.kind === 'stream' ? delivery.seq : undefined, attempt: delivery.attempt, result, startedAt: performance.timeOrigin + started, durationMs: performance.now() - started });
      // A conditional write lost to a concurrent invocation: run again on fresh state, without
      // spending an attempt, a bounded number of times.
      if (result.outcome === 'retry' && result.error instanceof ConditionFailedError && delivery.conflicts < MAX_CONFLICTS && !this.stopped) {
        delivery.conflicts++;
        await sleep(Math.random() * delivery.conflicts, ctx.signal);
        continue;
      }
      // Ordered functions retry in place, so nothing behind them in the partition overtakes.
      if (result.outcome === 'retry' && ordered && !this.stopped) {
        delivery.history.push(result.record);
        delivery.attempt++;
        await sleep(result.retryInMs, ctx.signal);
        if (!ctx.signal.aborted) continue;
      }
      // The handler is done: an unordered function's outcome waits for the group commit without
      // holding a slot, so one commit carries many outcomes. An ordered one keeps its partition.
      if (!ordered) this.releaseSlot();
      try {
        await this.settle(delivery, result, scope);
      } catch (error) {
        if (error instanceof ConditionFailedError && delivery.conflicts < MAX_CONFLICTS && !this.stopped) {
          // A concurrent invocation changed an item this one wrote conditionally: run it again.
          delivery.conflicts++;
          if (ordered) continue;
          this.redo.push(delivery);
          this.pump();
          return;
        }
        // The effects could not be committed (write races lost too often, or output that cannot
        // be stored): a failed attempt like any other.
        await this.settle(delivery, failureOutcome(fn, delivery.attempt, error), scope).catch((failure: unknown) =>
          ctx.logger.error({ err: failure, fn: fn.name }, 'could not record an outcome; the event will be delivered again after restart'),
        );
      }
      break;
    }
    this.finish(delivery);
  }

  private settle(delivery: Delivery, result: InvokeResult, scope: LocalScope): Promise<void> {
    const { records, log } = this.ctx;
    const fnName = this.fn.name;
    const key = eventKey(delivery.event);
    const isRetry = delivery.kind === 'retry';
    if (result.outcome === 'ok') {
      return this.ctx.commit
        .submit(() => {
          scope.session.apply();
          records.complete(fnName, key, Date.now() + IDEMPOTENCY_TTL_MS);
          log.appendInTransaction(result.emitted.concat(scope.objectEvents));
          if (isRetry) records.deleteRetry(fnName, key);
          if (delivery.kind === 'stream') this.settled.add(delivery.seq);
        })
        .then(() => observeEmitted(this.ctx.metrics, result.emitted))
        .catch((error: unknown) => {
          if (!isUniqueViolation(error)) throw error;
          // Completed meanwhile by a duplicate of this event: its effects stand, these are dropped.
          return this.settle(delivery, { outcome: 'duplicate' }, scope);
        });
    }
    if (result.outcome === 'duplicate') {
      return this.ctx.commit.submit(() => {
        if (isRetry) records.deleteRetry(fnName, key);
        if (delivery.kind === 'stream') this.settled.add(delivery.seq);
      });
    }
    const history = [...delivery.history, result.record];
    if (result.outcome === 'retry') {
      const due = Date.now() + result.retryInMs;
      return this.ctx.commit
        .submit(() => {
          records.putRetry({ fn: fnName, key, attempt: delivery.attempt + 1, due, event: delivery.event, history });
          if (delivery.kind === 'stream') this.settled.add(delivery.seq);
        })
        .then(() => this.armRetry(due));
    }
    return this.ctx.commit.submit(() => {
      records.putDeadLetter({ id: newEventId(), fn: fnName, event: delivery.event, attempts: history, deadAt: new Date().toISOString() });
      if (isRetry) records.deleteRetry(fnName, key);
      if (delivery.kind === 'stream') this.settled.add(delivery.seq);
    });
  }

  private releaseSlot(): void {
    this.active--;
    this.pump();
  }

  private finish(delivery: Delivery): void {
    this.running--;
    if (delivery.kind === 'retry') this.retrying.delete(delivery.key);
    if (this.fn.spec.ordered) {
      this.active--;
      const key = delivery.event.partitionkey ?? '';
      const waiting = this.partitions.get(key) ?? [];
      if (this.stopped) {
        // Left for the next start: their cursor positions are not settled.
        this.running -= waiting.length;
        this.partitions.delete(key);
      } else if (waiting.length > 0) this.launch(waiting.shift()!);
      else this.partitions.delete(key);
    }
    if (this.running === 0 && this.stopped) for (const resolve of this.idle.splice(0)) resolve();
    this.pump();
  }
}

function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  return code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE';
}

