import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { HTTP_REQUEST_TYPE, OBJECT_CREATED_TYPE } from '../../core/app.js';
import { httpRequestEvent } from '../../core/http.js';
import { deliveredEvent, toPutEventsEntry } from './mapping.js';
import {
  apiRequest,
  classify,
  dynamoDbEvent,
  eventsFromMessage,
  MalformedRecordError,
  routedRequest,
  s3Events,
  snsEvent,
  type ApiGatewayEvent,
  type SourceContext,
} from './sources.js';
import { sensorsApp } from './testing.js';
import type { APIGatewayProxyEventV2, DynamoDBStreamEvent, EventBridgeEnvelope, S3Event, SNSEvent, SQSEvent } from './types.js';

const fixture = <T>(name: string): T => JSON.parse(readFileSync(new URL(`./fixtures/${name}.json`, import.meta.url), 'utf8')) as T;
const context: SourceContext = { appName: 'sensors', bucketResource: (name) => (name === 'example-bucket' ? 'files' : undefined) };

describe('classify', () => {
  it.each([
    ['apigateway-v2-post-readings', 'http'],
    ['apigateway-v1-get-alerts', 'http'],
    ['sqs-test-messages', 'sqs'],
    ['sqs-from-sns', 'sqs'],
    ['sqs-from-eventbridge', 'sqs'],
    ['dynamodb-stream', 'dynamodb'],
    ['sns-notification', 'sns'],
    ['s3-object-created', 's3'],
    ['eventbridge-scheduled', 'eventbridge'],
    ['eventbridge-ec2-state-change', 'eventbridge'],
  ])('%s is %s', (name, kind) => {
    expect(classify(fixture(name))).toBe(kind);
  });

  it('knows a CloudEvent and nothing else', () => {
    expect(classify({ specversion: '1.0', id: '1', source: 's', type: 't' })).toBe('cloudevent');
    expect(classify({ hello: 'world' })).toBeUndefined();
    expect(classify({ Records: [{ eventSource: 'aws:kinesis' }] })).toBeUndefined();
    expect(classify('text')).toBeUndefined();
  });
});

describe('API Gateway requests', () => {
  const record = sensorsApp.function('record')!;

  it('reads an HTTP API (2.0) request: lower-case headers, repeated query values, JSON body', () => {
    const request = apiRequest(fixture<ApiGatewayEvent>('apigateway-v2-post-readings'));
    expect(request).toMatchObject({ method: 'POST', path: '/readings', query: { source: 'gateway', tag: ['a', 'b'] } });
    expect(request.headers['content-type']).toBe('application/json');
    expect(JSON.parse(Buffer.from(request.body!).toString())).toMatchObject({ deviceId: 'sensor-17', pm25: 150.4 });
  });

  it('reads a REST API (1.0) request: header names lowered, multi-value forms win', () => {
    const request = apiRequest(fixture<ApiGatewayEvent>('apigateway-v1-get-alerts'));
    expect(request).toMatchObject({ method: 'GET', path: '/alerts', query: { location: 'harbour' }, body: undefined });
    expect(request.headers.authorization).toBe('Bearer secret-token');
    expect(request.headers.host).toBe('70ixmpl4fl.execute-api.us-east-2.amazonaws.com');
  });

  it('builds the same event as the express ingress, without secret headers', () => {
    const v2 = fixture<APIGatewayProxyEventV2>('apigateway-v2-post-readings');
    const parts = routedRequest(apiRequest({ ...v2, rawPath: '/things/t%201' }), '/things/:id')!;
    const event = httpRequestEvent(sensorsApp, record, parts);
    expect(event).toMatchObject({ type: HTTP_REQUEST_TYPE, source: 'petrel/sensors/http', id: 'record:batch-0001', subject: '/things/t%201' });
    const data = event.data!;
    expect(data.params).toEqual({ id: 't 1' });
    expect(data.body).toMatchObject({ deviceId: 'sensor-17' });
    for (const secret of ['authorization', 'x-api-key', 'cookie']) expect(data.headers[secret]).toBeUndefined();
    expect(data.headers['user-agent']).toBe('curl/7.64.1');
  });

  it('drops a named stage from an HTTP API path and decodes base64 bodies', () => {
    const v2 = fixture<APIGatewayProxyEventV2>('apigateway-v2-post-readings');
    const staged = { ...v2, rawPath: '/prod/things/7', requestContext: { ...v2.requestContext, stage: 'prod' }, body: Buffer.from('{"a":1}').toString('base64'), isBase64Encoded: true };
    const request = apiRequest(staged);
    expect(request.path).toBe('/things/7');
    expect(Buffer.from(request.body!).toString()).toBe('{"a":1}');
  });


  it('answers 415 and 400 for bodies the ingress would refuse', () => {
    const parts = (body: string, type: string) => ({ method: 'POST', path: '/things/1', params: { id: '1' }, query: {}, headers: { 'content-type': type }, body: Buffer.from(body) });
    expect(() => httpRequestEvent(sensorsApp, record, parts('x', 'text/plain'))).toThrow(expect.objectContaining({ status: 415 }));
    expect(() => httpRequestEvent(sensorsApp, record, parts('{', 'application/json'))).toThrow(expect.objectContaining({ status: 400, message: expect.stringMatching(/not valid JSON/) }));
    expect(() => httpRequestEvent(sensorsApp, record, parts('"' + 'x'.repeat(300 * 1024) + '"', 'application/json'))).toThrow(expect.objectContaining({ status: 413 }));
  });
});

describe('queued messages', () => {
  it('takes an EventBridge event put by petrel back to the CloudEvent', () => {
    const event = { specversion: '1.0' as const, id: 'e-1', source: 'petrel/sensors/record', type: 'thing.recorded', time: '2026-11-28T10:00:00.250Z', data: { id: 'x' }, partitionkey: 'x' };
    const envelope = deliveredEvent(toPutEventsEntry(event), { id: 'eb-1', account: '123456789012', region: 'us-east-1' });
    expect(eventsFromMessage(JSON.stringify(envelope), 'm', context)).toEqual([event]);
  });

  it('takes an AWS service event from the EventBridge -> SQS sample', () => {
    const [record] = fixture<SQSEvent>('sqs-from-eventbridge').Records;
    expect(eventsFromMessage(record.body, 'm', context)).toEqual([
      expect.objectContaining({ id: '7bf73129-1428-4cd3-a780-95db273d1602', source: 'aws.ec2', type: 'EC2 Instance State-change Notification', data: { 'instance-id': 'i-abcd1111', state: 'pending' }, account: '123456789012', region: 'us-east-1' }),
    ]);
  });

  it('takes an SNS notification delivered to SQS', () => {
    const [record] = fixture<SQSEvent>('sqs-from-sns').Records;
    expect(eventsFromMessage(record.body, 'm', context)).toEqual([{
      specversion: '1.0', id: '22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324', source: 'arn:aws:sns:us-west-2:123456789012:MyTopic', type: 'com.amazonaws.sns.Notification',
      time: '2012-05-02T00:54:06.655Z', subject: 'My First Message', datacontenttype: 'text/plain', data: 'Hello world!',
    }]);
  });

  it('takes S3 notifications and a structured CloudEvent, and ignores the S3 test event', () => {
    expect(eventsFromMessage(JSON.stringify(fixture('s3-object-created')), 'm', context)).toHaveLength(1);
    expect(eventsFromMessage(JSON.stringify({ specversion: '1.0', id: 'c', source: 's', type: 't' }), 'm', context)).toEqual([{ specversion: '1.0', id: 'c', source: 's', type: 't' }]);
    expect(eventsFromMessage(JSON.stringify({ Service: 'Amazon S3', Event: 's3:TestEvent', Time: '2014-10-13T15:57:02.089Z', Bucket: 'example-bucket', RequestId: '5582815E1AEA5ADF', HostId: '8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE' }), 'm', context)).toEqual([]);
  });

  it.each([
    ['not JSON (the SQS sample body)', fixture<SQSEvent>('sqs-test-messages').Records[0].body, /SQS message 9 is not JSON/],
    ['JSON of no known shape', '{"hello":"world"}', /neither an EventBridge event, an SNS notification, an S3 event notification nor a CloudEvent/],
    ['an invalid CloudEvent', '{"specversion":"1.0","id":"","source":"s","type":"t"}', /holds an invalid CloudEvent: id is required/],
    ['over 256 KiB', JSON.stringify({ specversion: '1.0', id: '1', source: 's', type: 't', data: 'x'.repeat(262_144) }), /is \d+ bytes; at most 262144/],
  ])('rejects a body that is %s, naming the message', (_what, body, message) => {
    expect(() => eventsFromMessage(body, 'SQS message 9', context)).toThrow(MalformedRecordError);
    expect(() => eventsFromMessage(body, 'SQS message 9', context)).toThrow(message);
  });
});

describe('SNS, S3 and DynamoDB Streams', () => {
  it('maps the SNS sample per the CloudEvents SNS adapter, the topic as source', () => {
    const { Sns } = fixture<SNSEvent>('sns-notification').Records[0];
    expect(snsEvent(Sns, 'sns')).toEqual({
      specversion: '1.0', id: '95df01b4-ee98-5cb9-9903-4c221d41eb5e', source: 'arn:aws:sns:us-east-1:123456789012:sns-lambda', type: 'com.amazonaws.sns.Notification',
      time: '2019-01-02T12:45:07.000Z', subject: 'TestInvoke', datacontenttype: 'text/plain', data: 'Hello from SNS!',
    });
  });

  it('passes through a CloudEvent published on SNS, and JSON messages as JSON data', () => {
    const { Sns } = fixture<SNSEvent>('sns-notification').Records[0];
    const carried = { specversion: '1.0', id: 'ce-1', source: 'petrel/x', type: 'x.happened', data: { n: 1 } };
    expect(snsEvent({ ...Sns, Message: JSON.stringify(carried) }, 'sns')).toEqual(carried);
    expect(snsEvent({ ...Sns, Message: '{"n":2}' }, 'sns')).toMatchObject({ datacontenttype: 'application/json', data: { n: 2 } });
  });

  it('maps an ObjectCreated in an app bucket to petrel.object.created, decoding the key', () => {
    const [event] = s3Events(fixture<S3Event>('s3-object-created').Records, 's3', context);
    expect(event).toEqual({
      specversion: '1.0', id: 'EXAMPLE123456789.EXAMPLE123/5678abcdefghijklambdaisawesome/mnopqrstuvwxyzABCDEFGH', source: 'petrel/sensors/bucket/files',
      type: OBJECT_CREATED_TYPE, subject: 'test/key with space.csv', time: '1970-01-01T00:00:00.000Z', datacontenttype: 'application/json',
      data: { bucket: 'files', key: 'test/key with space.csv', size: 1024 },
    });
    expect(sensorsApp.function('fileArrived')!.pattern!.matches(event)).toBe(true);
  });

  it('maps other S3 events, and buckets of no app, per the CloudEvents S3 adapter', () => {
    const records = fixture<S3Event>('s3-object-created').Records;
    const [removed] = s3Events([{ ...records[0], eventName: 'ObjectRemoved:Delete' }], 's3', context);
    expect(removed).toMatchObject({ source: 'aws:s3.us-east-1.example-bucket', type: 'com.amazonaws.s3.ObjectRemoved:Delete', subject: 'test/key with space.csv', data: { eventName: 'ObjectRemoved:Delete' } });
    const [foreign] = s3Events(records, 's3', { ...context, bucketResource: () => undefined });
    expect(foreign.type).toBe('com.amazonaws.s3.ObjectCreated:Put');
  });

  it('maps DynamoDB Stream records with their images unmarshalled', () => {
    const [insert, modify, remove] = fixture<DynamoDBStreamEvent>('dynamodb-stream').Records.map(dynamoDbEvent);
    expect(insert).toEqual({
      specversion: '1.0', id: '1', source: 'arn:aws:dynamodb:us-west-2:123456789012:table/ExampleTableWithStream/stream/2015-06-27T00:48:05.899',
      type: 'com.amazonaws.dynamodb.INSERT', subject: '{"Id":101}', time: '2016-11-18T20:09:00.000Z', datacontenttype: 'application/json',
      data: { eventName: 'INSERT', keys: { Id: 101 }, newImage: { Message: 'New item!', Id: 101 } },
    });
    expect(modify.data).toEqual({ eventName: 'MODIFY', keys: { Id: 101 }, newImage: { Message: 'This item has changed', Id: 101 }, oldImage: { Message: 'New item!', Id: 101 } });
    expect(remove).toMatchObject({ type: 'com.amazonaws.dynamodb.REMOVE', data: { oldImage: { Message: 'This item has changed' } } });
    expect(() => dynamoDbEvent({ eventID: '9', eventName: 'INSERT', eventSourceARN: 'arn', dynamodb: { SequenceNumber: '9' } })).toThrow(/record 9 lacks/);
  });

  it('keeps DynamoDB sets and binary values as JSON', () => {
    const [record] = fixture<DynamoDBStreamEvent>('dynamodb-stream').Records;
    const event = dynamoDbEvent({ ...record, dynamodb: { ...record.dynamodb, NewImage: { Id: { N: '1' }, Tags: { SS: ['a', 'b'] }, Raw: { B: 'AAEC' } } } });
    expect((event.data as { newImage: unknown }).newImage).toEqual({ Id: 1, Tags: ['a', 'b'], Raw: 'AAEC' });
  });

  it('maps an AWS EventBridge sample without losing fields', () => {
    const scheduled = fixture<EventBridgeEnvelope>('eventbridge-scheduled');
    const [event] = eventsFromMessage(JSON.stringify(scheduled), 'm', context);
    expect(event).toMatchObject({ source: 'aws.events', type: 'Scheduled Event', resources: ['arn:aws:events:us-east-1:123456789012:rule/my-scheduled-rule'], account: '123456789012' });
  });
});
