export { createHandler, createAdminHandler, EmfMetrics, powertoolsLogger, type HandlerOptions, type LambdaHandler } from './handler.js';
export { toPutEventsEntry, fromEventBridgeEvent, translatePattern, deliveredEvent, ATTRIBUTES_KEY } from './mapping.js';
export { DynamoStore, DynamoDeadLetters, tableDefinitions, type DynamoStoreOptions } from './dynamodb.js';
export { EventBridgePublisher, PublishError, type EventBridgePublisherOptions } from './eventbridge.js';
export { S3Buckets } from './s3.js';
export { SqsQueues } from './sqs.js';
export { awsNames } from './names.js';
export type { AwsNames, EventBridgeEnvelope, EventPublisher, QueueControl, PutEventsEntry } from './types.js';
