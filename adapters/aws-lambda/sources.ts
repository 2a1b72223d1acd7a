/**
 * AWS events -> what petrel runs: API Gateway requests (REST v1, HTTP API v2) -> request parts
 * for core/http; SQS message bodies, SNS notifications, S3 notifications and DynamoDB Stream
 * records -> CloudEvents. Foreign shapes follow the CloudEvents adapter specs where they exist
 * (cloudevents/spec adapters/aws-s3.md, aws-sns.md); every error names the record and the problem.
 */
import { parse as parseQuery } from 'node:querystring';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { OBJECT_CREATED_TYPE } from '../../core/app.js';
import { PermanentError } from '../../core/delivery.js';
import { cloudEventProblems, type CloudEvent } from '../../core/event.js';
import { BODY_LIMIT, matchRoute, type HttpRequestParts } from '../../core/http.js';
import { fromEventBridgeEvent } from './mapping.js';
import type { APIGatewayProxyEvent, APIGatewayProxyEventV2, DynamoDBRecord, EventBridgeEnvelope, S3EventRecord, SnsNotification } from './types.js';

/** A record that can never become a CloudEvent: only it fails, and retrying cannot help. */
export class MalformedRecordError extends PermanentError {
  override name = 'MalformedRecordError';
}

export type LambdaEventKind = 'http' | 'sqs' | 'dynamodb' | 'sns' | 's3' | 'eventbridge' | 'cloudevent';

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Which source an invocation event comes from, by its shape; undefined when none fits. */
export function classify(event: unknown): LambdaEventKind | undefined {
  if (!isObject(event)) return undefined;
  if (Array.isArray(event.Records) && isObject(event.Records[0])) {
    const first = event.Records[0];
    if (first.eventSource === 'aws:sqs') return 'sqs';
    if (first.eventSource === 'aws:dynamodb') return 'dynamodb';
    if (first.eventSource === 'aws:s3') return 's3';
    if (first.EventSource === 'aws:sns') return 'sns';
    return undefined;
  }
  if (isObject(event.requestContext) && (typeof event.httpMethod === 'string' || typeof event.rawPath === 'string')) return 'http';
  if (isEventBridgeEnvelope(event)) return 'eventbridge';
  if (event.specversion !== undefined) return 'cloudevent';
  return undefined;
}

function isEventBridgeEnvelope(value: Json): value is EventBridgeEnvelope {
  return typeof value['detail-type'] === 'string' && typeof value.source === 'string' && typeof value.id === 'string';
}

// ---- API Gateway ------------------------------------------------------------------------------

export type ApiGatewayEvent = APIGatewayProxyEvent | APIGatewayProxyEventV2;

export interface ApiRequest {
  method: string;
  path: string;
  query: Record<string, unknown>;
  headers: Record<string, string>;
  body?: Uint8Array;
}

/** The request an API Gateway proxy event carries (payload format 1.0 or 2.0). */
export function apiRequest(event: ApiGatewayEvent): ApiRequest {
  const body = event.body ? Buffer.from(event.body, event.isBase64Encoded ? 'base64' : 'utf8') : undefined;
  const headers: Record<string, string> = {};
  if ('rawPath' in event) {
    // 2.0: names are lower case, repeated headers and query values are already comma-joined.
    for (const [name, value] of Object.entries(event.headers ?? {})) if (value !== undefined) headers[name.toLowerCase()] = value;
    const { stage, http } = event.requestContext;
    // rawPath starts with the stage's name unless the stage is $default.
    const prefix = `/${stage}`;
    const staged = stage !== '$default' && (event.rawPath === prefix || event.rawPath.startsWith(`${prefix}/`));
    const path = staged ? event.rawPath.slice(prefix.length) || '/' : event.rawPath;
    return { method: http.method, path, query: { ...parseQuery(event.rawQueryString ?? '') }, headers, body };
  }
  // 1.0: the multi-value forms hold every value; names keep the client's case.
  const multi = event.multiValueHeaders ?? {};
  for (const [name, value] of Object.entries(event.headers ?? {})) if (value !== undefined) headers[name.toLowerCase()] = value;
  for (const [name, values] of Object.entries(multi)) if (values?.length) headers[name.toLowerCase()] = values.join(', ');
  const query: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(event.queryStringParameters ?? {})) if (value !== undefined) query[name] = value;
  for (const [name, values] of Object.entries(event.multiValueQueryStringParameters ?? {})) {
    if (values?.length) query[name] = values.length === 1 ? values[0] : values;
  }
  return { method: event.httpMethod, path: event.path, query, headers, body };
}


/** The parts core/http turns into the handler's event; undefined when the route does not match. */
export function routedRequest(request: ApiRequest, template: string): HttpRequestParts | undefined {
  const params = matchRoute(template, request.path);
  return params && { ...request, params };
}

// ---- messages ---------------------------------------------------------------------------------

/** How S3 bucket names map back to the app's bucket resources. */
export interface SourceContext {
  appName: string;
  /** The app's name for a physical bucket, if it is one of the app's. */
  bucketResource(physicalName: string): string | undefined;
}

function validated(event: unknown, where: string): CloudEvent {
  const problems = cloudEventProblems(event);
  if (problems.length) throw new MalformedRecordError(`${where} holds an invalid CloudEvent: ${problems.join('; ')}`);
  return event as CloudEvent;
}

/**
 * The CloudEvents in a queued message body: an EventBridge event (a rule's SQS target), an SNS
 * notification (raw delivery off), an S3 event notification, or a CloudEvent (structured JSON).
 */
export function eventsFromMessage(body: string, where: string, context: SourceContext): CloudEvent[] {
  const size = Buffer.byteLength(body, 'utf8');
  if (size > BODY_LIMIT) throw new MalformedRecordError(`${where} is ${size} bytes; at most ${BODY_LIMIT} (256 KiB, EventBridge's event limit) are accepted`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch (error) {
    throw new MalformedRecordError(`${where} is not JSON: ${(error as Error).message}`);
  }
  if (isObject(parsed)) {
    if (isEventBridgeEnvelope(parsed)) return [validated(fromEventBridgeEvent(parsed), where)];
    if (parsed.Type === 'Notification' && typeof parsed.TopicArn === 'string') return [snsEvent(parsed as SnsNotification, where)];
    if (Array.isArray(parsed.Records)) return s3Events(parsed.Records as S3EventRecord[], where, context);
    // S3 sends this once when a notification is configured; it carries no object.
    if (parsed.Event === 's3:TestEvent') return [];
    if (parsed.specversion !== undefined) return [validated(parsed, where)];
  }
  throw new MalformedRecordError(`${where} is neither an EventBridge event, an SNS notification, an S3 event notification nor a CloudEvent`);
}

/** An SNS notification: the CloudEvent it carries, else one per the CloudEvents SNS adapter (source: the topic). */
export function snsEvent(message: Pick<SnsNotification, 'Type' | 'MessageId' | 'TopicArn' | 'Message' | 'Timestamp' | 'Subject'>, where: string): CloudEvent {
  let data: unknown = message.Message;
  let json = false;
  try {
    data = JSON.parse(message.Message);
    json = true;
  } catch {
    // Not JSON: the message is text.
  }
  if (isObject(data) && data.specversion !== undefined) return validated(data, where);
  return validated({
    specversion: '1.0',
    id: message.MessageId,
    source: message.TopicArn,
    type: `com.amazonaws.sns.${message.Type}`,
    time: message.Timestamp,
    ...(typeof message.Subject === 'string' && message.Subject ? { subject: message.Subject } : {}),
    datacontenttype: json ? 'application/json' : 'text/plain',
    data: json ? data : message.Message,
  }, where);
}

/**
 * S3 event notification records. ObjectCreated in one of the app's buckets becomes
 * `petrel.object.created` (what objectCreated triggers match, as on every target); anything else
 * follows the CloudEvents S3 adapter (type `com.amazonaws.s3.<eventName>`, data: the record).
 */
export function s3Events(records: S3EventRecord[], where: string, context: SourceContext): CloudEvent[] {
  return records.map((record, index) => {
    if (!isObject(record) || record.eventSource !== 'aws:s3' || !isObject(record.s3) || typeof record.s3.object?.key !== 'string') {
      throw new MalformedRecordError(`${where}: record ${index} is not an S3 event notification record`);
    }
    const bucket = record.s3.bucket.name;
    let key: string;
    try {
      // Keys arrive URL-encoded, with "+" for a space.
      key = decodeURIComponent(record.s3.object.key.replace(/\+/g, ' '));
    } catch {
      throw new MalformedRecordError(`${where}: record ${index} has an object key that is not valid URL encoding`);
    }
    const id = `${record.responseElements['x-amz-request-id']}.${record.responseElements['x-amz-id-2']}`;
    const resource = context.bucketResource(bucket);
    if (resource && record.eventName.startsWith('ObjectCreated:')) {
      return validated({
        specversion: '1.0', id, source: `petrel/${context.appName}/bucket/${resource}`, type: OBJECT_CREATED_TYPE, subject: key, time: record.eventTime,
        datacontenttype: 'application/json', data: { bucket: resource, key, size: record.s3.object.size },
      }, where);
    }
    return validated({
      specversion: '1.0', id, source: `${record.eventSource}.${record.awsRegion}.${bucket}`, type: `com.amazonaws.s3.${record.eventName}`, subject: key,
      time: record.eventTime, datacontenttype: 'application/json', data: record,
    }, where);
  });
}

/** A DynamoDB Stream record: type `com.amazonaws.dynamodb.<INSERT|MODIFY|REMOVE>`, source the stream, data the unmarshalled images. */
export function dynamoDbEvent(record: DynamoDBRecord): CloudEvent {
  const where = `DynamoDB Stream record ${record.dynamodb?.SequenceNumber ?? record.eventID ?? '(no sequence number)'}`;
  if (!record.eventID || !record.eventName || !record.eventSourceARN || !record.dynamodb?.Keys) {
    throw new MalformedRecordError(`${where} lacks eventID, eventName, eventSourceARN or dynamodb.Keys`);
  }
  const image = (value: unknown) => (value ? unmarshall(value as Parameters<typeof unmarshall>[0]) : undefined);
  let data: Json;
  try {
    data = { eventName: record.eventName, keys: image(record.dynamodb.Keys), newImage: image(record.dynamodb.NewImage), oldImage: image(record.dynamodb.OldImage) };
  } catch (error) {
    throw new MalformedRecordError(`${where} holds an attribute value that cannot be read: ${(error as Error).message}`);
  }
  const created = record.dynamodb.ApproximateCreationDateTime;
  return validated({
    specversion: '1.0',
    id: record.eventID,
    source: record.eventSourceARN,
    type: `com.amazonaws.dynamodb.${record.eventName}`,
    subject: JSON.stringify(data.keys),
    ...(created ? { time: new Date(created * 1000).toISOString() } : {}),
    datacontenttype: 'application/json',
    data: JSON.parse(JSON.stringify(data, jsonValue)) as Json,
  }, where);
}

/** DynamoDB sets and binary values as JSON: arrays, and base64 text. */
function jsonValue(_key: string, value: unknown): unknown {
  if (value instanceof Set) return [...value];
  if (ArrayBuffer.isView(value)) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
  return value;
}

/** An EventBridge event delivered straight to Lambda (a rule's Lambda target). */
export function eventBridgeEvent(envelope: EventBridgeEnvelope): CloudEvent {
  return validated(fromEventBridgeEvent(envelope), `EventBridge event ${envelope.id}`);
}

/** A CloudEvent invoked directly (structured JSON as the invocation payload). */
export function directEvent(event: unknown): CloudEvent {
  return validated(event, 'the invocation payload');
}
