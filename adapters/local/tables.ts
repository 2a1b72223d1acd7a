/**
 * `table` on SQLite. Handlers write into a session that buffers their writes; the session is
 * applied inside the transaction that also records completion and appends the emitted events,
 * so an attempt's effects are all-or-nothing.
 */
import type { TableSpec } from '../../core/app.js';
import { ConditionFailedError, conditionHolds, keyOf, type Item, type KeyValue, type PutOptions, type QueryOptions, type Table } from '../../core/ports.js';
import type { Db } from './db.js';

const MAX_SORT = '\u{10FFFF}';

export class SqliteTables {
  private readonly getStmt;
  private readonly putStmt;
  private readonly deleteStmt;
  private readonly sweepStmt;

  constructor(private readonly db: Db) {
    this.getStmt = db.prepare('SELECT item, expires FROM items WHERE tbl = ? AND pk = ? AND sk = ?');
    this.putStmt = db.prepare('INSERT OR REPLACE INTO items (tbl, pk, sk, item, expires) VALUES (?, ?, ?, ?, ?)');
    this.deleteStmt = db.prepare('DELETE FROM items WHERE tbl = ? AND pk = ? AND sk = ?');
    this.sweepStmt = db.prepare('DELETE FROM items WHERE expires IS NOT NULL AND expires <= ?');
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
    return (this.db.prepare(sql).all(...params) as Array<{ item: string }>).map((row) => JSON.parse(row.item) as Item);
  }

  write(table: string, pk: KeyValue, sk: KeyValue, item: Item | undefined, expires: number | null): void {
    if (item === undefined) this.deleteStmt.run(table, pk, sk);
    else this.putStmt.run(table, pk, sk, JSON.stringify(item), expires);
  }

  /** Deletes expired items; returns how many. */
  sweep(): number {
    return this.sweepStmt.run(Math.floor(Date.now() / 1000)).changes;
  }
}

/** A buffered write's item as a reader sees it: absent once its TTL has passed. */
function live(write: BufferedWrite): Item | undefined {
  return isExpired(write.expires) ? undefined : write.item;
}

function isExpired(expires: number | null): boolean {
  return expires !== null && expires <= Date.now() / 1000;
}

interface BufferedWrite {
  table: string;
  pk: KeyValue;
  sk: KeyValue;
  item: Item | undefined;
  expires: number | null;
  /** What the committed item was when the handler made a conditional write (optimistic check). */
  expected?: string;
}

/** One attempt's view of the tables: reads see its own writes; writes wait for `apply`. */
export class TableSession {
  private readonly writes = new Map<string, BufferedWrite>();

  constructor(private readonly tables: SqliteTables) {}

  table(name: string, spec: TableSpec): Table {
    const key = (item: Item) => keyOf(item, spec.partitionKey, spec.sortKey, name);
    const current = (pk: KeyValue, sk: KeyValue): Item | undefined => {
      const buffered = this.writes.get(writeKey(name, pk, sk));
      return buffered ? live(buffered) : this.tables.get(name, pk, sk);
    };
    const write = (pk: KeyValue, sk: KeyValue, item: Item | undefined, options: PutOptions | undefined) => {
      const id = writeKey(name, pk, sk);
      const existing = current(pk, sk);
      if (!conditionHolds(existing, options)) {
        throw new ConditionFailedError(`table "${name}": condition failed for key ${JSON.stringify(sk === '' ? [pk] : [pk, sk])}`);
      }
      const previous = this.writes.get(id);
      const conditional = options?.ifMatch !== undefined || options?.ifNotExists === true;
      const expected = previous ? previous.expected : conditional ? JSON.stringify(existing ?? null) : undefined;
      const ttl = spec.ttlAttribute && item ? item[spec.ttlAttribute] : undefined;
      this.writes.set(id, { table: name, pk, sk, item, expires: typeof ttl === 'number' ? ttl : null, expected });
    };
    return {
      get: async (k) => {
        const [pk, sk] = key(k);
        return current(pk, sk);
      },
      query: async (pk, options = {}) => this.query(name, spec, pk, options),
      put: async (item, options) => {
        const [pk, sk] = key(item);
        write(pk, sk, structuredClone(item), options);
      },
      delete: async (k, options) => {
        const [pk, sk] = key(k);
        write(pk, sk, undefined, options);
      },
    };
  }

  private query(name: string, spec: TableSpec, pk: KeyValue, options: QueryOptions): Item[] {
    const mine = [...this.writes.values()].filter((w) => w.table === name && w.pk === pk);
    if (mine.length === 0) return this.tables.query(name, pk, options);
    // Overlay this attempt's writes on the committed rows, then order and limit.
    const rows = new Map<KeyValue, Item | undefined>();
    for (const item of this.tables.query(name, pk, { ...options, limit: undefined })) rows.set(keyOf(item, spec.partitionKey, spec.sortKey, name)[1], item);
    for (const w of mine) rows.set(w.sk, live(w));
    const inRange = (sk: KeyValue) => sortKeyMatches(sk, options);
    const sorted = [...rows.entries()].filter(([sk, item]) => item !== undefined && inRange(sk)).sort(([a], [b]) => compareKeys(a, b));
    if (options.reverse) sorted.reverse();
    const items = sorted.map(([, item]) => item as Item);
    return options.limit ? items.slice(0, options.limit) : items;
  }

  /** Inside the commit transaction: re-checks conditional writes against committed state, then writes. */
  apply(): void {
    for (const w of this.writes.values()) {
      if (w.expected !== undefined && JSON.stringify(this.tables.get(w.table, w.pk, w.sk) ?? null) !== w.expected) {
        throw new ConditionFailedError(`table "${w.table}": item changed by a concurrent invocation`);
      }
    }
    for (const w of this.writes.values()) this.tables.write(w.table, w.pk, w.sk, w.item, w.expires);
  }
}

function writeKey(table: string, pk: KeyValue, sk: KeyValue): string {
  return JSON.stringify([table, pk, sk]);
}

function compareKeys(a: KeyValue, b: KeyValue): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'number') return -1; // SQLite orders numbers before text
  if (typeof b === 'number') return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

function sortKeyMatches(sk: KeyValue, options: QueryOptions): boolean {
  const c = options.sortKey;
  if (!c) return true;
  if (c.eq !== undefined && compareKeys(sk, c.eq) !== 0) return false;
  if (c.lt !== undefined && compareKeys(sk, c.lt) >= 0) return false;
  if (c.lte !== undefined && compareKeys(sk, c.lte) > 0) return false;
  if (c.gt !== undefined && compareKeys(sk, c.gt) <= 0) return false;
  if (c.gte !== undefined && compareKeys(sk, c.gte) < 0) return false;
  if (c.between && (compareKeys(sk, c.between[0]) < 0 || compareKeys(sk, c.between[1]) > 0)) return false;
  if (c.beginsWith !== undefined && !(typeof sk === 'string' && sk.startsWith(c.beginsWith))) return false;
  return true;
}
