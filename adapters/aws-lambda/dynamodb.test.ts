import { DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attemptRecord } from '../../core/delivery.js';
import { newEventId, type CloudEvent } from '../../core/event.js';
import { ConditionFailedError } from '../../core/ports.js';
import { DynamoDeadLetters, DynamoStore, WRITER_ATTRIBUTE, type PlannedWrite } from './dynamodb.js';
import { createTables, sensorsApp, startDynalite, testNames, type Dynalite } from './testing.js';

let dynamo: Dynalite;
let run = 0;

beforeAll(async () => {
  dynamo = await startDynalite();
});
afterAll(() => dynamo.stop());

/** A store over fresh tables (dynalite: no transactions). */
async function freshStore(): Promise<DynamoStore> {
  const names = testNames(`t${++run}`);
  await createTables(dynamo.client, sensorsApp, names);
  return new DynamoStore(sensorsApp, { client: dynamo.client, names, transactions: false });
}

const counts = sensorsApp.resources.counts as { kind: 'table'; partitionKey: string; sortKey: string; ttlAttribute: string };
const things = sensorsApp.resources.things as { kind: 'table'; partitionKey: string };
const event = (id = newEventId()): CloudEvent => ({ specversion: '1.0', id, source: 'test', type: 'thing.recorded', data: { id } });

async function write(store: DynamoStore, work: (t: ReturnType<ReturnType<DynamoStore['session']>['table']>) => Promise<void>, writer = 'w') {
  const session = store.session();
  await work(session.table('counts', counts));
  return store.commit(session.planned(), writer);
}

describe('tables on DynamoDB (dynalite)', () => {
  it('puts, gets and queries with every sort-key condition, in order and reversed', async () => {
    const store = await freshStore();
    await write(store, async (t) => {
      for (const key of ['a1', 'a2', 'b1', 'b2', 'c1']) await t.put({ scope: 's', key, n: key });
      await t.put({ scope: 'other', key: 'a1' });
    });
    const table = store.session().table('counts', counts);
    const keys = async (options: Parameters<typeof table.query>[1]) => (await table.query('s', options)).map((i) => i.key);
    expect(await keys({})).toEqual(['a1', 'a2', 'b1', 'b2', 'c1']);
    expect(await keys({ reverse: true, limit: 2 })).toEqual(['c1', 'b2']);
    expect(await keys({ sortKey: { eq: 'b1' } })).toEqual(['b1']);
    expect(await keys({ sortKey: { lt: 'b1' } })).toEqual(['a1', 'a2']);
    expect(await keys({ sortKey: { lte: 'b1' } })).toEqual(['a1', 'a2', 'b1']);
    expect(await keys({ sortKey: { gt: 'b1' } })).toEqual(['b2', 'c1']);
    expect(await keys({ sortKey: { gte: 'b2' } })).toEqual(['b2', 'c1']);
    expect(await keys({ sortKey: { between: ['a2', 'b2'] } })).toEqual(['a2', 'b1', 'b2']);
    expect(await keys({ sortKey: { beginsWith: 'b' } })).toEqual(['b1', 'b2']);
    expect(await table.get({ scope: 's', key: 'a2' })).toEqual({ scope: 's', key: 'a2', n: 'a2' });
    await expect(table.query('s', { sortKey: { gt: 'a', lt: 'c' } })).rejects.toThrow(/one sort-key condition, got gt and lt/);
  });

  it('hides expired items (DynamoDB deletes them only eventually) and lets ifNotExists replace them', async () => {
    const store = await freshStore();
    const past = Math.floor(Date.now() / 1000) - 10;
    const future = Math.floor(Date.now() / 1000) + 3600;
    await write(store, async (t) => {
      await t.put({ scope: 's', key: 'old', expires: past });
      await t.put({ scope: 's', key: 'new', expires: future });
    });
    const table = store.session().table('counts', counts);
    expect(await table.get({ scope: 's', key: 'old' })).toBeUndefined();
    expect((await table.query('s', { limit: 1 })).map((i) => i.key)).toEqual(['new']);
    await write(store, (t) => t.put({ scope: 's', key: 'old', v: 2 }, { ifNotExists: true }));
    expect(await store.session().table('counts', counts).get({ scope: 's', key: 'old' })).toEqual({ scope: 's', key: 'old', v: 2 });
  });

  it('checks conditions at commit with ConditionExpression: a lost race is ConditionFailedError', async () => {
    const store = await freshStore();
    const first = store.session();
    const second = store.session();
    await first.table('counts', counts).put({ scope: 's', key: 'k', v: 1 }, { ifNotExists: true });
    await second.table('counts', counts).put({ scope: 's', key: 'k', v: 2 }, { ifNotExists: true });
    await store.commit(first.planned(), 'first');
    await expect(store.commit(second.planned(), 'second')).rejects.toThrow(ConditionFailedError);

    const a = store.session();
    const b = store.session();
    await a.table('counts', counts).put({ scope: 's', key: 'k', v: 3 }, { ifMatch: { v: 1 } });
    await b.table('counts', counts).put({ scope: 's', key: 'k', v: 4 }, { ifMatch: { v: 1 } });
    await store.commit(a.planned(), 'a');
    await expect(store.commit(b.planned(), 'b')).rejects.toThrow(/table "counts": condition failed for key/);
    expect(await store.session().table('counts', counts).get({ scope: 's', key: 'k' })).toMatchObject({ v: 3 });
  });

  it('commits with the completion record once: a second delivery of the event is a duplicate', async () => {
    const store = await freshStore();
    const e = event();
    const key = `${e.id} ${e.source}`;
    const commit = async (v: number) => {
      const session = store.session();
      await session.table('counts', counts).put({ scope: 'tally', key: 'x', v });
      return store.commit(session.planned(), `tally ${key}`, { fn: 'tally', key, outbox: [e] });
    };
    expect(await commit(1)).toBe('committed');
    expect(await commit(2)).toBe('duplicate');
    expect(await store.session().table('counts', counts).get({ scope: 'tally', key: 'x' })).toMatchObject({ v: 1 });
    const state = await store.deliveryState('tally', key);
    expect(state).toMatchObject({ done: true, outbox: [e], attempts: [] });
    expect(state.intent).toBeUndefined();
    await store.clearOutbox('tally', key);
    expect((await store.deliveryState('tally', key)).outbox).toBeUndefined();
  });

  it('replays an interrupted commit without changing anything, its own conditional writes included', async () => {
    const store = await freshStore();
    const e = event();
    const key = `${e.id} ${e.source}`;
    const writer = `tally ${key}`;
    const writes: PlannedWrite[] = [
      { resource: 'counts', table: store.names.table('counts'), partitionKey: 'scope', ttlAttribute: 'expires', key: { scope: 'tally', key: 'a' }, item: { scope: 'tally', key: 'a', count: 1 }, condition: { ifNotExists: true } },
      { resource: 'things', table: store.names.table('things'), partitionKey: 'id', key: { id: 'gone' }, condition: { ifMatch: { v: 1 } } },
    ];
    const thingsTable = () => store.session().table('things', things);
    const seed = store.session();
    await seed.table('things', things).put({ id: 'gone', v: 1 });
    await store.commit(seed.planned(), 'seed');
    // The first delivery recorded its intent and applied both writes, then died before marking done.
    await store.commit(writes, writer, { fn: 'tally', key, outbox: [e] });
    const doc = DynamoDBDocumentClient.from(dynamo.client);
    await doc.send(new UpdateCommand({
      TableName: store.names.deliveryTable, Key: { pk: 'fn#tally', sk: key }, UpdateExpression: 'REMOVE done SET intent = :i', ExpressionAttributeValues: { ':i': JSON.stringify(writes) },
    }));
    const state = await store.deliveryState('tally', key);
    expect(state).toMatchObject({ done: false, intent: writes });
    // The redelivery applies the same writes again: the put is its own, the delete already happened.
    await store.finish('tally', key, state.intent!, writer);
    expect(await store.deliveryState('tally', key)).toMatchObject({ done: true });
    expect(await store.session().table('counts', counts).get({ scope: 'tally', key: 'a' })).toEqual({ scope: 'tally', key: 'a', count: 1 });
    expect(await thingsTable().get({ id: 'gone' })).toBeUndefined();
    // The writer stamp is stored, and never shown to handlers.
    const raw = await doc.send(new GetCommand({ TableName: store.names.table('counts'), Key: { scope: 'tally', key: 'a' } }));
    expect(raw.Item?.[WRITER_ATTRIBUTE]).toBe(writer);
    // Another event's write with the same condition still fails.
    await expect(store.commit([writes[0]], 'someone else')).rejects.toThrow(ConditionFailedError);
  });

  it('drops the intent when a replayed write lost its condition, so the handler runs afresh', async () => {
    const store = await freshStore();
    const key = 'k1 test';
    const write1: PlannedWrite = { resource: 'counts', table: store.names.table('counts'), partitionKey: 'scope', key: { scope: 's', key: 'x' }, item: { scope: 's', key: 'x', v: 1 }, condition: { ifNotExists: true } };
    const other = store.session();
    await other.table('counts', counts).put({ scope: 's', key: 'x', v: 'theirs' });
    await store.commit(other.planned(), 'other writer');
    await expect(store.commit([write1], `tally ${key}`, { fn: 'tally', key, outbox: [] })).rejects.toThrow(ConditionFailedError);
    expect(await store.deliveryState('tally', key)).toMatchObject({ done: false, intent: undefined, outbox: undefined });
  });

  it('keeps attempt histories and dead letters, lists them newest first, and redrives to the origin queue', async () => {
    const store = await freshStore();
    const sent: Array<[string, string]> = [];
    const letters = new DynamoDeadLetters(store, { retryAfter: async () => undefined, send: async (arn, body) => void sent.push([arn, body]) });
    const first = event();
    const second = event();
    for (const [e, fnName] of [[first, 'tally'], [second, 'noted']] as const) {
      const key = `${e.id} ${e.source}`;
      await store.recordAttempt(fnName, key, attemptRecord(1, new Error('boom 1')));
      const state = await store.deliveryState(fnName, key);
      expect(state.attempts).toHaveLength(1);
      await store.putDeadLetter({ id: newEventId(), fn: fnName, event: e, attempts: [...state.attempts, attemptRecord(2, new Error('boom 2'))], deadAt: new Date().toISOString() }, key, 'arn:aws:sqs:us-east-1:000000000000:q');
      expect((await store.deliveryState(fnName, key)).dead).toBeDefined();
    }
    const all = await letters.list();
    expect(all.map((l) => l.fn)).toEqual(['noted', 'tally']);
    expect(all[1]).toMatchObject({ event: first, attempts: [{ attempt: 1, error: { message: 'boom 1' } }, { attempt: 2, error: { message: 'boom 2' } }] });
    expect((await letters.list('tally')).map((l) => l.event.id)).toEqual([first.id]);
    expect(await letters.get(all[0].id)).toMatchObject({ id: all[0].id, fn: 'noted' });
    expect(await letters.get('nope')).toBeUndefined();

    expect(await letters.redrive(all[1].id)).toBe(true);
    expect(sent).toEqual([['arn:aws:sqs:us-east-1:000000000000:q', JSON.stringify(first)]]);
    expect(await letters.get(all[1].id)).toBeUndefined();
    expect(await store.deliveryState('tally', `${first.id} ${first.source}`)).toMatchObject({ dead: undefined, attempts: [] });
    expect(await letters.redrive('nope')).toBe(false);
    expect(await letters.redriveAll()).toBe(1);
    expect(await letters.list()).toEqual([]);
  });
});

describe('with transactions (DynamoDB TransactWriteItems)', () => {
  type Sent = { constructor: { name: string }; input: Record<string, unknown> };

  function recordingStore(reply: (command: Sent) => unknown) {
    const sent: Sent[] = [];
    const client = { send: async (command: Sent) => (sent.push(command), reply(command)), config: {}, middlewareStack: { clone: () => ({}) } };
    const store = new DynamoStore(sensorsApp, { names: testNames('tx'), transactions: true });
    // The document client marshals, then hands the command to this recording client.
    (store.doc as unknown as { send: (c: Sent) => Promise<unknown> }).send = (command) => client.send(command);
    return { store, sent };
  }

  it('commits writes, their conditions and the completion with its outbox in one TransactWriteItems', async () => {
    const { store, sent } = recordingStore(() => ({}));
    const session = store.session();
    await session.table('things', things).put({ id: 'a', v: 1 });
    const e = event();
    const writes = session.planned().map((w) => ({ ...w, condition: { ifNotExists: true } }));
    expect(await store.commit(writes, 'w', { fn: 'tally', key: 'k', outbox: [e] })).toBe('committed');
    const transaction = sent.find((c) => c.constructor.name === 'TransactWriteCommand')!;
    // The put was unconditional when the handler made it, so nothing was read before the commit.
    expect(sent.map((c) => c.constructor.name)).toEqual(['TransactWriteCommand']);
    const items = transaction.input.TransactItems as Array<Record<string, Record<string, unknown>>>;
    expect(items[0].Put).toMatchObject({ TableName: 'tx-things', Item: { id: 'a', v: 1 }, ConditionExpression: 'attribute_not_exists(#pk)', ExpressionAttributeNames: { '#pk': 'id' } });
    expect(items[0].Put.Item).not.toHaveProperty(WRITER_ATTRIBUTE);
    expect(items[1].Update).toMatchObject({ TableName: 'tx-delivery', Key: { pk: 'fn#tally', sk: 'k' }, ConditionExpression: 'attribute_not_exists(#done)', ExpressionAttributeValues: { ':outbox': JSON.stringify([e]) } });
  });

  it('reads cancellation reasons: the completion lost is a duplicate, a write lost is ConditionFailedError', async () => {
    const cancelled = (codes: string[]) => () => {
      throw Object.assign(new Error('Transaction cancelled'), { name: 'TransactionCanceledException', CancellationReasons: codes.map((Code) => ({ Code })) });
    };
    const write: PlannedWrite = { resource: 'things', table: 'tx-things', partitionKey: 'id', key: { id: 'a' }, item: { id: 'a' }, condition: { ifNotExists: true } };
    expect(await recordingStore(cancelled(['None', 'ConditionalCheckFailed'])).store.commit([write], 'w', { fn: 'f', key: 'k', outbox: [] })).toBe('duplicate');
    await expect(recordingStore(cancelled(['ConditionalCheckFailed', 'None'])).store.commit([write], 'w', { fn: 'f', key: 'k', outbox: [] })).rejects.toThrow(ConditionFailedError);
    await expect(recordingStore(cancelled(['ThrottlingError', 'None'])).store.commit([write], 'w', { fn: 'f', key: 'k', outbox: [] })).rejects.toThrow('Transaction cancelled');
  });

  it('refuses more writes than one transaction holds, permanently', async () => {
    const { store } = recordingStore(() => ({}));
    const writes = Array.from({ length: 100 }, (_, i): PlannedWrite => ({ resource: 'things', table: 'tx-things', partitionKey: 'id', key: { id: String(i) }, item: { id: String(i) } }));
    await expect(store.commit(writes, 'w', { fn: 'f', key: 'k', outbox: [] })).rejects.toMatchObject({ permanent: true, message: expect.stringMatching(/wrote 100 items/) });
  });
});
