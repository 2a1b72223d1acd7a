/** What handlers and apps import: the app description, the handler contract, delivery errors. */
export { defineApp, fn, http, on, objectCreated, schedule, mqtt, topicMatches, table, bucket, AppDefinitionError, OBJECT_CREATED_TYPE, SCHEDULE_TYPE, HTTP_REQUEST_TYPE, MQTT_MESSAGE_TYPE } from './app.js';
export type { App, AppFunction, Context, EmitOptions, FunctionSpec, Handler, HttpRequestData, HttpResponse, MqttMessageData, ResourceSpec, TableSpec, BucketSpec, Trigger } from './app.js';
export { PermanentError, TimeoutError } from './delivery.js';
export type { CloudEvent } from './event.js';
export { ConditionFailedError, AccessError } from './ports.js';
export type { Table, ReadTable, Bucket, ReadBucket, Item, Logger, QueryOptions, PutOptions } from './ports.js';
