/**
 * The durable event log: one SQLite table, appended through the group commit, read by every
 * function's consumer from its own cursor.
 *
 * The newest events are also kept in memory, parsed: consumers keeping up with the log read them
 * from there, so each event is parsed once rather than once per function (and not read back from
 * SQLite at all). A consumer far behind reads from the table.
 */
import type { CloudEvent } from '../../core/event.js';
import type { Db, GroupCommit } from './db.js';

export interface LogEntry {
  seq: number;
  /** Shared by every reader: not to be modified (`body` parses to a private copy). */
  event: CloudEvent;
  /** The event as stored (JSON). */
  body: string;
}

/** Newest events kept parsed in memory: a second or two at a busy pace (about 1 KiB each). */
const RECENT = 4_096;

export class EventLog {
  /** Last committed sequence number. */
  head: number;
  /** Appended in the current transaction, by sequence number; a rolled-back unit's are replaced or dropped. */
  private pending = new Map<number, LogEntry>();
  private readonly recent = new Map<number, LogEntry>();
  private readonly insertStmt;
  private readonly readStmt;
  private readonly listeners = new Set<() => void>();

  constructor(private readonly db: Db, private readonly commit: GroupCommit) {
    const maxStmt = db.prepare('SELECT max(seq) AS seq FROM events');
    const committedHead = () => (maxStmt.get() as { seq: number | null }).seq ?? 0;
    this.head = committedHead();
    this.insertStmt = db.prepare('INSERT INTO events (body) VALUES (?)');
    this.readStmt = db.prepare('SELECT seq, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?');
    commit.onAfterCommit(() => {
      if (this.pending.size === 0) return;
      // Read back, not counted: a unit that appended and then failed was rolled back, and its
      // sequence numbers are given out again (to a later unit, whose entries replaced its own).
      this.head = committedHead();
      for (const [seq, entry] of this.pending) {
        if (seq > this.head) continue;
        this.recent.set(seq, entry);
        this.recent.delete(seq - RECENT);
      }
      this.pending = new Map();
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
      const seq = Number(this.insertStmt.run(body).lastInsertRowid);
      // A private copy: the appender may still hold (and change) the object it appended.
      this.pending.set(seq, { seq, event: JSON.parse(body) as CloudEvent, body });
    }
  }

  /** Up to `limit` committed events after `afterSeq`, oldest first. */
  read(afterSeq: number, limit: number): LogEntry[] {
    if (this.recent.has(afterSeq + 1)) {
      const entries: LogEntry[] = [];
      for (let seq = afterSeq + 1; seq <= this.head && entries.length < limit; seq++) {
        const entry = this.recent.get(seq);
        if (!entry) break; // not kept (a gap left by truncation): the rest from the table
        entries.push(entry);
      }
      if (entries.length === limit || entries.at(-1)!.seq === this.head) return entries;
      return entries.concat(this.read(entries.at(-1)!.seq, limit - entries.length));
    }
    const rows = this.readStmt.all(afterSeq, limit) as Array<{ seq: number; body: string }>;
    return rows.map((row) => ({ seq: row.seq, event: JSON.parse(row.body) as CloudEvent, body: row.body }));
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
    return this.db.prepare('DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE seq <= ? ORDER BY seq LIMIT ?)').run(upTo, batch).changes;
  }
}
