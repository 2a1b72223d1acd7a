/**
 * What an adapter provides. Handlers see Table, Bucket and Logger; the runtime around
 * core/invoke sees Metrics. Nothing here knows which platform implements it.
 */

export type Item = Record<string, unknown>;
export type KeyValue = string | number;

/** Sort-key condition for a query (one of them). */
export interface SortKeyCondition {
  eq?: KeyValue;
  lt?: KeyValue;
  lte?: KeyValue;
  gt?: KeyValue;
  gte?: KeyValue;
  between?: [KeyValue, KeyValue];
  beginsWith?: string;
}

export interface QueryOptions {
  sortKey?: SortKeyCondition;
  /** Newest (largest sort key) first. */
  reverse?: boolean;
  limit?: number;
}

export interface PutOptions {
  /** Fail with ConditionFailedError if an item with this key exists. */
  ifNotExists?: boolean;
  /** Fail with ConditionFailedError unless the stored item has these attribute values. */
  ifMatch?: Item;
}

export interface ReadTable {
  /** The item with this key (partition key, plus sort key if the table has one), or undefined. */
  get(key: Item): Promise<Item | undefined>;
  /** Items of one partition, ordered by sort key. */
  query(partitionKey: KeyValue, options?: QueryOptions): Promise<Item[]>;
}

export interface Table extends ReadTable {
  put(item: Item, options?: PutOptions): Promise<void>;
  delete(key: Item, options?: Pick<PutOptions, 'ifMatch'>): Promise<void>;
}

export interface ObjectInfo {
  key: string;
  size: number;
  contentType?: string;
}

export interface ReadBucket {
  get(key: string): Promise<Uint8Array | undefined>;
  list(prefix?: string): Promise<ObjectInfo[]>;
}

export interface Bucket extends ReadBucket {
  put(key: string, body: Uint8Array | string, options?: { contentType?: string }): Promise<void>;
  delete(key: string): Promise<void>;
}

/** Structured logger (pino's shape). */
export interface Logger {
  debug(obj: object | string, msg?: string): void;
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

export type Outcome = 'ok' | 'retry' | 'dead' | 'duplicate';

export interface Metrics {
  invoked(fn: string, outcome: Outcome, durationMs: number): void;
  /** A time from an event's ingest to an effect, e.g. an alert. */
  observeLatency?(name: string, ms: number): void;
}

/** A conditional write whose condition did not hold. */
export class ConditionFailedError extends Error {
  override name = 'ConditionFailedError';
}

/** A handler used a resource in a way its `uses` does not grant. */
export class AccessError extends Error {
  override name = 'AccessError';
}

/** Resolves a key object to [partition, sort] values for a table, with clear errors. */
export function keyOf(item: Item, partitionKey: string, sortKey: string | undefined, table: string): [KeyValue, KeyValue] {
  const pk = item[partitionKey];
  if (typeof pk !== 'string' && typeof pk !== 'number') {
    throw new TypeError(`table "${table}": partition key "${partitionKey}" must be a string or number, got ${JSON.stringify(pk)}`);
  }
  if (!sortKey) return [pk, ''];
  const sk = item[sortKey];
  if (typeof sk !== 'string' && typeof sk !== 'number') {
    throw new TypeError(`table "${table}": sort key "${sortKey}" must be a string or number, got ${JSON.stringify(sk)}`);
  }
  return [pk, sk];
}

/** Does a stored item satisfy a put/delete condition? */
export function conditionHolds(current: Item | undefined, options: PutOptions | undefined): boolean {
  if (!options) return true;
  if (options.ifNotExists && current !== undefined) return false;
  if (options.ifMatch) {
    if (current === undefined) return false;
    for (const [name, value] of Object.entries(options.ifMatch)) {
      if (JSON.stringify(current[name]) !== JSON.stringify(value)) return false;
    }
  }
  return true;
}
