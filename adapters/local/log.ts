/**
 * The durable event log: one SQLite table, appended through the group commit, read by every
 * function's consumer from its own cursor.
 *
 * Each commit that appended adds its entries to a window of recent entries that every consumer
 * reads from: a caught-up consumer costs no query, and an event is parsed once to be matched
 * against every function's pattern (and again only for each function after the first that takes
 * it), not once per function. An entry appended here keeps its event's type, so a pattern whose
 * type list rejects it, or a listener for other types, needs no parse at all.
 */
import type { CloudEvent } from '../../core/event.js';
import type { Db, GroupCommit } from './db.js';

/** One committed event as its stored JSON. */
export class LogEntry {
  private parsed: CloudEvent | undefined;

  /** @param appendedType the event's type, known when it was appended here (not when read back) */
  constructor(
    readonly seq: number,
    readonly body: string,
    private readonly appendedType?: string,
  ) {}

  /** The event's type: routing by type alone needs no parse of an event appended here. */
  get type(): string {
    return this.appendedType ?? this.shared.type;
  }

  /** The event as stored, parsed once for every reader to match and look at, never to change. */
  get shared(): CloudEvent {
    return (this.parsed ??= JSON.parse(this.body) as CloudEvent);
  }

  /**
   * The event for one reader, who may change it: the shared parse if there is one (a reader after
   * this one parses it again), so an event one function takes is parsed once.
   */
  take(): CloudEvent {
    const event = this.parsed ?? (JSON.parse(this.body) as CloudEvent);
    this.parsed = undefined;
    return event;
  }
}

/** Recent entries kept for consumers: a few of their read batches; one further behind reads SQLite. */
const RECENT = 2_048;

export class EventLog {
  /** Last committed sequence number. */
  head: number;
  /** What the open transaction appended, with the sequence numbers SQLite gave it. */
  private appended: LogEntry[] = [];
  /** The newest committed entries, in sequence order; `recent[recentStart]` is the oldest kept. */
  private recent: LogEntry[] = [];
  private recentStart = 0;
  private readonly insertStmt;
  private readonly readStmt;
  private readonly truncateStmt;
  private readonly listeners = new Set<() => void>();

  constructor(private readonly db: Db, private readonly commit: GroupCommit) {
    this.head = (db.prepare('SELECT max(seq) AS seq FROM events').get() as { seq: number | null }).seq ?? 0;
    this.insertStmt = db.prepare('INSERT INTO events (body) VALUES (?)');
    this.readStmt = db.prepare('SELECT seq, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?');
    this.truncateStmt = db.prepare('DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE seq <= ? ORDER BY seq LIMIT ?)');
    commit.onAfterCommit(({ isolated }) => {
      if (this.appended.length === 0) return;
      const appended = this.appended;
      this.appended = [];
      // When a unit failed, what it appended was rolled back and its sequence numbers given out
      // again (and every unit ran twice): then what committed is read back instead.
      this.keep(isolated ? this.rows(this.head, Number.MAX_SAFE_INTEGER) : appended);
      for (const listener of this.listeners) listener();
    });
  }

  /** Appends durably: resolves after the transaction holding the events has committed. */
  append(events: CloudEvent[]): Promise<void> {
    return this.commit.submit(() => this.appendInTransaction(events));
  }

  /** Appends as part of the caller's transaction (used for emitted events). */
  appendInTransaction(events: CloudEvent[]): void {
    for (const event of events) {
      const body = JSON.stringify(event);
      this.appended.push(new LogEntry(Number(this.insertStmt.run(body).lastInsertRowid), body, event.type));
    }
  }

  /** Up to `limit` committed entries after `afterSeq`, shared with every other reader. */
  entries(afterSeq: number, limit: number): LogEntry[] {
    const first = this.recentStart < this.recent.length ? this.recent[this.recentStart].seq : Infinity;
    if (afterSeq + 1 < first) return this.rows(afterSeq, limit);
    // The first entry past afterSeq, by binary search.
    let [lo, hi] = [this.recentStart, this.recent.length];
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.recent[mid].seq <= afterSeq) lo = mid + 1;
      else hi = mid;
    }
    return this.recent.slice(lo, lo + limit);
  }

  /** Up to `limit` committed events after `afterSeq`, each a copy of the reader's own. */
  read(afterSeq: number, limit: number): Array<{ seq: number; event: CloudEvent }> {
    return this.entries(afterSeq, limit).map((entry) => ({ seq: entry.seq, event: entry.take() }));
  }

  /** Calls `listener` after each commit that appended events. */
  onAppend(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Deletes events every consumer has passed, keeping the newest `keep` for inspection. */
  truncate(belowSeq: number, keep: number, batch: number): number {
    const upTo = Math.min(belowSeq, this.head - keep);
    if (upTo <= 0) return 0;
    return this.truncateStmt.run(upTo, batch).changes;
  }

  private rows(afterSeq: number, limit: number): LogEntry[] {
    return (this.readStmt.all(afterSeq, limit) as Array<{ seq: number; body: string }>).map((row) => new LogEntry(row.seq, row.body));
  }

  /** Adds newly committed entries to the recent window, dropping the oldest past its size. */
  private keep(entries: LogEntry[]): void {
    if (entries.length === 0) return;
    for (const entry of entries) this.recent.push(entry);
    this.head = entries[entries.length - 1].seq;
    this.recentStart = Math.max(this.recentStart, this.recent.length - RECENT);
    if (this.recentStart >= RECENT) {
      this.recent = this.recent.slice(this.recentStart);
      this.recentStart = 0;
    }
  }
}
