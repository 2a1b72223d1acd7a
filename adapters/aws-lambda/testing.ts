/**
 * In-process stand-ins for the AWS services the adapter's tests need: dynalite (DynamoDB, no
 * transactions), fauxqs (SQS, SNS, S3), an EventBridge client that records PutEvents, and the
 * part of Lambda's SQS poller that turns received messages into an SQS event.
 */
import type { AddressInfo } from 'node:net';
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { PutEventsCommand, PutEventsResultEntry } from '@aws-sdk/client-eventbridge';
import { DeleteMessageBatchCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import dynalite from 'dynalite';
import pino from 'pino';
import { bucket, defineApp, fn, http, objectCreated, on, schedule, table, type App, type HttpRequestData } from '../../core/app.js';
import { PermanentError } from '../../core/delivery.js';
import type { Logger } from '../../core/ports.js';
import { tableDefinitions } from './dynamodb.js';
import type { LambdaHandler } from './handler.js';
import type { AwsNames, PutEventsEntry, SQSBatchResponse, SQSEvent } from './types.js';

export const credentials = { accessKeyId: 'test', secretAccessKey: 'test' };
export const region = 'us-east-1';
export const silentLogger: Logger = pino({ level: 'silent' });

export interface Dynalite {
  client: DynamoDBClient;
  stop(): Promise<void>;
}

export async function startDynalite(): Promise<Dynalite> {
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const client = new DynamoDBClient({ endpoint: `http://127.0.0.1:${port}`, region, credentials });
  return {
    client,
    stop: async () => {
      client.destroy();
      await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
    },
  };
}

/** Creates an app's tables and its delivery table (dynalite has no TTL API: expiry is filtered on read). */
export async function createTables(client: DynamoDBClient, app: App, names: AwsNames): Promise<void> {
  for (const { input } of tableDefinitions(app, names)) await client.send(new CreateTableCommand(input));
}

/** Unique physical names per test, so tests share one dynalite without seeing each other's items. */
export function testNames(prefix: string): AwsNames {
  return { table: (r) => `${prefix}-${r}`, bucket: (r) => `${prefix}-${r}`, deliveryTable: `${prefix}-delivery`, eventBus: `${prefix}-bus` };
}

/** An EventBridge client that records every PutEvents entry; `fail` decides per entry whether EventBridge rejects it. */
export function recordingEventBridge(fail: (entry: PutEventsEntry, call: number) => string | undefined = () => undefined) {
  const entries: PutEventsEntry[] = [];
  const requests: PutEventsEntry[][] = [];
  const client = {
    send: async (command: PutEventsCommand) => {
      const batch = command.input.Entries ?? [];
      requests.push(batch);
      const results: PutEventsResultEntry[] = batch.map((entry) => {
        const code = fail(entry, requests.length);
        if (code) return { ErrorCode: code, ErrorMessage: `simulated ${code}` };
        entries.push(entry);
        return { EventId: `eb-${entries.length}` };
      });
      return { FailedEntryCount: results.filter((r) => r.ErrorCode).length, Entries: results };
    },
  };
  return { client: client as unknown as { send: (command: PutEventsCommand) => Promise<never> }, entries, requests };
}

export function sqsClient(endpoint: string): SQSClient {
  // fauxqs queue URLs name hosts like sqs.us-east-1.localhost: send to its endpoint instead.
  return new SQSClient({ endpoint, region, credentials, useQueueUrlAsEndpoint: false });
}

/**
 * What Lambda's SQS event source mapping does once: receive up to 10 messages, invoke the
 * handler with them as an SQS event, delete those not reported in batchItemFailures.
 */
export async function pollOnce(sqs: SQSClient, queue: { queueUrl: string; queueArn: string }, handler: LambdaHandler): Promise<{ received: number; failed: string[] }> {
  const { Messages = [] } = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queue.queueUrl, MaxNumberOfMessages: 10, MessageSystemAttributeNames: ['All'], WaitTimeSeconds: 0 }));
  if (Messages.length === 0) return { received: 0, failed: [] };
  const event: SQSEvent = {
    Records: Messages.map((m) => ({
      messageId: m.MessageId!,
      receiptHandle: m.ReceiptHandle!,
      body: m.Body ?? '',
      attributes: {
        ApproximateReceiveCount: m.Attributes?.ApproximateReceiveCount ?? '1',
        SentTimestamp: m.Attributes?.SentTimestamp ?? String(Date.now()),
        SenderId: m.Attributes?.SenderId ?? 'AIDAIENQZJOLO23YVJ4VO',
        ApproximateFirstReceiveTimestamp: m.Attributes?.ApproximateFirstReceiveTimestamp ?? String(Date.now()),
      },
      messageAttributes: {},
      md5OfBody: m.MD5OfBody ?? '',
      eventSource: 'aws:sqs',
      eventSourceARN: queue.queueArn,
      awsRegion: region,
    })),
  };
  const response = (await handler(event)) as SQSBatchResponse;
  const failed = response.batchItemFailures.map((f) => f.itemIdentifier);
  const done = Messages.filter((m) => !failed.includes(m.MessageId!));
  if (done.length) {
    await sqs.send(new DeleteMessageBatchCommand({ QueueUrl: queue.queueUrl, Entries: done.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })) }));
  }
  return { received: Messages.length, failed };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * An app with a function per AWS source. `tally` counts per thing with a read-modify-write (a
 * duplicate delivery would double it) and fails on demand: `data.fail` = 'permanent', or a number
 * of attempts to fail before succeeding.
 */
export const sensorsApp = defineApp({
  name: 'sensors',
  resources: {
    things: table({ partitionKey: 'id' }),
    counts: table({ partitionKey: 'scope', sortKey: 'key', ttlAttribute: 'expires' }),
    files: bucket(),
  },
  functions: {
    record: fn({
      trigger: http('POST', '/things/:id'),
      uses: { things: 'write' },
      emits: ['thing.recorded'],
      handler: async (event, ctx) => {
        const { params, body } = event.data as HttpRequestData;
        if (!isRecord(body)) return { status: 400, body: { error: 'send a JSON object' } };
        if (body.explode) throw new Error('exploded on purpose, with secret details');
        await ctx.tables.things.put({ ...body, id: params.id });
        ctx.emit('thing.recorded', { ...body, id: params.id }, { partitionkey: params.id });
        return { status: 201, body: { id: params.id } };
      },
    }),
    show: fn({
      trigger: http('GET', '/things/:id'),
      uses: { things: 'read' },
      handler: async (event, ctx) => {
        const { params, query, headers } = event.data as HttpRequestData;
        const thing = await ctx.tables.things.get({ id: params.id });
        if (!thing) return { status: 404, body: { error: `no thing ${params.id}` } };
        return { headers: { 'x-thing': params.id }, body: { thing, query, headers } };
      },
    }),
    secure: fn({
      trigger: http('POST', '/secure', { auth: 'device' }),
      handler: async () => ({ status: 200, body: { ok: true } }),
    }),
    tally: fn({
      trigger: on({ type: ['thing.recorded'] }),
      uses: { counts: 'write' },
      emits: ['thing.tallied'],
      retry: { maxAttempts: 3, baseDelayMs: 0, maxDelayMs: 0 },
      handler: async (event, ctx) => {
        const data = event.data as { id: string; fail?: 'permanent' | number };
        if (data.fail === 'permanent') throw new PermanentError(`thing ${data.id} cannot be tallied`);
        if (typeof data.fail === 'number' && ctx.attempt <= data.fail) throw new Error(`attempt ${ctx.attempt} of thing ${data.id} fails on purpose`);
        const key = { scope: 'tally', key: data.id };
        const current = await ctx.tables.counts.get(key);
        const count = Number(current?.count ?? 0) + 1;
        await ctx.tables.counts.put({ ...key, count }, current ? { ifMatch: { count: current.count } } : { ifNotExists: true });
        ctx.emit('thing.tallied', { id: data.id, count });
      },
    }),
    fileArrived: fn({
      trigger: objectCreated('files', { suffix: '.csv' }),
      uses: { files: 'read', counts: 'write' },
      handler: async (event, ctx) => {
        const { key } = event.data as { key: string };
        const body = await ctx.buckets.files.get(key);
        if (!body) throw new Error(`object ${key} is gone`);
        await ctx.tables.counts.put({ scope: 'files', key, lines: Buffer.from(body).toString('utf8').trim().split('\n').length });
      },
    }),
    tick: fn({
      trigger: schedule('rate(5 minutes)'),
      uses: { counts: 'write' },
      handler: async (event, ctx) => {
        await ctx.tables.counts.put({ scope: 'ticks', key: event.id, time: event.time });
      },
    }),
    noted: fn({
      trigger: on({ $or: [{ type: [{ prefix: 'com.amazonaws.' }] }, { source: ['aws.ec2'] }] }),
      uses: { counts: 'write' },
      handler: async (event, ctx) => {
        if ((event.data as { newImage?: { Message?: string } })?.newImage?.Message === 'fail') throw new Error('stream record fails on purpose');
        await ctx.tables.counts.put({ scope: event.type, key: event.id, source: event.source, subject: event.subject ?? null, data: event.data ?? null });
      },
    }),
  },
});
