/**
 * AWS types the adapter speaks: the Lambda event shapes (from @types/aws-lambda), the EventBridge
 * envelope and PutEvents entry, and the service ports a handler is built from.
 */
import type { PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import type { CloudEvent } from '../../core/event.js';

export type {
  APIGatewayProxyEvent,
  APIGatewayProxyEventV2,
  APIGatewayProxyResult,
  Context as LambdaContext,
  DynamoDBRecord,
  DynamoDBStreamEvent,
  S3Event,
  S3EventRecord,
  SNSEvent,
  SNSMessage,
  SQSBatchResponse,
  SQSEvent,
  SQSRecord,
} from 'aws-lambda';

export type PutEventsEntry = PutEventsRequestEntry;

/** An event as EventBridge delivers it to a rule's target (Lambda, or an SQS queue's message body). */
export interface EventBridgeEnvelope {
  version: string;
  id: string;
  'detail-type': string;
  source: string;
  account: string;
  time: string;
  region: string;
  resources: string[];
  detail: unknown;
  /** Present on replayed events; other fields may appear on events petrel did not put. */
  [field: string]: unknown;
}

/** An SNS notification as it reaches SQS (raw delivery off) or an HTTP endpoint. */
export interface SnsNotification {
  Type: string;
  MessageId: string;
  TopicArn: string;
  Subject?: string | null;
  Message: string;
  Timestamp: string;
  [field: string]: unknown;
}

/** EventBridge as a handler publishes to it. */
export interface EventPublisher {
  /** Throws a PermanentError naming the event if one of them cannot be published (too large, unmappable). */
  check(events: CloudEvent[]): void;
  /** Resolves once EventBridge accepted every event; retries failed entries with backoff, then rejects. */
  publish(events: CloudEvent[]): Promise<void>;
}

/** SQS as a handler controls its source queue. */
export interface QueueControl {
  /** Makes a received message visible again after `seconds` (the retry backoff). */
  retryAfter(queueArn: string, receiptHandle: string, seconds: number): Promise<void>;
  /** Sends a message to the queue with this ARN (dead-letter redrive). */
  send(queueArn: string, body: string): Promise<void>;
}

/** Physical names of the app's AWS resources. */
export interface AwsNames {
  table(resource: string): string;
  bucket(resource: string): string;
  /** The DynamoDB table holding completion records, attempt histories and dead letters. */
  deliveryTable: string;
  eventBus: string;
}
