/**
 * The embedded runtime's one SQLite database (WAL), and the group commit every write goes through.
 *
 * One connection, one writer: appends from the ingress and invocation outcomes queued within the
 * same tick commit in one transaction (BEGIN/COMMIT dominated CPU in the prototype, DESIGN.md).
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export type Db = Database.Database;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cursors (fn TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS completions (fn TEXT NOT NULL, key TEXT NOT NULL, expires INTEGER NOT NULL, PRIMARY KEY (fn, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS retries (fn TEXT NOT NULL, key TEXT NOT NULL, attempt INTEGER NOT NULL, due INTEGER NOT NULL,
  event TEXT NOT NULL, history TEXT NOT NULL, PRIMARY KEY (fn, key)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS retries_due ON retries (fn, due);
-- expires only grows, so this index is appended to, not reshuffled.
CREATE INDEX IF NOT EXISTS completions_expires ON completions (expires);
CREATE TABLE IF NOT EXISTS dead_letters (id TEXT PRIMARY KEY, fn TEXT NOT NULL, event TEXT NOT NULL, attempts TEXT NOT NULL,
  dead_at TEXT NOT NULL) WITHOUT ROWID;
-- pk and sk have no declared type, so numbers stay numbers and sort as numbers. A rowid table
-- with its key in an index: items are JSON of up to kilobytes, which a WITHOUT ROWID table keeps
-- in its key's B-tree and spills to overflow pages past about 1 KB.
CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, tbl TEXT NOT NULL, pk NOT NULL, sk NOT NULL, item TEXT NOT NULL, expires INTEGER);
CREATE UNIQUE INDEX IF NOT EXISTS items_key ON items (tbl, pk, sk);
CREATE INDEX IF NOT EXISTS items_expires ON items (expires) WHERE expires IS NOT NULL;
`;

export interface OpenOptions {
  dataDir: string;
  /** 'normal' survives a process crash (kill -9); 'full' also survives power loss, slower. */
  synchronous?: 'normal' | 'full';
}

export function openDatabase({ dataDir, synchronous = 'normal' }: OpenOptions): Db {
  mkdirSync(dataDir, { recursive: true });
  const db = new Database(join(dataDir, 'petrel.db'));
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
  db.pragma('busy_timeout = 5000');
  migrateItems(db);
  db.exec(SCHEMA);
  return db;
}

/** Data dirs made before items moved to a rowid table: copies them over, once, in one transaction. */
function migrateItems(db: Db): void {
  const items = db.prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'items'").pluck().get() as string | undefined;
  if (!items || !/WITHOUT ROWID/i.test(items)) return;
  db.transaction(() => {
    db.exec('DROP INDEX IF EXISTS items_expires; ALTER TABLE items RENAME TO items_without_rowid;');
    db.exec(SCHEMA);
    db.exec('INSERT INTO items (tbl, pk, sk, item, expires) SELECT tbl, pk, sk, item, expires FROM items_without_rowid; DROP TABLE items_without_rowid;');
  })();
}

/** What an after-commit hook is told. */
export interface Committed {
  /**
   * Some unit failed, so the transaction ran again with each unit in a savepoint: what a unit
   * wrote may have been rolled back while what it remembered of its writes was not.
   */
  isolated: boolean;
}

interface Work {
  run: () => void;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * Queues writes and commits all that were queued in one tick as one transaction. Each unit of
 * work runs in its own savepoint, so one failing unit (a condition that no longer holds) rolls
 * back alone while the rest commit.
 */
export class GroupCommit {
  private queue: Work[] = [];
  private scheduled = false;
  private readonly beforeCommit: Array<() => void> = [];
  private readonly afterCommit: Array<(commit: Committed) => void> = [];
  private failure: unknown;
  /** Built once: better-sqlite3 runs these as BEGIN/COMMIT, and nested as a SAVEPOINT. */
  private readonly transaction: (run: () => void) => void;
  private readonly savepoint: (run: () => void) => void;

  constructor(private readonly db: Db, private readonly onFatal: (error: unknown) => void) {
    this.transaction = db.transaction((run: () => void) => run());
    this.savepoint = db.transaction((run: () => void) => run());
  }

  /** Runs `run` inside the next transaction; resolves after COMMIT, rejects with what `run` threw. */
  submit(run: () => void): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ run, resolve, reject });
      this.schedule();
    });
  }

  /** Hooks run inside every transaction after the work units (e.g. cursor updates). */
  onBeforeCommit(hook: () => void): void {
    this.beforeCommit.push(hook);
  }

  /** Hooks run after every commit (e.g. waking consumers). */
  onAfterCommit(hook: (commit: Committed) => void): void {
    this.afterCommit.push(hook);
  }

  /** Ensures a transaction runs soon even with no work queued, so hooks can persist state. */
  schedule(): void {
    if (this.scheduled || this.failure) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    const failed = new Map<Work, unknown>();
    let isolated = false;
    try {
      try {
        // Common case: every unit succeeds, so no savepoints (they cost a fifth of the CPU).
        this.commitAll(batch, false, failed);
      } catch {
        // Some unit threw and rolled the whole transaction back: redo it with one savepoint per
        // unit, so only the units that fail are left out. Units are written to be re-runnable.
        failed.clear();
        isolated = true;
        this.commitAll(batch, true, failed);
      }
    } catch (error) {
      // The transaction itself failed (disk full, I/O error): nothing in it is durable.
      this.failure = error;
      for (const work of batch) work.reject(error);
      for (const work of this.queue) work.reject(error);
      this.queue = [];
      this.onFatal(error);
      return;
    }
    for (const work of batch) {
      if (failed.has(work)) work.reject(failed.get(work));
      else work.resolve();
    }
    for (const hook of this.afterCommit) hook({ isolated });
  }

  private commitAll(batch: Work[], isolate: boolean, failed: Map<Work, unknown>): void {
    this.transaction(() => {
      for (const work of batch) {
        if (!isolate) work.run();
        else {
          try {
            this.savepoint(work.run);
          } catch (error) {
            failed.set(work, error);
          }
        }
      }
      for (const hook of this.beforeCommit) hook();
    });
  }

  /** Resolves once everything queued so far has committed. */
  async drain(): Promise<void> {
    while (this.queue.length > 0 || this.scheduled) await new Promise((resolve) => setImmediate(resolve));
  }
}
