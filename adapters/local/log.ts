/**
 * The durable event log: one SQLite table, appended through the group commit, read by every
 * function's consumer from its own cursor.
 */
import type { CloudEvent } from '../../core/event.js';
import type { Db, GroupCommit } from './db.js';

export interface LogEntry {
  seq: number;
  event: CloudEvent;
}

export class EventLog {
  /** Last committed sequence number. */
  head: number;
  /** Set when a transaction appends; cleared after its commit. */
  private appended = false;
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
      if (!this.appended) return;
      this.appended = false;
      // Read back, not counted: a unit that appended and then failed was rolled back, and its
      // sequence numbers are given out again.
      this.head = committedHead();
      for (const listener of this.listeners) listener();
    });
  }

  /** Appends durably: resolves after the transaction holding the events has committed. */
  append(events: CloudEvent[]): Promise<void> {
    return this.commit.submit(() => this.appendInTransaction(events));
  }

  /** Appends as part of the caller's transaction (used for emitted events). */
  appendInTransaction(events: CloudEvent[]): void {
    for (const event of events) this.insertStmt.run(JSON.stringify(event));
    if (events.length > 0) this.appended = true;
  }

  read(afterSeq: number, limit: number): LogEntry[] {
    const rows = this.readStmt.all(afterSeq, limit) as Array<{ seq: number; body: string }>;
    return rows.map((row) => ({ seq: row.seq, event: JSON.parse(row.body) as CloudEvent }));
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
