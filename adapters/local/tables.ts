/**
 * `table` on SQLite. Handlers write into a session that buffers their writes; the session is
 * applied inside the transaction that also records completion and appends the emitted events,
 * so an attempt's effects are all-or-nothing.
 */
import { ConditionFailedError, type Item, type KeyValue, type QueryOptions } from '../../core/ports.js';
import { isExpired, stillExpected, TableSession as BufferedTables, type CommittedTables } from '../../core/session.js';
import type { Statement } from 'better-sqlite3';
import type { Db } from './db.js';

const MAX_SORT = '\u{10FFFF}';

export class SqliteTables {
  private readonly queries = new Map<string, Statement>();
  private readonly getStmt;
  private readonly putStmt;
  private readonly deleteStmt;
  private readonly sweepStmt;

  constructor(private readonly db: Db) {
    this.getStmt = db.prepare('SELECT item, expires FROM items WHERE tbl = ? AND pk = ? AND sk = ?');
    // An upsert changes the row in place; REPLACE would delete it and insert a new one.
    this.putStmt = db.prepare('INSERT INTO items (tbl, pk, sk, item, expires) VALUES (?, ?, ?, ?, ?) ON CONFLICT (tbl, pk, sk) DO UPDATE SET item = excluded.item, expires = excluded.expires');
    this.deleteStmt = db.prepare('DELETE FROM items WHERE tbl = ? AND pk = ? AND sk = ?');
    this.sweepStmt = db.prepare('DELETE FROM items WHERE id IN (SELECT id FROM items WHERE expires IS NOT NULL AND expires <= ? LIMIT ?)');
  }

  get(table: string, pk: KeyValue, sk: KeyValue): Item | undefined {
    const row = this.getStmt.get(table, pk, sk) as { item: string; expires: number | null } | undefined;
    if (!row || isExpired(row.expires)) return undefined;
    return JSON.parse(row.item) as Item;
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

  write(table: string, pk: KeyValue, sk: KeyValue, item: Item | undefined, expires: number | null): void {
    if (item === undefined) this.deleteStmt.run(table, pk, sk);
    else this.putStmt.run(table, pk, sk, JSON.stringify(item), expires);
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
    for (const w of this.writes()) this.tables.write(w.table, w.pk, w.sk, w.item, w.expires);
  }
}
