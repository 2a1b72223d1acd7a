/**
 * DynamoDB: the app's tables, and the delivery records (completion + outbox, attempt history,
 * dead letters) in one more table.
 *
 * An attempt's writes are buffered (core/session.ts) and commit with its completion record:
 * - with transactions (DynamoDB): one TransactWriteItems holding every write, each conditional
 *   write's ConditionExpression, and the completion record with the outbox of emitted events;
 * - without (dynalite, other stand-ins): the writes are first recorded as the completion's intent,
 *   then applied one by one, each stamped with its writer and conditioned "as asked, or already
 *   written by this attempt's event", then the completion is marked done. A crash in between
 *   leaves the intent, and the next delivery applies the same writes again, which changes nothing.
 * Either way, emitted events wait in the outbox until EventBridge took them.
 */
import { DynamoDBClient, type CreateTableCommandInput } from '@aws-sdk/client-dynamodb';
import {
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  TransactWriteCommand,
  UpdateCommand,
  type TransactWriteCommandInput,
} from '@aws-sdk/lib-dynamodb';
import type { App, TableSpec } from '../../core/app.js';
import { IDEMPOTENCY_TTL_MS, PermanentError, type AttemptRecord, type DeadLetter } from '../../core/delivery.js';
import type { CloudEvent } from '../../core/event.js';
import { ConditionFailedError, keyOf, type Item, type KeyValue, type PutOptions, type QueryOptions, type Table } from '../../core/ports.js';
import { itemKey, itemOf, TableSession, type CommittedTables } from '../../core/session.js';
import type { DeadLetterAdmin } from '../http/types.js';
import { awsNames } from './names.js';
import type { AwsNames, QueueControl } from './types.js';

/** Stamped on items written without transactions: which attempt wrote them (see above). Never shown to handlers. */
export const WRITER_ATTRIBUTE = 'petrel:writer';
/** TransactWriteItems takes at most 100 actions; one is the completion record. */
export const MAX_TRANSACTION_WRITES = 99;
/** A non-transactional commit records its writes in one item (DynamoDB: at most 400 KB). */
const MAX_INTENT_BYTES = 350_000;

export interface DynamoStoreOptions {
  client?: DynamoDBClient;
  names?: AwsNames;
  /**
   * Commit an attempt's writes and completion in one TransactWriteItems (default, env
   * PETREL_DYNAMODB_TRANSACTIONS=false turns it off). Off where the API has no transactions.
   */
  transactions?: boolean;
}

/** One write of an attempt, as it is committed (and recorded as intent). */
export interface PlannedWrite {
  resource: string;
  table: string;
  partitionKey: string;
  ttlAttribute?: string;
  key: Item;
  /** Absent for a delete. */
  item?: Item;
  /** The condition the handler asked for, checked again at commit. */
  condition?: PutOptions;
}

/** What the delivery table knows about one function and one event. */
export interface DeliveryState {
  done: boolean;
  /** Emitted events not yet confirmed published. */
  outbox?: CloudEvent[];
  /** A non-transactional commit that began and did not finish. */
  intent?: PlannedWrite[];
  attempts: AttemptRecord[];
  /** The dead letter the event became. */
  dead?: string;
}

export interface Completion {
  fn: string;
  key: string;
  outbox: CloudEvent[];
}

type Json = Record<string, unknown>;

const errorName = (error: unknown) => (error as { name?: string }).name;
const nowSeconds = () => Math.floor(Date.now() / 1000);
const idempotencyExpiry = () => Math.floor((Date.now() + IDEMPOTENCY_TTL_MS) / 1000);

function tableSpec(app: App, resource: string): TableSpec {
  const spec = app.resources[resource];
  if (spec?.kind !== 'table') throw new TypeError(`"${resource}" is not a table of app "${app.name}"`);
  return spec;
}

export class DynamoStore {
  readonly doc: DynamoDBDocumentClient;
  readonly names: AwsNames;
  readonly transactions: boolean;
  /** Committed, unexpired items, as sessions read them. */
  readonly committed: CommittedTables;

  constructor(readonly app: App, options: DynamoStoreOptions = {}) {
    this.doc = DynamoDBDocumentClient.from(options.client ?? new DynamoDBClient({}), { marshallOptions: { removeUndefinedValues: true } });
    this.names = options.names ?? awsNames(app);
    this.transactions = options.transactions ?? process.env.PETREL_DYNAMODB_TRANSACTIONS !== 'false';
    this.committed = {
      get: async (resource, pk, sk) => {
        const spec = tableSpec(app, resource);
        const { Item } = await this.doc.send(new GetCommand({ TableName: this.names.table(resource), Key: keyItem(spec, pk, sk), ConsistentRead: true }));
        return visible(Item, spec);
      },
      query: (resource, pk, options) => this.query(resource, pk, options),
    };
  }

  /** A buffered view of the tables for one attempt. */
  session(): DynamoSession {
    return new DynamoSession(this);
  }

  // ---- commit ---------------------------------------------------------------------------------

  /**
   * Commits an attempt's writes, with its completion record when given. 'duplicate': another
   * delivery of the same event completed first, and nothing was written. A condition that no
   * longer holds throws ConditionFailedError.
   */
  async commit(writes: PlannedWrite[], writer: string, completion?: Completion): Promise<'committed' | 'duplicate'> {
    if (writes.length === 0 && !completion) return 'committed';
    return this.transactions ? this.commitTransaction(writes, completion) : this.commitInSteps(writes, writer, completion);
  }

  private async commitTransaction(writes: PlannedWrite[], completion: Completion | undefined): Promise<'committed' | 'duplicate'> {
    if (writes.length > MAX_TRANSACTION_WRITES) {
      throw new PermanentError(`one invocation wrote ${writes.length} items; DynamoDB transactions take at most ${MAX_TRANSACTION_WRITES} with the completion record`);
    }
    const items: NonNullable<TransactWriteCommandInput['TransactItems']> = writes.map((w) => {
      const condition = conditionOf(w);
      return w.item ? { Put: { TableName: w.table, Item: w.item, ...condition } } : { Delete: { TableName: w.table, Key: w.key, ...condition } };
    });
    if (completion) {
      items.push({
        Update: {
          TableName: this.names.deliveryTable,
          Key: deliveryKey(completion.fn, completion.key),
          UpdateExpression: completion.outbox.length ? 'SET #done = :true, #exp = :exp, #outbox = :outbox' : 'SET #done = :true, #exp = :exp',
          ConditionExpression: 'attribute_not_exists(#done)',
          ExpressionAttributeNames: { '#done': 'done', '#exp': 'expiresAt', ...(completion.outbox.length ? { '#outbox': 'outbox' } : {}) },
          ExpressionAttributeValues: { ':true': true, ':exp': idempotencyExpiry(), ...(completion.outbox.length ? { ':outbox': JSON.stringify(completion.outbox) } : {}) },
        },
      });
    }
    try {
      await this.doc.send(new TransactWriteCommand({ TransactItems: items }));
      return 'committed';
    } catch (error) {
      if (errorName(error) !== 'TransactionCanceledException') throw error;
      const reasons = (error as { CancellationReasons?: Array<{ Code?: string }> }).CancellationReasons ?? [];
      if (completion && reasons[items.length - 1]?.Code === 'ConditionalCheckFailed') return 'duplicate';
      const lost = reasons.findIndex((r) => r.Code === 'ConditionalCheckFailed' || r.Code === 'TransactionConflict');
      if (lost >= 0 && lost < writes.length) throw conditionFailed(writes[lost]);
      throw error;
    }
  }

  private async commitInSteps(writes: PlannedWrite[], writer: string, completion: Completion | undefined): Promise<'committed' | 'duplicate'> {
    if (completion) {
      const intent = JSON.stringify(writes);
      if (Buffer.byteLength(intent) > MAX_INTENT_BYTES) throw new PermanentError(`one invocation wrote ${Buffer.byteLength(intent)} bytes of items; without transactions at most ${MAX_INTENT_BYTES} can be committed at once`);
      try {
        await this.doc.send(new UpdateCommand({
          TableName: this.names.deliveryTable,
          Key: deliveryKey(completion.fn, completion.key),
          UpdateExpression: 'SET #intent = :intent, #outbox = :outbox, #exp = :exp',
          ConditionExpression: 'attribute_not_exists(#done) AND attribute_not_exists(#intent)',
          ExpressionAttributeNames: { '#intent': 'intent', '#outbox': 'outbox', '#exp': 'expiresAt', '#done': 'done' },
          ExpressionAttributeValues: { ':intent': intent, ':outbox': JSON.stringify(completion.outbox), ':exp': idempotencyExpiry() },
        }));
      } catch (error) {
        if (errorName(error) === 'ConditionalCheckFailedException') return 'duplicate';
        throw error;
      }
      await this.finish(completion.fn, completion.key, writes, writer);
    } else {
      await this.apply(writes, writer);
    }
    return 'committed';
  }

  /** Applies a recorded intent (again) and marks the completion done; a lost condition drops the intent, so the handler runs afresh. */
  async finish(fn: string, key: string, writes: PlannedWrite[], writer: string): Promise<void> {
    try {
      await this.apply(writes, writer);
    } catch (error) {
      if (error instanceof ConditionFailedError) await this.update(fn, key, 'REMOVE #intent, #outbox', { '#intent': 'intent', '#outbox': 'outbox' });
      throw error;
    }
    await this.update(fn, key, 'SET #done = :true REMOVE #intent', { '#done': 'done', '#intent': 'intent' }, { ':true': true });
  }

  private async apply(writes: PlannedWrite[], writer: string): Promise<void> {
    for (const w of writes) {
      const condition = conditionOf(w, writer);
      try {
        if (w.item) await this.doc.send(new PutCommand({ TableName: w.table, Item: { ...w.item, [WRITER_ATTRIBUTE]: writer }, ...condition }));
        else await this.doc.send(new DeleteCommand({ TableName: w.table, Key: w.key, ...condition }));
      } catch (error) {
        if (errorName(error) === 'ConditionalCheckFailedException') throw conditionFailed(w);
        throw error;
      }
    }
  }

  // ---- delivery records -----------------------------------------------------------------------

  async deliveryState(fn: string, key: string): Promise<DeliveryState> {
    const { Item } = await this.doc.send(new GetCommand({ TableName: this.names.deliveryTable, Key: deliveryKey(fn, key), ConsistentRead: true }));
    return {
      done: Item?.done === true,
      outbox: typeof Item?.outbox === 'string' ? (JSON.parse(Item.outbox) as CloudEvent[]) : undefined,
      intent: typeof Item?.intent === 'string' ? (JSON.parse(Item.intent) as PlannedWrite[]) : undefined,
      attempts: Array.isArray(Item?.attempts) ? (Item.attempts as AttemptRecord[]) : [],
      dead: typeof Item?.dead === 'string' ? Item.dead : undefined,
    };
  }

  /** The outbox was published: forget it. */
  clearOutbox(fn: string, key: string): Promise<void> {
    return this.update(fn, key, 'REMOVE #outbox', { '#outbox': 'outbox' });
  }

  /** Appends a failed attempt to the event's history (kept for the dead letter). */
  recordAttempt(fn: string, key: string, record: AttemptRecord): Promise<void> {
    return this.update(fn, key, 'SET #attempts = list_append(if_not_exists(#attempts, :none), :record), #exp = :exp', { '#attempts': 'attempts', '#exp': 'expiresAt' }, {
      ':none': [],
      ':record': [record],
      ':exp': idempotencyExpiry(),
    });
  }

  /** Records a dead letter and marks the event dead for its function; `origin`: the queue it came from, for redrive. */
  async putDeadLetter(letter: DeadLetter, key: string, origin?: string): Promise<void> {
    const item = { pk: 'dead', sk: letter.id, fn: letter.fn, event: JSON.stringify(letter.event), attempts: JSON.stringify(letter.attempts), deadAt: letter.deadAt, ...(origin ? { origin } : {}) };
    const mark = {
      TableName: this.names.deliveryTable,
      Key: deliveryKey(letter.fn, key),
      UpdateExpression: 'SET #dead = :id, #attempts = :attempts, #exp = :exp',
      ExpressionAttributeNames: { '#dead': 'dead', '#attempts': 'attempts', '#exp': 'expiresAt' },
      ExpressionAttributeValues: { ':id': letter.id, ':attempts': letter.attempts, ':exp': idempotencyExpiry() },
    };
    if (this.transactions) {
      await this.doc.send(new TransactWriteCommand({ TransactItems: [{ Put: { TableName: this.names.deliveryTable, Item: item } }, { Update: mark }] }));
      return;
    }
    // Letter first: a crash between the two writes leaves a duplicate letter, never a lost one.
    await this.doc.send(new PutCommand({ TableName: this.names.deliveryTable, Item: item }));
    await this.doc.send(new UpdateCommand(mark));
  }

  private async update(fn: string, key: string, expression: string, names: Record<string, string>, values?: Json): Promise<void> {
    await this.doc.send(new UpdateCommand({
      TableName: this.names.deliveryTable,
      Key: deliveryKey(fn, key),
      UpdateExpression: expression,
      ExpressionAttributeNames: names,
      ...(values ? { ExpressionAttributeValues: values } : {}),
    }));
  }

  // ---- reads ----------------------------------------------------------------------------------

  private async query(resource: string, pk: KeyValue, options: QueryOptions): Promise<Item[]> {
    const spec = tableSpec(this.app, resource);
    const names: Record<string, string> = { '#pk': spec.partitionKey };
    const values: Json = { ':pk': pk };
    let keyCondition = '#pk = :pk';
    const conditions = Object.entries(options.sortKey ?? {}).filter(([, v]) => v !== undefined);
    if (conditions.length > 1) throw new TypeError(`table "${resource}": a DynamoDB query takes one sort-key condition, got ${conditions.map(([name]) => name).join(' and ')}`);
    if (conditions.length === 1) {
      if (!spec.sortKey) throw new TypeError(`table "${resource}" has no sort key to put a condition on`);
      const [operator, value] = conditions[0];
      names['#sk'] = spec.sortKey;
      const comparison: Record<string, string> = { eq: '=', lt: '<', lte: '<=', gt: '>', gte: '>=' };
      if (operator === 'between') {
        [values[':a'], values[':b']] = value as [KeyValue, KeyValue];
        keyCondition += ' AND #sk BETWEEN :a AND :b';
      } else if (operator === 'beginsWith') {
        values[':sk'] = value;
        keyCondition += ' AND begins_with(#sk, :sk)';
      } else {
        values[':sk'] = value;
        keyCondition += ` AND #sk ${comparison[operator]} :sk`;
      }
    }
    const items: Item[] = [];
    let ExclusiveStartKey: Json | undefined;
    do {
      const page = await this.doc.send(new QueryCommand({
        TableName: this.names.table(resource),
        KeyConditionExpression: keyCondition,
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
        ScanIndexForward: !options.reverse,
        ConsistentRead: true,
        ExclusiveStartKey,
        ...(options.limit ? { Limit: options.limit - items.length } : {}),
      }));
      // DynamoDB deletes expired items only eventually: they are filtered here, so pages may come short.
      for (const item of page.Items ?? []) {
        const live = visible(item, spec);
        if (live) items.push(live);
      }
      ExclusiveStartKey = page.LastEvaluatedKey;
    } while (ExclusiveStartKey && !(options.limit && items.length >= options.limit));
    return items;
  }

  // ---- dead letters ---------------------------------------------------------------------------

  async deadLetterItem(id: string): Promise<(DeadLetter & { origin?: string }) | undefined> {
    const { Item } = await this.doc.send(new GetCommand({ TableName: this.names.deliveryTable, Key: { pk: 'dead', sk: id } }));
    return Item && toDeadLetter(Item);
  }

  async deadLetterItems(fn?: string, limit = 1000): Promise<Array<DeadLetter & { origin?: string }>> {
    const out: Array<DeadLetter & { origin?: string }> = [];
    let ExclusiveStartKey: Json | undefined;
    do {
      // Dead-letter ids are time-ordered (UUIDv7): newest first is descending key order.
      const page = await this.doc.send(new QueryCommand({
        TableName: this.names.deliveryTable,
        KeyConditionExpression: 'pk = :dead',
        ExpressionAttributeValues: { ':dead': 'dead' },
        ScanIndexForward: false,
        ExclusiveStartKey,
      }));
      for (const item of page.Items ?? []) if (!fn || item.fn === fn) out.push(toDeadLetter(item));
      ExclusiveStartKey = page.LastEvaluatedKey;
    } while (ExclusiveStartKey && out.length < limit);
    return out.slice(0, limit);
  }

  /** Forgets a dead letter and the event's failed attempts, so a redriven event starts at attempt 1. */
  async removeDeadLetter(letter: DeadLetter, key: string): Promise<void> {
    await this.update(letter.fn, key, 'REMOVE #dead, #attempts', { '#dead': 'dead', '#attempts': 'attempts' });
    await this.doc.send(new DeleteCommand({ TableName: this.names.deliveryTable, Key: { pk: 'dead', sk: letter.id } }));
  }
}

/** One attempt's tables: core's buffered session, plus the conditions asked for, which DynamoDB checks at commit. */
export class DynamoSession {
  private readonly buffered: TableSession;
  /** Per key, the condition of its first conditional write (later ones were checked against this attempt's own writes). */
  private readonly conditions = new Map<string, PutOptions>();
  private readonly written = new Set<string>();

  constructor(private readonly store: DynamoStore) {
    this.buffered = new TableSession(store.committed);
  }

  table(name: string, spec: TableSpec): Table {
    const inner = this.buffered.table(name, spec);
    const noteWrite = (item: Item, options: PutOptions | undefined) => {
      const id = itemKey(name, ...keyOf(item, spec.partitionKey, spec.sortKey, name));
      if (!this.written.has(id) && (options?.ifNotExists || options?.ifMatch)) this.conditions.set(id, options);
      this.written.add(id);
    };
    return {
      get: (key) => inner.get(key),
      query: (pk, options) => inner.query(pk, options),
      put: async (item, options) => {
        await inner.put(item, options);
        noteWrite(item, options);
      },
      delete: async (key, options) => {
        await inner.delete(key, options);
        noteWrite(key, options);
      },
    };
  }

  /** The writes to commit, one per key. */
  planned(): PlannedWrite[] {
    return [...this.buffered.writes()].map((w) => {
      const spec = tableSpec(this.store.app, w.table);
      const condition = this.conditions.get(itemKey(w.table, w.pk, w.sk));
      return {
        resource: w.table,
        table: this.store.names.table(w.table),
        partitionKey: spec.partitionKey,
        ...(spec.ttlAttribute ? { ttlAttribute: spec.ttlAttribute } : {}),
        key: keyItem(spec, w.pk, w.sk),
        ...(w.json !== undefined ? { item: itemOf(w) } : {}),
        ...(condition ? { condition } : {}),
      };
    });
  }
}

/** Dead letters on DynamoDB, listed, shown and redriven like on every target (the same admin contract). */
export class DynamoDeadLetters implements DeadLetterAdmin {
  constructor(private readonly store: DynamoStore, private readonly queues?: QueueControl) {}

  list(fn?: string): Promise<DeadLetter[]> {
    return this.store.deadLetterItems(fn);
  }

  get(id: string): Promise<DeadLetter | undefined> {
    return this.store.deadLetterItem(id);
  }

  /** Sends the event back to the queue it came from (as a structured CloudEvent) and forgets the letter. */
  async redrive(id: string): Promise<boolean> {
    const letter = await this.store.deadLetterItem(id);
    if (!letter) return false;
    const { origin, ...deadLetter } = letter;
    if (!origin || !this.queues) {
      throw Object.assign(new Error(`dead letter ${id} of "${letter.fn}" did not come from a queue; invoke the function with its event to retry it`), { status: 409 });
    }
    await this.queues.send(origin, JSON.stringify(letter.event));
    await this.store.removeDeadLetter(deadLetter, `${letter.event.id} ${letter.event.source}`);
    return true;
  }

  async redriveAll(fn?: string): Promise<number> {
    let count = 0;
    for (const letter of await this.store.deadLetterItems(fn, Number.MAX_SAFE_INTEGER)) if (await this.redrive(letter.id)) count++;
    return count;
  }
}

/** CreateTable inputs for an app's tables and its delivery table (tests, local stand-ins, deployments), with each TTL attribute. */
export function tableDefinitions(app: App, names: AwsNames = awsNames(app)): Array<{ input: CreateTableCommandInput; ttlAttribute?: string }> {
  // DynamoDB needs key types; TableSpec has none, so keys are strings on AWS.
  const define = (TableName: string, pk: string, sk: string | undefined): CreateTableCommandInput => ({
    TableName,
    BillingMode: 'PAY_PER_REQUEST',
    KeySchema: [{ AttributeName: pk, KeyType: 'HASH' }, ...(sk ? [{ AttributeName: sk, KeyType: 'RANGE' as const }] : [])],
    AttributeDefinitions: [{ AttributeName: pk, AttributeType: 'S' }, ...(sk ? [{ AttributeName: sk, AttributeType: 'S' as const }] : [])],
  });
  const tables = Object.entries(app.resources).flatMap(([name, spec]) =>
    spec.kind === 'table' ? [{ input: define(names.table(name), spec.partitionKey, spec.sortKey), ...(spec.ttlAttribute ? { ttlAttribute: spec.ttlAttribute } : {}) }] : [],
  );
  return [...tables, { input: define(names.deliveryTable, 'pk', 'sk'), ttlAttribute: 'expiresAt' }];
}

function deliveryKey(fn: string, key: string): Json {
  return { pk: `fn#${fn}`, sk: key };
}

function keyItem(spec: TableSpec, pk: KeyValue, sk: KeyValue): Item {
  return spec.sortKey ? { [spec.partitionKey]: pk, [spec.sortKey]: sk } : { [spec.partitionKey]: pk };
}

/** An item as handlers see it: undefined once its TTL passed (DynamoDB deletes lazily), without the writer stamp. */
function visible(item: Item | undefined, spec: TableSpec): Item | undefined {
  if (!item) return undefined;
  const ttl = spec.ttlAttribute ? item[spec.ttlAttribute] : undefined;
  if (typeof ttl === 'number' && ttl <= Date.now() / 1000) return undefined;
  const { [WRITER_ATTRIBUTE]: _writer, ...rest } = item;
  return rest;
}

function conditionFailed(w: PlannedWrite): ConditionFailedError {
  return new ConditionFailedError(`table "${w.resource}": condition failed for key ${JSON.stringify(w.key)}`);
}

/**
 * The ConditionExpression for a write: the handler's condition; with `replayedBy`, also true when
 * the item is this writer's own earlier write (a put) or already gone (a delete).
 */
function conditionOf(w: PlannedWrite, replayedBy?: string): Json {
  if (!w.condition) return {};
  const names: Record<string, string> = { '#pk': w.partitionKey };
  const values: Json = {};
  const parts: string[] = [];
  if (w.condition.ifNotExists) {
    if (w.ttlAttribute) {
      // An expired item DynamoDB has not deleted yet counts as absent.
      names['#ttl'] = w.ttlAttribute;
      values[':now'] = nowSeconds();
      parts.push('attribute_not_exists(#pk) OR #ttl <= :now');
    } else parts.push('attribute_not_exists(#pk)');
  }
  if (w.condition.ifMatch) {
    parts.push('attribute_exists(#pk)');
    Object.entries(w.condition.ifMatch).forEach(([attribute, value], i) => {
      names[`#m${i}`] = attribute;
      if (value === undefined) parts.push(`attribute_not_exists(#m${i})`);
      else {
        values[`:m${i}`] = value;
        parts.push(`#m${i} = :m${i}`);
      }
    });
  }
  // DynamoDB rejects redundant parentheses; AND binds tighter than OR.
  let expression = parts.length > 1 ? parts.map((p) => (p.includes(' OR ') ? `(${p})` : p)).join(' AND ') : parts[0];
  if (replayedBy && w.item) {
    names['#w'] = WRITER_ATTRIBUTE;
    values[':w'] = replayedBy;
    expression += ' OR #w = :w';
  } else if (replayedBy) expression += ' OR attribute_not_exists(#pk)';
  return { ConditionExpression: expression, ExpressionAttributeNames: names, ...(Object.keys(values).length ? { ExpressionAttributeValues: values } : {}) };
}

function toDeadLetter(item: Json): DeadLetter & { origin?: string } {
  return {
    id: String(item.sk),
    fn: String(item.fn),
    event: JSON.parse(String(item.event)) as CloudEvent,
    attempts: JSON.parse(String(item.attempts)) as AttemptRecord[],
    deadAt: String(item.deadAt),
    ...(typeof item.origin === 'string' ? { origin: item.origin } : {}),
  };
}
