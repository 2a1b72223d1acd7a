/**
 * `table` on SQLite. Handlers write into a session that buffers their writes; the session is
 * applied inside the transaction that also records completion and appends the emitted events,
 * so an attempt's effects are all-or-nothing.
 */
import { ConditionFailedError, type Item, type KeyValue, type QueryOptions } from '../../core/ports.js';
import { isExpired, itemKey, stillExpected, TableSession as BufferedTables, type CommittedTables } from '../../core/session.js';
import type { Statement } from 'better-sqlite3';
import type { Db, GroupCommit } from './db.js';

const MAX_SORT = '\u{10FFFF}';
/** Most JSON kept by RecentItems, in characters. */
const RECENT_ITEMS_CHARS = 8 * 1024 * 1024;

interface StoredItem {
  /** The item's JSON; null once deleted. */
  json: string | null;
  expires: number | null;
}

/**
 * Committed items recently read, as stored: a handler that reads, changes and writes back the
 * same items with every event (a sensor's state, a window) reads them from here, not SQLite.
 * Filled by reads (an item never read is not kept: a stream of new keys would crowd out the hot
 * ones), kept current by committed writes, least recently used dropped first.
 */
class RecentItems {
  private readonly items = new Map<string, StoredItem>();
  private chars = 0;

  get(key: string): StoredItem | undefined {
    const item = this.items.get(key);
    if (item) {
      this.items.delete(key);
      this.items.set(key, item);
    }
    return item;
  }

  has(key: string): boolean {
    return this.items.has(key);
  }

  /** The item kept under `key`, without counting it as used. */
  peek(key: string): StoredItem | undefined {
    return this.items.get(key);
  }

  set(key: string, item: StoredItem): void {
    this.remove(key);
    this.items.set(key, item);
    this.chars += item.json?.length ?? 0;
    for (const [oldest, kept] of this.items) {
      if (this.chars <= RECENT_ITEMS_CHARS) break;
      this.items.delete(oldest);
      this.chars -= kept.json?.length ?? 0;
    }
  }

  clear(): void {
    this.items.clear();
    this.chars = 0;
  }

  private remove(key: string): void {
    const item = this.items.get(key);
    if (!item) return;
    this.items.delete(key);
    this.chars -= item.json?.length ?? 0;
  }
}

export class SqliteTables {
  private readonly queries = new Map<string, Statement>();
  private readonly getStmt;
  private readonly putStmt;
  private readonly updateStmt;
  private readonly deleteStmt;
  private readonly sweepStmt;
  /** With a group commit to follow: recent items, and the writes of the transaction under way. */
  private readonly recent: RecentItems | undefined;
  private written = new Map<string, StoredItem>();

  /**
   * @param commit the group commit every write goes through: given, reads outside a transaction
   * are served from recently read items, kept current after each commit
   */
  constructor(private readonly db: Db, commit?: GroupCommit) {
    if (commit) {
      const recent = (this.recent = new RecentItems());
      commit.onAfterCommit(({ isolated }) => {
        // A unit rolled back to its savepoint took its writes with it, not their record here.
        if (isolated) recent.clear();
        else for (const [key, item] of this.written) if (recent.has(key)) recent.set(key, item);
        this.written = new Map();
      });
    }
    this.getStmt = db.prepare('SELECT item, expires FROM items WHERE tbl = ? AND pk = ? AND sk = ?');
    // An upsert changes the row in place; REPLACE would delete it and insert a new one.
    this.putStmt = db.prepare('INSERT INTO items (tbl, pk, sk, item, expires) VALUES (?, ?, ?, ?, ?) ON CONFLICT (tbl, pk, sk) DO UPDATE SET item = excluded.item, expires = excluded.expires');
    // The upsert rewrites an item's entry in the expiry index even when the expiry is the same;
    // this leaves the index alone (for such updates the upsert took twice the WAL pages).
    this.updateStmt = db.prepare('UPDATE items SET item = ? WHERE tbl = ? AND pk = ? AND sk = ? AND expires IS ?');
    this.deleteStmt = db.prepare('DELETE FROM items WHERE tbl = ? AND pk = ? AND sk = ?');
    this.sweepStmt = db.prepare('DELETE FROM items WHERE id IN (SELECT id FROM items WHERE expires IS NOT NULL AND expires <= ? LIMIT ?)');
  }

  get(table: string, pk: KeyValue, sk: KeyValue): Item | undefined {
    // Inside a transaction, reads must see its earlier units' writes: those are in SQLite only.
    const cacheable = this.recent !== undefined && !this.db.inTransaction;
    const key = cacheable ? itemKey(table, pk, sk) : '';
    let stored = cacheable ? this.recent!.get(key) : undefined;
    if (!stored) {
      const row = this.getStmt.get(table, pk, sk) as { item: string; expires: number | null } | undefined;
      if (!row) return undefined;
      stored = { json: row.item, expires: row.expires };
      if (cacheable) this.recent!.set(key, stored);
    }
    if (stored.json === null || isExpired(stored.expires)) return undefined;
    return JSON.parse(stored.json) as Item;
  }

  query(table: string, pk: KeyValue, options: QueryOptions = {}, limit = options.limit): Item[] {
    const where = ['tbl = ?', 'pk = ?', '(expires IS NULL OR expires > ?)'];
    const params: unknown[] = [table, pk, Math.floor(Date.now() / 1000)];
    const c = options.sortKey ?? {};
    const compare: Array<[keyof typeof c, string]> = [['eq', '='], ['lt', '<'], ['lte', '<='], ['gt', '>'], ['gte', '>=']];
    for (const [name, op] of compare) {
      if (c[name] !== undefined) {
        where.push(`sk ${op} ?`);
        params.push(c[name]);
      }
    }
    if (c.between) {
      where.push('sk BETWEEN ? AND ?');
      params.push(...c.between);
    }
    if (c.beginsWith !== undefined) {
      where.push('sk >= ? AND sk < ?');
      params.push(c.beginsWith, c.beginsWith + MAX_SORT);
    }
    const sql = `SELECT item FROM items WHERE ${where.join(' AND ')} ORDER BY sk ${options.reverse ? 'DESC' : 'ASC'}${limit ? ` LIMIT ${Math.floor(limit)}` : ''}`;
    return (this.statement(sql).all(...params) as Array<{ item: string }>).map((row) => JSON.parse(row.item) as Item);
  }

  /** Queries come in a few shapes only: each is prepared once. */
  private statement(sql: string): Statement {
    let statement = this.queries.get(sql);
    if (!statement) this.queries.set(sql, (statement = this.db.prepare(sql)));
    return statement;
  }

  /** Inside a commit transaction: puts an item (its JSON) or deletes it (undefined). */
  write(table: string, pk: KeyValue, sk: KeyValue, json: string | undefined, expires: number | null): void {
    const key = this.recent ? itemKey(table, pk, sk) : '';
    if (json === undefined) this.deleteStmt.run(table, pk, sk);
    else if (!this.updatedInPlace(key, table, pk, sk, json, expires)) this.putStmt.run(table, pk, sk, json, expires);
    if (this.recent) this.written.set(key, { json: json ?? null, expires });
  }

  /**
   * Updates the item's JSON alone if it is stored with this expiry, as it was when last committed
   * or written earlier in this transaction (the UPDATE's count says whether it still is).
   */
  private updatedInPlace(key: string, table: string, pk: KeyValue, sk: KeyValue, json: string, expires: number | null): boolean {
    const stored = this.written.get(key) ?? this.recent?.peek(key);
    if (stored?.json == null || stored.expires !== expires) return false;
    return this.updateStmt.run(json, table, pk, sk, expires).changes === 1;
  }

  /** Deletes up to `limit` expired items; returns how many. */
  sweep(limit: number): number {
    return this.sweepStmt.run(Math.floor(Date.now() / 1000), limit).changes;
  }
}

/** One attempt's view of the tables (core/session.ts), applied inside the SQLite commit transaction. */
export class TableSession extends BufferedTables {
  /** @param base what reads see under this attempt's writes (default: the committed tables). */
  constructor(private readonly tables: SqliteTables, base: CommittedTables = tables) {
    super(base);
  }

  /** Inside the commit transaction: re-checks conditional writes against committed state, then writes. */
  apply(): void {
    if (this.size === 0) return;
    for (const w of this.writes()) {
      // Only conditional writes carry an expectation; the others need no read.
      if (w.expected !== undefined && !stillExpected(w, this.tables.get(w.table, w.pk, w.sk))) {
        throw new ConditionFailedError(`table "${w.table}": item changed by a concurrent invocation`);
      }
    }
    for (const w of this.writes()) this.tables.write(w.table, w.pk, w.sk, w.json, w.expires);
  }
}
