/**
 * Delivery bookkeeping in SQLite: cursors, completion (idempotency) records, pending retries and
 * dead letters. Every write here runs inside a group-commit transaction.
 */
import type { AttemptRecord, DeadLetter } from '../../core/delivery.js';
import type { CloudEvent } from '../../core/event.js';
import type { Db } from './db.js';

export interface RetryRow {
  fn: string;
  key: string;
  attempt: number;
  due: number;
  event: CloudEvent;
  history: AttemptRecord[];
}

interface RetryDbRow {
  fn: string;
  key: string;
  attempt: number;
  due: number;
  event: string;
  history: string;
}

interface DeadLetterDbRow {
  id: string;
  fn: string;
  event: string;
  attempts: string;
  dead_at: string;
}

function toDeadLetter(row: DeadLetterDbRow): DeadLetter {
  return { id: row.id, fn: row.fn, event: JSON.parse(row.event) as CloudEvent, attempts: JSON.parse(row.attempts) as AttemptRecord[], deadAt: row.dead_at };
}

function toRetry(row: RetryDbRow): RetryRow {
  return { ...row, event: JSON.parse(row.event) as CloudEvent, history: JSON.parse(row.history) as AttemptRecord[] };
}

export class DeliveryRecords {
  private readonly s;

  constructor(db: Db) {
    this.s = {
      cursor: db.prepare('SELECT seq FROM cursors WHERE fn = ?'),
      setCursor: db.prepare('INSERT INTO cursors (fn, seq) VALUES (?, ?) ON CONFLICT (fn) DO UPDATE SET seq = excluded.seq'),
      completed: db.prepare('SELECT 1 FROM completions WHERE fn = ? AND key = ? AND expires > ?'),
      completedAmong: db.prepare('SELECT key FROM completions WHERE fn = ? AND expires > ? AND key IN (SELECT value FROM json_each(?))').pluck(),
      complete: db.prepare('INSERT INTO completions (fn, key, expires) VALUES (?, ?, ?)'),
      sweepCompletions: db.prepare('DELETE FROM completions WHERE (fn, key) IN (SELECT fn, key FROM completions WHERE expires <= ? LIMIT ?)'),
      putRetry: db.prepare(`INSERT INTO retries (fn, key, attempt, due, event, history) VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT (fn, key) DO UPDATE SET attempt = excluded.attempt, due = excluded.due, event = excluded.event, history = excluded.history`),
      deleteRetry: db.prepare('DELETE FROM retries WHERE fn = ? AND key = ?'),
      dueRetries: db.prepare('SELECT * FROM retries WHERE fn = ? AND due <= ? ORDER BY due LIMIT ?'),
      nextDue: db.prepare('SELECT min(due) AS due FROM retries WHERE fn = ? AND due > ?'),
      retryCount: db.prepare('SELECT fn, count(*) AS n FROM retries GROUP BY fn'),
      putDead: db.prepare('INSERT OR REPLACE INTO dead_letters (id, fn, event, attempts, dead_at) VALUES (?, ?, ?, ?, ?)'),
      getDead: db.prepare('SELECT * FROM dead_letters WHERE id = ?'),
      listDead: db.prepare('SELECT * FROM dead_letters ORDER BY dead_at DESC LIMIT ?'),
      listDeadFn: db.prepare('SELECT * FROM dead_letters WHERE fn = ? ORDER BY dead_at DESC LIMIT ?'),
      deleteDead: db.prepare('DELETE FROM dead_letters WHERE id = ?'),
      countDead: db.prepare('SELECT fn, count(*) AS n FROM dead_letters GROUP BY fn'),
    };
  }

  cursor(fn: string): number | undefined {
    return (this.s.cursor.get(fn) as { seq: number } | undefined)?.seq;
  }

  setCursor(fn: string, seq: number): void {
    this.s.setCursor.run(fn, seq);
  }

  isCompleted(fn: string, key: string): boolean {
    return this.s.completed.get(fn, key, Date.now()) !== undefined;
  }

  /** Which of `keys` this function has completed: one query for a whole read batch. */
  completedAmong(fn: string, keys: string[]): Set<string> {
    return new Set(this.s.completedAmong.all(fn, Date.now(), JSON.stringify(keys)) as string[]);
  }

  /** Throws a constraint error if already completed, so a raced duplicate rolls back. */
  complete(fn: string, key: string, expires: number): void {
    this.s.complete.run(fn, key, expires);
  }

  /** Deletes up to `limit` expired completion records (bounded, so a sweep never stalls commits). */
  sweepCompletions(limit: number, now = Date.now()): number {
    return this.s.sweepCompletions.run(now, limit).changes;
  }

  putRetry(row: RetryRow): void {
    this.s.putRetry.run(row.fn, row.key, row.attempt, row.due, JSON.stringify(row.event), JSON.stringify(row.history));
  }

  deleteRetry(fn: string, key: string): void {
    this.s.deleteRetry.run(fn, key);
  }

  dueRetries(fn: string, now: number, limit: number): RetryRow[] {
    return (this.s.dueRetries.all(fn, now, limit) as RetryDbRow[]).map(toRetry);
  }

  /** The earliest due time after `after` of a pending retry of `fn`. */
  nextRetryDue(fn: string, after: number): number | undefined {
    return (this.s.nextDue.get(fn, after) as { due: number | null }).due ?? undefined;
  }

  putDeadLetter(letter: DeadLetter): void {
    this.s.putDead.run(letter.id, letter.fn, JSON.stringify(letter.event), JSON.stringify(letter.attempts), letter.deadAt);
  }

  deadLetter(id: string): DeadLetter | undefined {
    const row = this.s.getDead.get(id) as DeadLetterDbRow | undefined;
    return row && toDeadLetter(row);
  }

  deadLetters(fn?: string, limit = 1000): DeadLetter[] {
    const rows = (fn ? this.s.listDeadFn.all(fn, limit) : this.s.listDead.all(limit)) as DeadLetterDbRow[];
    return rows.map(toDeadLetter);
  }

  deleteDeadLetter(id: string): void {
    this.s.deleteDead.run(id);
  }

  /** Counts per function, for metrics: pending retries and dead letters. */
  counts(): { retries: Map<string, number>; dead: Map<string, number> } {
    const toMap = (rows: unknown[]) => new Map((rows as Array<{ fn: string; n: number }>).map((r) => [r.fn, r.n]));
    return { retries: toMap(this.s.retryCount.all()), dead: toMap(this.s.countDead.all()) };
  }
}
