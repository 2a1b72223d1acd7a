// The air-quality app as it runs on AWS, with in-process stand-ins: API Gateway events into the
// ingest Lambda handler, PutEvents captured and delivered as EventBridge rules would (translated
// patterns) into one SQS queue per function (fauxqs), Lambda's SQS polling, DynamoDB (dynalite),
// and the alerts read back through the alerts handler.
import { readFileSync } from 'node:fs';
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { startFauxqs, type FauxqsServer } from 'fauxqs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { newEventId } from '../../core/event.js';
import { compilePattern } from '../../core/pattern/index.js';
import { createAirQualityApp } from '../../handlers/air-quality/app.js';
import { computeAqi } from '../../handlers/air-quality/aqi.js';
import { airQualityConfig } from '../../handlers/air-quality/config.js';
import { DeviceAuth } from '../http/auth.js';
import { DynamoStore } from './dynamodb.js';
import { EventBridgePublisher } from './eventbridge.js';
import { createHandler, type LambdaHandler } from './handler.js';
import { deliveredEvent, translatePattern } from './mapping.js';
import { SqsQueues } from './sqs.js';
import { createTables, pollOnce, recordingEventBridge, region, silentLogger, sqsClient, startDynalite, testNames, type Dynalite } from './testing.js';
import type { APIGatewayProxyEvent, APIGatewayProxyEventV2, APIGatewayProxyResult } from './types.js';

const app = createAirQualityApp(airQualityConfig({ idleTick: false }));
const names = testNames('aq');
const deviceKey = 'device-key-for-the-harbour-sensors';
const fixture = <T>(name: string): T => JSON.parse(readFileSync(new URL(`./fixtures/${name}.json`, import.meta.url), 'utf8')) as T;

let fauxqs: FauxqsServer;
let dynamo: Dynalite;
let sqs: SQSClient;

beforeAll(async () => {
  [fauxqs, dynamo] = await Promise.all([startFauxqs({ port: 0, logger: false }), startDynalite()]);
  sqs = sqsClient(fauxqs.address);
  await createTables(dynamo.client, app, names);
});
afterAll(async () => {
  sqs.destroy();
  await Promise.all([fauxqs.stop(), dynamo.stop()]);
});

it('API Gateway -> ingest -> PutEvents -> EventBridge rule -> SQS -> assess -> DynamoDB -> alert through the alerts handler', async () => {
  const eventBridge = recordingEventBridge();
  const store = new DynamoStore(app, { client: dynamo.client, names, transactions: false });
  const services = {
    store,
    bus: new EventBridgePublisher({ client: eventBridge.client, eventBusName: names.eventBus }),
    queues: new SqsQueues({ client: sqs }),
    deviceAuth: new DeviceAuth([deviceKey]),
    logger: silentLogger,
    metrics: { invoked: () => undefined, flush: () => undefined },
  };
  const handler = (fn: string): LambdaHandler => createHandler(app, fn, services);

  // The deployment: per event-triggered function, a rule with its translated pattern and a queue.
  const rules = app.functions.filter((f) => f.pattern && f.spec.trigger.kind === 'event').map((f) => ({
    fn: f.name,
    matches: compilePattern(translatePattern(f.pattern!.pattern as Record<string, unknown>)).matches,
    queue: fauxqs.createQueue(`aq-${f.name}`),
    handler: handler(f.name),
  }));
  expect(rules.map((r) => r.fn)).toEqual(expect.arrayContaining(['assess', 'notify']));

  // EventBridge: every entry put so far, delivered to the queue of each rule it matches.
  let routed = 0;
  const delivered: Record<string, number> = {};
  async function eventBridgeDelivers(): Promise<number> {
    let sent = 0;
    for (; routed < eventBridge.entries.length; routed++) {
      const envelope = deliveredEvent(eventBridge.entries[routed], { id: newEventId(), account: '000000000000', region });
      for (const rule of rules.filter((r) => r.matches(envelope))) {
        await sqs.send(new SendMessageCommand({ QueueUrl: rule.queue.queueUrl, MessageBody: JSON.stringify(envelope) }));
        delivered[rule.fn] = (delivered[rule.fn] ?? 0) + 1;
        sent++;
      }
    }
    return sent;
  }
  // Lambda's pollers, until nothing is in flight anywhere.
  async function settle(): Promise<void> {
    for (let round = 0; round < 50; round++) {
      let work = await eventBridgeDelivers();
      for (const rule of rules) {
        const { received, failed } = await pollOnce(sqs, rule.queue, rule.handler);
        expect(failed).toEqual([]);
        work += received;
      }
      if (work === 0) return;
    }
    throw new Error('the pipeline did not settle in 50 rounds');
  }

  // A sensor at the harbour reports an unhealthy minute, then a reading three minutes later moves
  // the location's watermark past the allowed lateness, so that minute is final.
  const minute = Math.floor(Date.now() / 60_000) * 60_000 - 10 * 60_000;
  const readings = [
    { deviceId: 'sensor-17', location: 'harbour', time: new Date(minute + 5_000).toISOString(), pm25: 150.4, pm10: 60 },
    { deviceId: 'sensor-17', location: 'harbour', time: new Date(minute + 3 * 60_000 + 5_000).toISOString(), pm25: 151, pm10: 61 },
  ];
  const post = fixture<APIGatewayProxyEventV2>('apigateway-v2-post-readings');
  const { 'x-api-key': _key, ...headers } = post.headers;
  const accepted = (await handler('ingest')({ ...post, headers: { ...headers, authorization: `Bearer ${deviceKey}` }, body: JSON.stringify(readings) })) as APIGatewayProxyResult;
  expect(accepted.statusCode).toBe(202);
  expect(JSON.parse(accepted.body)).toEqual({ accepted: 2 });
  expect(eventBridge.entries.map((e) => e.DetailType)).toEqual(['aq.reading.accepted', 'aq.reading.accepted']);

  await settle();
  expect(delivered.assess).toBe(2);
  const stored = await store.session().table('readings', app.resources.readings as never).query('harbour');
  expect(stored.map((r) => r.pm25)).toEqual([150.4, 151]);
  expect(eventBridge.entries.map((e) => e.DetailType)).toContain('aq.alert.raised');

  const get = fixture<APIGatewayProxyEvent>('apigateway-v1-get-alerts');
  const response = (await handler('listAlerts')(get)) as APIGatewayProxyResult;
  expect(response.statusCode).toBe(200);
  const alerts = JSON.parse(response.body) as Array<Record<string, unknown>>;
  const category = computeAqi(readings[0])!.category.name;
  expect(alerts).toEqual(expect.arrayContaining([expect.objectContaining({ location: 'harbour', kind: 'category', direction: 'up', category })]));

  // Delivered again (at-least-once), nothing changes: the same alerts, no new events.
  const before = eventBridge.entries.length;
  for (const rule of rules) {
    for (const entry of eventBridge.entries.slice(0, before)) {
      const envelope = deliveredEvent(entry, { id: newEventId(), account: '000000000000', region });
      if (rule.matches(envelope)) await sqs.send(new SendMessageCommand({ QueueUrl: rule.queue.queueUrl, MessageBody: JSON.stringify(envelope) }));
    }
  }
  await settle();
  expect(eventBridge.entries.length).toBe(before);
  expect(JSON.parse(((await handler('listAlerts')(get)) as APIGatewayProxyResult).body)).toEqual(alerts);
});
