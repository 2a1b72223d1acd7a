/**
 * `table` on PostgreSQL, for any target: one `petrel_items` table holds every app's tables, keyed
 * (app, tbl, pk, sk). An attempt's buffered writes (core/session.ts) commit in ONE transaction
 * together with its completion (idempotency) record and the outbox of events it emitted, so a
 * crash anywhere leaves either all of them or none.
 *
 * Keys are stored as text that sorts, under COLLATE "C", exactly as core's compareKeys orders
 * them: numbers (numerically) before strings (see encodeKey).
 */
import pg from 'pg';
import type { TableSpec } from '../../core/app.js';
import { IDEMPOTENCY_TTL_MS } from '../../core/delivery.js';
import type { CloudEvent } from '../../core/event.js';
import { ConditionFailedError, type Item, type KeyValue, type QueryOptions, type Table } from '../../core/ports.js';
import { redactUrl } from '../../core/redact.js';
import { TableSession, type BufferedWrite, type CommittedTables } from '../../core/session.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS petrel_items (
  app text NOT NULL, tbl text NOT NULL, pk text COLLATE "C" NOT NULL, sk text COLLATE "C" NOT NULL,
  item jsonb NOT NULL, expires double precision, PRIMARY KEY (app, tbl, pk, sk));
CREATE INDEX IF NOT EXISTS petrel_items_expires ON petrel_items (expires) WHERE expires IS NOT NULL;
CREATE TABLE IF NOT EXISTS petrel_completions (
  app text NOT NULL, fn text NOT NULL, key text NOT NULL, expires bigint NOT NULL, outbox jsonb,
  PRIMARY KEY (app, fn, key));
CREATE INDEX IF NOT EXISTS petrel_completions_expires ON petrel_completions (expires);
`;

/** Serializes schema creation across processes (CREATE ... IF NOT EXISTS races on the catalog). */
const SCHEMA_LOCK = 0x7065_7472;

const float = new DataView(new ArrayBuffer(8));

/**
 * A key as text whose byte order is compareKeys' order: `n` + the IEEE 754 bits made
 * order-preserving (sign flipped; all bits flipped for negatives), or `s` + the string.
 */
export function encodeKey(value: KeyValue): string {
  if (typeof value === 'string') return `s${value}`;
  float.setFloat64(0, value === 0 ? 0 : value);
  let hi = float.getUint32(0);
  let lo = float.getUint32(4);
  if (hi & 0x8000_0000) {
    hi = ~hi >>> 0;
    lo = ~lo >>> 0;
  } else hi = (hi | 0x8000_0000) >>> 0;
  return `n${hi.toString(16).padStart(8, '0')}${lo.toString(16).padStart(8, '0')}`;
}

/** The completion a function recorded for an event: its outbox is null once published. */
export interface Completion {
  outbox: CloudEvent[] | null;
}

export interface CompletionRecord {
  fn: string;
  key: string;
  /** Emitted events, published after the commit; kept until `clearOutboxes`. */
  outbox: CloudEvent[];
}

export type CommitResult = { committed: true } | { committed: false; duplicate: Completion };

export interface PgStoreOptions {
  /** Connections in the pool; default 10. */
  max?: number;
}

interface Unit {
  app: string;
  writes: BufferedWrite[];
  completion?: CompletionRecord;
  resolve: (result: CommitResult) => void;
  reject: (error: unknown) => void;
}

/** Commits in one group-commit transaction at most; the rest wait for the next. */
const MAX_UNITS = 500;
/** Group transactions in flight at once: one sends its statements while another waits for its WAL flush. */
const MAX_FLUSHES = 2;

export class PgStore {
  private queue: Unit[] = [];
  private flushing = 0;
  private scheduled = false;

  private constructor(readonly pool: pg.Pool) {}

  /** Connects and creates the schema; rejects with a one-line message if PostgreSQL is unreachable. */
  static async connect(url: string, options: PgStoreOptions = {}): Promise<PgStore> {
    const pool = new pg.Pool({ connectionString: url, max: options.max ?? 10, connectionTimeoutMillis: 5000 });
    // An idle client losing its server must not crash the process; the next query reports it.
    pool.on('error', () => undefined);
    const store = new PgStore(pool);
    try {
      // DDL locks the tables it touches (CREATE INDEX IF NOT EXISTS included), which can deadlock
      // with running commits: skip it when the schema is already there.
      const { rows } = await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_indexes WHERE indexname IN ('petrel_items_expires', 'petrel_completions_expires')");
      if (rows[0].n < 2) {
        await store.transaction(async (client) => {
          await client.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK]);
          await client.query(SCHEMA);
        });
      }
    } catch (error) {
      await pool.end();
      throw new Error(`PostgreSQL at ${redactUrl(url)} is not usable: ${(error as Error).message}`);
    }
    return store;
  }

  /** Committed, unexpired items of one app, for sessions. */
  reader(app: string): CommittedTables {
    return {
      get: async (tbl, pk, sk) => {
        const { rows } = await this.pool.query<{ item: Item }>(
          'SELECT item FROM petrel_items WHERE app = $1 AND tbl = $2 AND pk = $3 AND sk = $4 AND (expires IS NULL OR expires > $5)',
          [app, tbl, encodeKey(pk), encodeKey(sk), nowSeconds()],
        );
        return rows[0]?.item;
      },
      query: async (tbl, pk, options) => this.query(app, tbl, pk, options),
    };
  }

  /** A session buffering one attempt's writes over this app's committed items. */
  session(app: string): TableSession {
    return new TableSession(this.reader(app));
  }

  /** A table whose every write commits at once (each write is a one-write session). */
  table(app: string, name: string, spec: TableSpec): Table {
    const reader = this.reader(app);
    const read = new TableSession(reader).table(name, spec);
    const once = async (write: (table: Table) => Promise<void>) => {
      const session = new TableSession(reader);
      await write(session.table(name, spec));
      await this.commit(app, session);
    };
    return {
      get: (key) => read.get(key),
      query: (pk, options) => read.query(pk, options),
      put: (item, options) => once((t) => t.put(item, options)),
      delete: (key, options) => once((t) => t.delete(key, options)),
    };
  }

  /**
   * Applies a session's writes, with the completion record if given, atomically. Conditional
   * writes are compare-and-set statements; a lost race throws ConditionFailedError. An existing
   * completion for the same (fn, key) means a duplicate: nothing is written.
   *
   * Commits queued within a tick share one transaction, each in its own savepoint sent as one
   * multi-statement round trip: one WAL flush per batch instead of one per event.
   */
  commit(app: string, session: TableSession | undefined, completion?: CompletionRecord): Promise<CommitResult> {
    const writes = session ? [...session.writes()] : [];
    if (writes.length === 0 && !completion) return Promise.resolve({ committed: true });
    return new Promise((resolve, reject) => {
      this.queue.push({ app, writes, completion, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.flushing >= MAX_FLUSHES || this.queue.length === 0 || this.scheduled) return;
    this.scheduled = true;
    this.flushing++;
    setImmediate(() => {
      this.scheduled = false;
      void this.flush().finally(() => {
        this.flushing--;
        this.schedule();
      });
      this.schedule();
    });
  }

  private async flush(): Promise<void> {
    const batch = this.queue.splice(0, MAX_UNITS);
    const outcomes: Array<{ result: CommitResult } | { error: unknown }> = [];
    let client: pg.PoolClient | undefined;
    try {
      client = await this.pool.connect();
      await client.query('BEGIN');
      let release = '';
      for (const unit of batch) {
        const outcome = await applyUnit(client, unit, release);
        release = 'RELEASE SAVEPOINT unit; ';
        outcomes.push(outcome);
      }
      await client.query('COMMIT');
      client.release();
    } catch (error) {
      // The transaction itself failed (connection lost, server gone): nothing in it is durable.
      await client?.query('ROLLBACK').catch(() => undefined);
      client?.release(true);
      for (const unit of batch) unit.reject(error);
      return;
    }
    batch.forEach((unit, i) => {
      const outcome = outcomes[i];
      if ('error' in outcome) unit.reject(outcome.error);
      else unit.resolve(outcome.result);
    });
  }

  /** The completion a function recorded for an event key, if any. */
  async completion(app: string, fn: string, key: string): Promise<Completion | undefined> {
    const { rows } = await this.pool.query<{ outbox: CloudEvent[] | null }>(
      'SELECT outbox FROM petrel_completions WHERE app = $1 AND fn = $2 AND key = $3 AND expires > $4',
      [app, fn, key, Date.now()],
    );
    return rows[0] && { outbox: rows[0].outbox };
  }

  /** Marks outboxes as published (after the events' PubAcks), in one statement. */
  async clearOutboxes(app: string, entries: Array<{ fn: string; key: string }>): Promise<void> {
    if (entries.length === 0) return;
    await this.pool.query(
      'UPDATE petrel_completions c SET outbox = NULL FROM unnest($2::text[], $3::text[]) AS d(fn, key) WHERE c.app = $1 AND c.fn = d.fn AND c.key = d.key',
      [app, entries.map((e) => e.fn), entries.map((e) => e.key)],
    );
  }

  /** Deletes expired items and completion records; returns how many. */
  async sweep(): Promise<number> {
    const items = await this.pool.query('DELETE FROM petrel_items WHERE expires IS NOT NULL AND expires <= $1', [nowSeconds()]);
    const completions = await this.pool.query('DELETE FROM petrel_completions WHERE expires <= $1', [Date.now()]);
    return (items.rowCount ?? 0) + (completions.rowCount ?? 0);
  }

  /** Removes every item and completion of an app (tests, `petrel` tear-down). */
  async dropApp(app: string): Promise<void> {
    await this.pool.query('DELETE FROM petrel_items WHERE app = $1', [app]);
    await this.pool.query('DELETE FROM petrel_completions WHERE app = $1', [app]);
  }

  close(): Promise<void> {
    return this.pool.end();
  }

  private async query(app: string, tbl: string, pk: KeyValue, options: QueryOptions): Promise<Item[]> {
    const where = ['app = $1', 'tbl = $2', 'pk = $3', '(expires IS NULL OR expires > $4)'];
    const params: unknown[] = [app, tbl, encodeKey(pk), nowSeconds()];
    const bind = (value: KeyValue) => `$${params.push(encodeKey(value))}`;
    const c = options.sortKey ?? {};
    const compare: Array<[keyof typeof c, string]> = [['eq', '='], ['lt', '<'], ['lte', '<='], ['gt', '>'], ['gte', '>=']];
    for (const [name, op] of compare) {
      const value = c[name];
      if (value !== undefined) where.push(`sk ${op} ${bind(value as KeyValue)}`);
    }
    if (c.between) where.push(`sk BETWEEN ${bind(c.between[0])} AND ${bind(c.between[1])}`);
    if (c.beginsWith !== undefined) {
      const prefix = bind(c.beginsWith);
      where.push(`sk >= ${prefix} AND starts_with(sk, ${prefix})`);
    }
    const limit = options.limit ? ` LIMIT ${Math.floor(options.limit)}` : '';
    const sql = `SELECT item FROM petrel_items WHERE ${where.join(' AND ')} ORDER BY sk ${options.reverse ? 'DESC' : 'ASC'}${limit}`;
    return (await this.pool.query<{ item: Item }>(sql, params)).rows.map((row) => row.item);
  }

  private async transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }
}

const LIVE = '(expires IS NULL OR expires > %NOW%)';

/**
 * One commit as one multi-statement round trip inside the group transaction:
 *   SAVEPOINT; completion insert; one compare-and-set per conditional write; upserts; deletes.
 * Every statement whose row count must be 1 is checked afterwards; if one is not, or a statement
 * fails, the unit rolls back to its savepoint alone.
 */
async function applyUnit(client: pg.PoolClient, unit: Unit, releasePrevious: string): Promise<{ result: CommitResult } | { error: unknown }> {
  const lit = (value: unknown) => client.escapeLiteral(typeof value === 'string' ? value : JSON.stringify(value));
  const now = String(nowSeconds());
  const live = LIVE.replace('%NOW%', now);
  const app = lit(unit.app);
  const key = (w: BufferedWrite) => `app = ${app} AND tbl = ${lit(w.table)} AND pk = ${lit(encodeKey(w.pk))} AND sk = ${lit(encodeKey(w.sk))}`;
  const values = (w: BufferedWrite) => `(${app}, ${lit(w.table)}, ${lit(encodeKey(w.pk))}, ${lit(encodeKey(w.sk))}, ${lit(w.json)}::jsonb, ${w.expires ?? 'NULL'})`;
  const statements: string[] = [];
  /** Indexes of statements that must change exactly one row (the first is the completion insert). */
  const checked: number[] = [];
  if (unit.completion) {
    const { fn, key: eventKey, outbox } = unit.completion;
    checked.push(statements.length);
    statements.push(
      `INSERT INTO petrel_completions (app, fn, key, expires, outbox) VALUES (${app}, ${lit(fn)}, ${lit(eventKey)}, ${Date.now() + IDEMPOTENCY_TTL_MS}, ${outbox.length ? `${lit(outbox)}::jsonb` : 'NULL'}) ON CONFLICT DO NOTHING`,
    );
  }
  const upserts: BufferedWrite[] = [];
  const deletes: BufferedWrite[] = [];
  for (const w of unit.writes) {
    if (w.expected === undefined) {
      (w.json === undefined ? deletes : upserts).push(w);
      continue;
    }
    checked.push(statements.length);
    if (w.expected === 'null') {
      statements.push(
        w.json === undefined
          ? `SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM petrel_items WHERE ${key(w)} AND ${live})`
          : `INSERT INTO petrel_items (app, tbl, pk, sk, item, expires) VALUES ${values(w)} ON CONFLICT (app, tbl, pk, sk) DO UPDATE SET item = excluded.item, expires = excluded.expires WHERE NOT (petrel_items.expires IS NULL OR petrel_items.expires > ${now})`,
      );
    } else {
      statements.push(
        w.json === undefined
          ? `DELETE FROM petrel_items WHERE ${key(w)} AND ${live} AND item = ${lit(w.expected)}::jsonb`
          : `UPDATE petrel_items SET item = ${lit(w.json)}::jsonb, expires = ${w.expires ?? 'NULL'} WHERE ${key(w)} AND ${live} AND item = ${lit(w.expected)}::jsonb`,
      );
    }
  }
  if (upserts.length) {
    statements.push(`INSERT INTO petrel_items (app, tbl, pk, sk, item, expires) VALUES ${upserts.map(values).join(', ')} ON CONFLICT (app, tbl, pk, sk) DO UPDATE SET item = excluded.item, expires = excluded.expires`);
  }
  if (deletes.length) statements.push(`DELETE FROM petrel_items WHERE ${deletes.map((w) => `(${key(w)})`).join(' OR ')}`);
  const rollback = () => client.query('ROLLBACK TO SAVEPOINT unit');
  let results: pg.QueryResult[];
  try {
    const sent = await client.query(`${releasePrevious}SAVEPOINT unit; ${statements.join('; ')}`);
    results = (Array.isArray(sent) ? sent : [sent]).slice(releasePrevious ? 2 : 1);
  } catch (error) {
    await rollback();
    // Racing commits locking rows in different orders: the loser re-runs like any lost race.
    return { error: (error as { code?: string }).code === '40P01' ? new ConditionFailedError('a concurrent invocation locked the same items') : error };
  }
  const failed = checked.find((i) => results[i].rowCount !== 1);
  if (failed === undefined) return { result: { committed: true } };
  await rollback();
  if (unit.completion && failed === 0) {
    // Already completed (a duplicate finished first): this attempt's writes are dropped.
    const { rows } = await client.query<{ outbox: CloudEvent[] | null }>(
      `SELECT outbox FROM petrel_completions WHERE app = ${app} AND fn = ${lit(unit.completion.fn)} AND key = ${lit(unit.completion.key)}`,
    );
    return { result: { committed: false, duplicate: { outbox: rows[0]?.outbox ?? null } } };
  }
  const w = unit.writes.filter((x) => x.expected !== undefined)[checked.indexOf(failed) - (unit.completion ? 1 : 0)];
  return { error: new ConditionFailedError(`table "${w.table}": item changed by a concurrent invocation`) };
}

/** TTL attributes are epoch seconds, possibly fractional, as in core/session.ts. */
function nowSeconds(): number {
  return Date.now() / 1000;
}

