import { readFileSync } from 'node:fs';
import { Logger as PowertoolsLogger } from '@aws-lambda-powertools/logger';
import { Metrics as PowertoolsMetrics } from '@aws-lambda-powertools/metrics';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { deriveEventId, newEventId, type CloudEvent } from '../../core/event.js';
import { DeviceAuth } from '../http/auth.js';
import { DynamoDeadLetters, DynamoStore } from './dynamodb.js';
import { EventBridgePublisher } from './eventbridge.js';
import { createAdminHandler, createHandler, EmfMetrics, powertoolsLogger, type FlushableMetrics, type HandlerOptions } from './handler.js';
import { deliveredEvent, fromEventBridgeEvent, toPutEventsEntry } from './mapping.js';
import { createTables, recordingEventBridge, sensorsApp, silentLogger, startDynalite, testNames, type Dynalite } from './testing.js';
import type { APIGatewayProxyEvent, APIGatewayProxyEventV2, APIGatewayProxyResult, DynamoDBStreamEvent, SQSBatchResponse, SQSEvent, SQSRecord } from './types.js';

const fixture = <T>(name: string): T => JSON.parse(readFileSync(new URL(`./fixtures/${name}.json`, import.meta.url), 'utf8')) as T;
const QUEUE = 'arn:aws:sqs:us-east-2:123456789012:sensors-tally';

let dynamo: Dynalite;
let run = 0;
beforeAll(async () => {
  dynamo = await startDynalite();
});
afterAll(() => dynamo.stop());

interface World {
  store: DynamoStore;
  eventBridge: ReturnType<typeof recordingEventBridge>;
  visibility: Array<[string, number]>;
  sent: Array<[string, string]>;
  invocations: string[];
  handler(fn: string, extra?: Partial<HandlerOptions>): ReturnType<typeof createHandler>;
}

let world: World;

beforeEach(async () => {
  const names = testNames(`h${++run}`);
  await createTables(dynamo.client, sensorsApp, names);
  const store = new DynamoStore(sensorsApp, { client: dynamo.client, names, transactions: false });
  const eventBridge = recordingEventBridge();
  const visibility: Array<[string, number]> = [];
  const sent: Array<[string, string]> = [];
  const invocations: string[] = [];
  const metrics: FlushableMetrics = { invoked: (fn, outcome) => void invocations.push(`${fn}:${outcome}`), flush: () => undefined };
  const bus = new EventBridgePublisher({ client: eventBridge.client, eventBusName: names.eventBus, retry: { maxAttempts: 2, baseDelayMs: 0, maxDelayMs: 0 } });
  const queues = { retryAfter: async (_arn: string, receipt: string, seconds: number) => void visibility.push([receipt, seconds]), send: async (arn: string, body: string) => void sent.push([arn, body]) };
  world = {
    store, eventBridge, visibility, sent, invocations,
    handler: (fn, extra = {}) => createHandler(sensorsApp, fn, { store, bus, queues, logger: silentLogger, metrics, ...extra }),
  };
});

// ---- helpers ----------------------------------------------------------------------------------

function v2(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): APIGatewayProxyEventV2 {
  const sample = fixture<APIGatewayProxyEventV2>('apigateway-v2-post-readings');
  return {
    ...sample,
    routeKey: `${method} ${path}`,
    rawPath: path,
    rawQueryString: '',
    headers: { ...sample.headers, ...headers },
    requestContext: { ...sample.requestContext, http: { ...sample.requestContext.http, method, path } },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  };
}

async function call(fn: string, event: unknown): Promise<APIGatewayProxyResult & { json: Record<string, unknown> }> {
  const result = (await world.handler(fn)(event)) as APIGatewayProxyResult;
  return { ...result, json: result.body ? (JSON.parse(result.body) as Record<string, unknown>) : {} };
}

const thingEvent = (data: Record<string, unknown>, id = newEventId()): CloudEvent => ({ specversion: '1.0', id, source: 'petrel/sensors/record', type: 'thing.recorded', time: new Date().toISOString(), data });

let messages = 0;
function sqsRecord(event: CloudEvent | string, receiveCount = 1): SQSRecord {
  const [sample] = fixture<SQSEvent>('sqs-test-messages').Records;
  const body = typeof event === 'string' ? event : JSON.stringify(deliveredEvent(toPutEventsEntry(event), { id: newEventId(), account: '123456789012', region: 'us-east-2' }));
  messages++;
  return { ...sample, messageId: `m-${messages}`, receiptHandle: `r-${messages}`, body, eventSourceARN: QUEUE, attributes: { ...sample.attributes, ApproximateReceiveCount: String(receiveCount) } };
}

async function sqs(fn: string, records: SQSRecord[]): Promise<string[]> {
  const response = (await world.handler(fn)({ Records: records })) as SQSBatchResponse;
  return response.batchItemFailures.map((f) => f.itemIdentifier);
}

const tally = async (id: string) => (await world.store.session().table('counts', sensorsApp.resources.counts as never).get({ scope: 'tally', key: id }))?.count;
const emittedTypes = () => world.eventBridge.entries.map((e) => e.DetailType);

// ---- API Gateway -----------------------------------------------------------------------------

describe('API Gateway -> http functions', () => {
  it('runs the function, commits its writes and answers only after EventBridge took the emitted events', async () => {
    const response = await call('record', v2('POST', '/things/t1', { colour: 'red' }));
    expect(response).toMatchObject({ statusCode: 201, json: { id: 't1' }, headers: { 'content-type': 'application/json; charset=utf-8' } });
    const [entry] = world.eventBridge.entries;
    const emitted = fromEventBridgeEvent(deliveredEvent(entry, { id: 'x', account: '1', region: 'r' }));
    expect(emitted).toMatchObject({ type: 'thing.recorded', source: 'petrel/sensors/record', partitionkey: 't1', data: { id: 't1', colour: 'red' } });
    expect(typeof emitted.ingesttime).toBe('string');
    // The sample carries Idempotency-Key: batch-0001, so a resent request emits the same event id.
    expect(emitted.id).toBe(deriveEventId('record:batch-0001', 'record', 0));
    await call('record', v2('POST', '/things/t1', { colour: 'red' }));
    expect(world.eventBridge.entries.map((e) => JSON.parse(e.Detail!).ce.id)).toEqual([emitted.id, emitted.id]);
  });

  it('serves a REST API (1.0) request with path parameters, query and headers, never the secret ones', async () => {
    await call('record', v2('POST', '/things/t2', { colour: 'blue' }));
    const sample = fixture<APIGatewayProxyEvent>('apigateway-v1-get-alerts');
    const response = await call('show', { ...sample, path: '/things/t2', resource: '/things/{id}' });
    expect(response.statusCode).toBe(200);
    expect(response.headers).toMatchObject({ 'x-thing': 't2' });
    const body = response.json as { thing: unknown; query: unknown; headers: Record<string, string> };
    expect(body.thing).toEqual({ id: 't2', colour: 'blue' });
    expect(body.query).toEqual({ location: 'harbour' });
    expect(body.headers['x-forwarded-for']).toBe('52.255.255.12');
    expect(body.headers.authorization).toBeUndefined();
    expect((await call('show', { ...sample, path: '/things/none' })).json).toEqual({ error: 'no thing none' });
  });

  it.each([
    ['an unknown route', v2('POST', '/nothing', {}), 404, /no route for POST \/nothing/],
    ['a wrong method', v2('GET', '/things/x'), 404, /no route for GET \/things\/x/],
    ['a body that is not JSON', v2('POST', '/things/x', '{"a":', { 'content-type': 'application/json' }), 400, /the body is not valid JSON/],
    ['a text body', v2('POST', '/things/x', 'hi', { 'content-type': 'text/plain' }), 415, /expected Content-Type application\/json, got "text\/plain"/],
    ['a body over 256 KiB', v2('POST', '/things/x', { pad: 'x'.repeat(270_000) }), 413, /larger than the 256 KiB limit/],
  ])('answers %s with a JSON error', async (_what, event, status, message) => {
    const response = await call('record', event);
    expect(response.statusCode).toBe(status);
    expect(String(response.json.error)).toMatch(message);
    expect(world.eventBridge.entries).toHaveLength(0);
  });

  it('admits a device-authenticated route only with a device key, as the express ingress does', async () => {
    const key = 'k'.repeat(32);
    const secure = (deviceAuth?: DeviceAuth) => world.handler('secure', { deviceAuth });
    const post = async (handler: ReturnType<typeof secure>, headers: Record<string, string>) => {
      const sample = v2('POST', '/secure', {}, headers);
      const { authorization: _a, 'x-api-key': _k, ...unauthenticated } = sample.headers;
      const result = (await handler({ ...sample, headers: { ...unauthenticated, ...headers } })) as APIGatewayProxyResult;
      return { status: result.statusCode, error: result.statusCode === 401 ? (JSON.parse(result.body) as { error: string }).error : undefined };
    };
    const auth = new DeviceAuth([key]);
    expect(await post(secure(auth), { authorization: `Bearer ${key}` })).toEqual({ status: 200, error: undefined });
    expect(await post(secure(auth), { 'x-api-key': 'wrong-key-wrong-key' })).toEqual({ status: 401, error: 'the API key is not valid' });
    expect((await post(secure(auth), {})).error).toMatch(/missing credentials/);
    expect((await post(secure(), { authorization: `Bearer ${key}` })).error).toMatch(/no device keys are configured/);
  });

  it('answers 500 without the error details when the function fails, and commits nothing', async () => {
    const response = await call('record', v2('POST', '/things/t3', { explode: true }));
    expect(response.statusCode).toBe(500);
    expect(response.json.error).toBe('function "record" failed (Error); see the server log');
    expect(response.body).not.toMatch(/secret/);
    expect(typeof response.json.eventId).toBe('string');
    expect(await world.store.session().table('things', sensorsApp.resources.things as never).get({ id: 't3' })).toBeUndefined();
  });
});

// ---- SQS --------------------------------------------------------------------------------------

describe('SQS batches -> event functions', () => {
  it('reports only the malformed record failed; the others run once and emit', async () => {
    const good = [thingEvent({ id: 'a' }), thingEvent({ id: 'b' })];
    const records = [sqsRecord(good[0]), sqsRecord('Test message.'), sqsRecord(good[1])];
    expect(await sqs('tally', records)).toEqual([records[1].messageId]);
    expect(world.visibility).toEqual([[records[1].receiptHandle, 0]]);
    expect([await tally('a'), await tally('b')]).toEqual([1, 1]);
    expect(emittedTypes()).toEqual(['thing.tallied', 'thing.tallied']);
    expect(world.invocations.sort()).toEqual(['tally:ok', 'tally:ok']);
  });

  it('skips a redelivered event: effects and emits happen once', async () => {
    const event = thingEvent({ id: 'once' });
    expect(await sqs('tally', [sqsRecord(event)])).toEqual([]);
    expect(await sqs('tally', [sqsRecord(event, 2)])).toEqual([]);
    expect(await tally('once')).toBe(1);
    expect(emittedTypes()).toEqual(['thing.tallied']);
    expect(world.invocations).toEqual(['tally:ok', 'tally:duplicate']);
  });

  it('retries by redelivery: attempt = ApproximateReceiveCount, backoff as the visibility timeout', async () => {
    const event = thingEvent({ id: 'flaky', fail: 1 });
    const first = sqsRecord(event, 1);
    expect(await sqs('tally', [first])).toEqual([first.messageId]);
    expect(world.visibility).toEqual([[first.receiptHandle, 0]]);
    const state = await world.store.deliveryState('tally', `${event.id} ${event.source}`);
    expect(state.attempts).toMatchObject([{ attempt: 1, error: { message: 'attempt 1 of thing flaky fails on purpose' } }]);
    expect(await sqs('tally', [sqsRecord(event, 2)])).toEqual([]);
    expect(await tally('flaky')).toBe(1);
  });

  it('dead-letters after maxAttempts with every attempt, then fails fast until SQS moves the message', async () => {
    const event = thingEvent({ id: 'doomed', fail: 9 });
    for (const count of [1, 2, 3, 4]) {
      const record = sqsRecord(event, count);
      expect(await sqs('tally', [record])).toEqual([record.messageId]);
    }
    const letters = await new DynamoDeadLetters(world.store).list();
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({ fn: 'tally', event, attempts: [{ attempt: 1 }, { attempt: 2 }, { attempt: 3 }] });
    // The 4th receive ran nothing: three attempts were invoked.
    expect(world.invocations).toEqual(['tally:retry', 'tally:retry', 'tally:dead']);
  });

  it('dead-letters a permanent error at once, and redrives it to the queue it came from', async () => {
    const event = thingEvent({ id: 'bad', fail: 'permanent' });
    const record = sqsRecord(event);
    expect(await sqs('tally', [record])).toEqual([record.messageId]);
    const letters = new DynamoDeadLetters(world.store, { retryAfter: async () => undefined, send: async (arn, body) => void world.sent.push([arn, body]) });
    const [letter] = await letters.list('tally');
    expect(letter.attempts).toMatchObject([{ attempt: 1, error: { name: 'PermanentError', message: 'thing bad cannot be tallied' } }]);
    expect(await letters.redrive(letter.id)).toBe(true);
    expect(world.sent.map(([arn, body]) => [arn, JSON.parse(body)])).toEqual([[QUEUE, event]]);
    expect(await letters.list('tally')).toEqual([]);
    // The redriven message is a structured CloudEvent; it runs again from attempt 1 (and fails again).
    const redriven = sqsRecord(world.sent[0][1]);
    expect(await sqs('tally', [redriven])).toEqual([redriven.messageId]);
    expect(world.invocations).toEqual(['tally:dead', 'tally:dead']);
    expect((await letters.list('tally'))[0].attempts).toMatchObject([{ attempt: 1 }]);
  });

  it('re-runs a handler that lost a write race instead of failing it', async () => {
    // Two events for the same thing in one batch run in parallel: one commit loses its condition.
    const records = [sqsRecord(thingEvent({ id: 'race' })), sqsRecord(thingEvent({ id: 'race' }))];
    expect(await sqs('tally', records)).toEqual([]);
    expect(await tally('race')).toBe(2);
  });

  it('skips events the function pattern does not match', async () => {
    const other = { ...thingEvent({ id: 'x' }), type: 'thing.other' };
    expect(await sqs('tally', [sqsRecord(other)])).toEqual([]);
    expect(world.invocations).toEqual([]);
  });
});

// ---- streams, SNS, EventBridge, direct ------------------------------------------------------

describe('DynamoDB Streams, SNS, S3 and EventBridge -> event functions', () => {
  const noted = async (scope: string) => world.store.session().table('counts', sensorsApp.resources.counts as never).query(scope);

  it('runs DynamoDB Stream records in order and reports a failed one by its sequence number', async () => {
    const stream = fixture<DynamoDBStreamEvent>('dynamodb-stream');
    expect(await world.handler('noted')(stream)).toEqual({ batchItemFailures: [] });
    expect(await noted('com.amazonaws.dynamodb.MODIFY')).toMatchObject([{ key: '2', data: { newImage: { Message: 'This item has changed' } } }]);
    const failing = structuredClone(stream);
    failing.Records[1].dynamodb!.NewImage!.Message = { S: 'fail' };
    failing.Records.forEach((r, i) => (r.eventID = `again-${i}`));
    expect(await world.handler('noted')(failing)).toEqual({ batchItemFailures: [{ itemIdentifier: '222' }] });
  });

  it('takes the SNS sample (asynchronous) once, however often Lambda retries it', async () => {
    const sns = fixture('sns-notification');
    await expect(world.handler('noted')(sns)).resolves.toBeUndefined();
    await expect(world.handler('noted')(sns)).resolves.toBeUndefined();
    expect(await noted('com.amazonaws.sns.Notification')).toMatchObject([{ key: '95df01b4-ee98-5cb9-9903-4c221d41eb5e', data: 'Hello from SNS!', subject: 'TestInvoke' }]);
    expect(world.invocations).toEqual(['noted:ok', 'noted:duplicate']);
  });

  it('takes an AWS EventBridge event delivered to Lambda directly', async () => {
    await world.handler('noted')(fixture('eventbridge-ec2-state-change'));
    expect(await noted('EC2 Instance State-change Notification')).toMatchObject([{ source: 'aws.ec2', data: { state: 'pending' } }]);
  });

  it('turns a scheduled rule event into the schedule trigger event of its period, fired once', async () => {
    const scheduled = fixture<Record<string, unknown>>('eventbridge-scheduled');
    await world.handler('tick')(scheduled);
    await world.handler('tick')({ ...scheduled, id: 'another-delivery', time: '2015-10-08T16:54:00Z' });
    const ticks = await noted('ticks');
    expect(ticks).toEqual([{ scope: 'ticks', key: deriveEventId('sensors:schedule', 'tick', Math.floor(Date.parse('2015-10-08T16:53:06Z') / 300_000)), time: '2015-10-08T16:50:00.000Z' }]);
  });

  it('lets Lambda retry a failed asynchronous invocation, then dead-letters it on the last attempt', async () => {
    const event = thingEvent({ id: 'async', fail: 9 });
    const tallyHandler = world.handler('tally', { asyncAttempts: 2 });
    await expect(tallyHandler(event)).rejects.toThrow(/failed; Lambda retries the invocation/);
    await expect(tallyHandler(event)).resolves.toBeUndefined();
    const [letter] = await new DynamoDeadLetters(world.store).list();
    expect(letter).toMatchObject({ fn: 'tally', attempts: [{ attempt: 1 }, { attempt: 2 }] });
    expect(letter).not.toHaveProperty('origin');
  });

  it('rejects events of no known shape and http events for event functions, clearly', async () => {
    await expect(world.handler('tally')({ hello: 'world' })).rejects.toThrow(/got an event of no known shape/);
    await expect(world.handler('tally')(v2('GET', '/things/x'))).rejects.toThrow(/is not http-triggered/);
    await expect(world.handler('tally')({ specversion: '1.0', id: '', source: 's', type: 't' })).rejects.toThrow(/invalid CloudEvent: id is required/);
  });

  it('refuses to build a handler without the services its function uses', () => {
    expect(() => createHandler(sensorsApp, 'tally', {})).toThrow(/function "tally" needs store \(DynamoDB\), bus \(EventBridge\)/);
    expect(() => createHandler(sensorsApp, 'fileArrived', { store: world.store })).toThrow(/needs buckets \(S3\)/);
    expect(() => createHandler(sensorsApp, 'nope', {})).toThrow(/has no function "nope"/);
  });
});

// ---- admin, logs and metrics ------------------------------------------------------------------

describe('dead-letter administration, logs and metrics', () => {
  it('serves /admin/dead-letters like the express ingress', async () => {
    const event = thingEvent({ id: 'admin', fail: 'permanent' });
    await sqs('tally', [sqsRecord(event)]);
    const admin = createAdminHandler(new DynamoDeadLetters(world.store, { retryAfter: async () => undefined, send: async (arn, body) => void world.sent.push([arn, body]) }), silentLogger);
    const request = async (method: string, path: string) => {
      const result = (await admin(v2(method, path))) as APIGatewayProxyResult;
      return { status: result.statusCode, json: JSON.parse(result.body) as unknown };
    };
    const list = await request('GET', '/admin/dead-letters');
    expect(list).toMatchObject({ status: 200, json: [{ fn: 'tally', event: { id: event.id } }] });
    const id = (list.json as Array<{ id: string }>)[0].id;
    expect(await request('GET', `/admin/dead-letters/${id}`)).toMatchObject({ status: 200, json: { id, attempts: [{ attempt: 1 }] } });
    expect(await request('GET', '/admin/dead-letters/none')).toEqual({ status: 404, json: { error: 'no dead letter with id "none"' } });
    expect(await request('POST', `/admin/dead-letters/${id}/redrive`)).toEqual({ status: 200, json: { redriven: 1 } });
    expect(world.sent).toHaveLength(1);
    expect(await request('POST', '/admin/dead-letters-redrive')).toEqual({ status: 200, json: { redriven: 0 } });
    expect(await request('DELETE', '/admin/dead-letters')).toEqual({ status: 404, json: { error: 'no route for DELETE /admin/dead-letters' } });
  });

  it('publishes invocations and ingest latency as CloudWatch EMF (Powertools Metrics)', async () => {
    const emf = new PowertoolsMetrics({ namespace: 'petrel', serviceName: 'sensors', defaultDimensions: { function: 'tally' } });
    const blobs: Array<Record<string, unknown>> = [];
    vi.spyOn(emf, 'publishStoredMetrics').mockImplementation(() => {
      blobs.push(emf.serializeMetrics() as Record<string, unknown>);
      emf.clearMetrics();
      return emf;
    });
    const event = { ...thingEvent({ id: 'm' }), ingesttime: new Date(Date.now() - 50).toISOString() };
    await world.handler('tally', { metrics: new EmfMetrics(emf) })({ Records: [sqsRecord(event)] });
    expect(blobs).toHaveLength(1);
    const blob = blobs[0] as { _aws: { CloudWatchMetrics: Array<{ Namespace: string; Dimensions: string[][]; Metrics: Array<{ Name: string }> }> }; function: string } & Record<string, unknown>;
    expect(blob._aws.CloudWatchMetrics[0].Namespace).toBe('petrel');
    expect(blob.function).toBe('tally');
    expect(blob._aws.CloudWatchMetrics[0].Metrics.map((m) => m.Name).sort()).toEqual(['duration', 'invocations.ok', 'latency.thing.tallied']);
    expect(blob['latency.thing.tallied']).toBeGreaterThanOrEqual(50);
  });

  it('logs through the Powertools Logger as structured JSON, with bindings and errors', () => {
    const lines: string[] = [];
    // Powertools writes warnings and errors to stderr, the rest to stdout; Lambda sends both to CloudWatch.
    const capture = (chunk: string | Uint8Array) => (lines.push(String(chunk)), true);
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(capture);
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(capture);
    try {
      const log = powertoolsLogger(new PowertoolsLogger({ serviceName: 'sensors', logLevel: 'DEBUG' })).child({ fn: 'tally', eventId: 'e-1' });
      log.warn({ err: new Error('boom') }, 'handler failed; will retry');
      log.info('plain message');
    } finally {
      out.mockRestore();
      err.mockRestore();
    }
    const [warn, info] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(warn).toMatchObject({ level: 'WARN', message: 'handler failed; will retry', service: 'sensors', fn: 'tally', eventId: 'e-1', err: { name: 'Error', message: 'boom' } });
    expect(info).toMatchObject({ level: 'INFO', message: 'plain message', fn: 'tally' });
  });
});
