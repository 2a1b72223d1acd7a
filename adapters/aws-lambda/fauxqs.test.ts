// SQS, SNS and S3 paths against fauxqs (in-process SQS/SNS/S3), tables against dynalite.
import { readFileSync } from 'node:fs';
import { S3Client } from '@aws-sdk/client-s3';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { startFauxqs, type FauxqsServer } from 'fauxqs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { newEventId, type CloudEvent } from '../../core/event.js';
import { DynamoDeadLetters, DynamoStore } from './dynamodb.js';
import { EventBridgePublisher } from './eventbridge.js';
import { createHandler } from './handler.js';
import { deliveredEvent, toPutEventsEntry } from './mapping.js';
import { S3Buckets } from './s3.js';
import { SqsQueues } from './sqs.js';
import { createTables, credentials, pollOnce, recordingEventBridge, region, sensorsApp, silentLogger, sqsClient, startDynalite, testNames, type Dynalite } from './testing.js';
import type { AwsNames, S3Event } from './types.js';

let fauxqs: FauxqsServer;
let dynamo: Dynalite;
let sqs: SQSClient;
let s3: S3Client;
let run = 0;

beforeAll(async () => {
  [fauxqs, dynamo] = await Promise.all([startFauxqs({ port: 0, logger: false }), startDynalite()]);
  sqs = sqsClient(fauxqs.address);
  s3 = new S3Client({ endpoint: fauxqs.address, region, credentials, forcePathStyle: true });
});
afterAll(async () => {
  sqs.destroy();
  s3.destroy();
  await Promise.all([fauxqs.stop(), dynamo.stop()]);
});

let names: AwsNames;
let prefix: string;
let store: DynamoStore;
let queues: SqsQueues;
let buckets: S3Buckets;

beforeEach(async () => {
  prefix = `f${++run}`;
  names = testNames(prefix);
  await createTables(dynamo.client, sensorsApp, names);
  store = new DynamoStore(sensorsApp, { client: dynamo.client, names, transactions: false });
  queues = new SqsQueues({ client: sqs });
  buckets = new S3Buckets(sensorsApp, { client: s3, names });
});

const handler = (fn: string) =>
  createHandler(sensorsApp, fn, { store, queues, buckets, bus: new EventBridgePublisher({ client: recordingEventBridge().client }), logger: silentLogger, metrics: { invoked: () => undefined, flush: () => undefined } });

/** A function's queue with its dead-letter queue, as the deployment makes them (maxReceiveCount = maxAttempts). */
function functionQueue(fn: string, maxReceiveCount: number) {
  const dlq = fauxqs.createQueue(`${prefix}-${fn}-dlq`);
  const queue = fauxqs.createQueue(`${prefix}-${fn}`, { attributes: { RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlq.queueArn, maxReceiveCount: String(maxReceiveCount) }) } });
  return { queue, dlq };
}

const counts = (scope: string) => store.session().table('counts', sensorsApp.resources.counts as never).query(scope);
const thing = (data: Record<string, unknown>): CloudEvent => ({ specversion: '1.0', id: newEventId(), source: 'petrel/sensors/record', type: 'thing.recorded', data });
const envelope = (event: CloudEvent) => JSON.stringify(deliveredEvent(toPutEventsEntry(event), { id: newEventId(), account: '000000000000', region }));

/** Polls like Lambda's event source mapping until the queue has nothing visible. */
async function drain(queue: { queueUrl: string; queueArn: string }, fn: string, maxPolls = 20) {
  const polls: Array<{ received: number; failed: number }> = [];
  for (let i = 0; i < maxPolls; i++) {
    const { received, failed } = await pollOnce(sqs, queue, handler(fn));
    if (received === 0) break;
    polls.push({ received, failed: failed.length });
  }
  return polls;
}

describe('SQS (fauxqs): redelivery, redrive policy, dead letters', () => {
  it('retries an EventBridge event by redelivery, then the redrive policy moves it to the DLQ; the petrel dead letter holds every attempt', async () => {
    const { queue, dlq } = functionQueue('tally', 3);
    const poison = thing({ id: 'poison', fail: 99 });
    const good = thing({ id: 'fine' });
    const bodies = [envelope(poison), envelope(good)];
    for (const MessageBody of bodies) await sqs.send(new SendMessageCommand({ QueueUrl: queue.queueUrl, MessageBody }));

    const polls = await drain(queue, 'tally');
    // Receive 1: both, the poison fails; receives 2 and 3: the poison fails; receive 4 moves it to the DLQ.
    expect(polls).toEqual([{ received: 2, failed: 1 }, { received: 1, failed: 1 }, { received: 1, failed: 1 }]);
    expect(fauxqs.inspectQueue(dlq.queueName)!.messages.ready.map((m) => m.body)).toEqual([bodies[0]]);
    expect(await counts('tally')).toMatchObject([{ key: 'fine', count: 1 }]);

    const letters = new DynamoDeadLetters(store, queues);
    const [letter] = await letters.list();
    expect(letter).toMatchObject({ fn: 'tally', event: poison, attempts: [{ attempt: 1 }, { attempt: 2 }, { attempt: 3 }] });
    expect(letter.attempts[2].error.message).toBe('attempt 3 of thing poison fails on purpose');

    // `petrel dlq redrive`: back to the function's queue, from attempt 1.
    expect(await letters.redrive(letter.id)).toBe(true);
    const again = await pollOnce(sqs, queue, handler('tally'));
    expect(again).toMatchObject({ received: 1, failed: [expect.any(String)] });
    expect((await store.deliveryState('tally', `${poison.id} ${poison.source}`)).attempts).toMatchObject([{ attempt: 1 }]);
  });

  it('moves a malformed message to the DLQ without holding up the valid ones around it', async () => {
    const { queue, dlq } = functionQueue('tally', 2);
    await sqs.send(new SendMessageCommand({ QueueUrl: queue.queueUrl, MessageBody: envelope(thing({ id: 'before' })) }));
    await sqs.send(new SendMessageCommand({ QueueUrl: queue.queueUrl, MessageBody: '{"not":"an event"}' }));
    await sqs.send(new SendMessageCommand({ QueueUrl: queue.queueUrl, MessageBody: envelope(thing({ id: 'after' })) }));
    expect(await drain(queue, 'tally')).toEqual([{ received: 3, failed: 1 }, { received: 1, failed: 1 }]);
    expect(fauxqs.inspectQueue(dlq.queueName)!.messages.ready.map((m) => m.body)).toEqual(['{"not":"an event"}']);
    expect((await counts('tally')).map((c) => c.key)).toEqual(['after', 'before']);
  });
});

describe('SNS -> SQS (fauxqs)', () => {
  it('unwraps the SNS envelope: a CloudEvent published on SNS reaches its function, plain messages become SNS events', async () => {
    const sns = new SNSClient({ endpoint: fauxqs.address, region, credentials });
    try {
      const topicName = `${prefix}-things`;
      const topic = fauxqs.createTopic(topicName);
      const { queue: tallyQueue } = functionQueue('tally', 3);
      const { queue: notedQueue } = functionQueue('noted', 3);
      fauxqs.subscribe({ topic: topicName, queue: tallyQueue.queueName });
      fauxqs.subscribe({ topic: topicName, queue: notedQueue.queueName });
      const carried = thing({ id: 'via-sns' });
      await sns.send(new PublishCommand({ TopicArn: topic.topicArn, Message: JSON.stringify(carried) }));
      await sns.send(new PublishCommand({ TopicArn: topic.topicArn, Message: 'plain words', Subject: 'hello' }));

      expect(await drain(tallyQueue, 'tally')).toEqual([{ received: 2, failed: 0 }]);
      expect(await counts('tally')).toMatchObject([{ key: 'via-sns', count: 1 }]);
      await drain(notedQueue, 'noted');
      expect(await counts('com.amazonaws.sns.Notification')).toMatchObject([{ source: topic.topicArn, subject: 'hello', data: 'plain words' }]);
    } finally {
      sns.destroy();
    }
  });
});

describe('S3 (fauxqs)', () => {
  it('is the bucket store: put, get, list by prefix, delete', async () => {
    fauxqs.createBucket(names.bucket('files'));
    const files = buckets.bucket('files');
    await files.put('data/a.csv', 'x,y\n1,2\n', { contentType: 'text/csv' });
    await files.put('data/b.csv', new Uint8Array([104, 105]));
    await files.put('other.txt', 'no');
    expect(Buffer.from((await files.get('data/a.csv'))!).toString()).toBe('x,y\n1,2\n');
    expect(await files.list('data/')).toEqual([{ key: 'data/a.csv', size: 8 }, { key: 'data/b.csv', size: 2 }]);
    expect(await files.get('missing')).toBeUndefined();
    await files.delete('data/a.csv');
    expect((await files.list()).map((o) => o.key)).toEqual(['data/b.csv', 'other.txt']);
    await expect(files.put('', 'x')).rejects.toThrow(/object keys are 1 to 1024 bytes/);
  });

  it('runs the objectCreated function for S3 notifications, direct and through SQS, reading the object', async () => {
    fauxqs.createBucket(names.bucket('files'));
    const files = buckets.bucket('files');
    await files.put('in/readings one.csv', 'a\nb\nc\n');
    await files.put('in/two.csv', 'a\n');
    const sample = JSON.parse(readFileSync(new URL('./fixtures/s3-object-created.json', import.meta.url), 'utf8')) as S3Event;
    const notification = (key: string, size: number, requestId: string): S3Event => ({
      Records: [{ ...sample.Records[0], responseElements: { ...sample.Records[0].responseElements, 'x-amz-request-id': requestId }, s3: { ...sample.Records[0].s3, bucket: { ...sample.Records[0].s3.bucket, name: names.bucket('files') }, object: { ...sample.Records[0].s3.object, key: encodeURIComponent(key).replace(/%20/g, '+').replace(/%2F/g, '/'), size } } }],
    });
    await handler('fileArrived')(notification('in/readings one.csv', 6, 'REQ1'));
    const { queue } = functionQueue('fileArrived', 3);
    await sqs.send(new SendMessageCommand({ QueueUrl: queue.queueUrl, MessageBody: JSON.stringify(notification('in/two.csv', 2, 'REQ2')) }));
    expect(await drain(queue, 'fileArrived')).toEqual([{ received: 1, failed: 0 }]);
    expect(await counts('files')).toEqual([{ scope: 'files', key: 'in/readings one.csv', lines: 3 }, { scope: 'files', key: 'in/two.csv', lines: 1 }]);
  });
});
