/**
 * Lambda entrypoints: `createHandler(app, fn, services)` is the handler of one function. It takes
 * whatever reaches that function (API Gateway, SQS batches, DynamoDB Streams, SNS, S3,
 * EventBridge, a CloudEvent), picks the translation by the event's shape, runs each CloudEvent
 * through core/invoke, commits the outcome (dynamodb.ts) and publishes emitted events
 * (eventbridge.ts). Retries are the platform's: SQS redelivery (attempt = ApproximateReceiveCount,
 * backoff = the message's visibility timeout) and its redrive policy into the dead-letter queue;
 * Lambda's own retries for streams and asynchronous invocations. The petrel dead letter, with
 * every attempt, is recorded in DynamoDB either way.
 */
import { BatchProcessor, EventType, processPartialResponse, SqsFifoPartialProcessorAsync } from '@aws-lambda-powertools/batch';
import { Logger as PowertoolsLogger } from '@aws-lambda-powertools/logger';
import { MetricUnit, Metrics as PowertoolsMetrics } from '@aws-lambda-powertools/metrics';
import { scheduledEvent, type App, type AppFunction, type HttpResponse, type HttpTrigger } from '../../core/app.js';
import { backoffDelay, retryPolicy } from '../../core/delivery.js';
import { eventKey, newEventId, type CloudEvent } from '../../core/event.js';
import { HttpRequestError, httpRequestEvent, matchRoute } from '../../core/http.js';
import { failureOutcome, invoke, observeEmitted, type InvocationScope, type InvokeResult } from '../../core/invoke.js';
import { ConditionFailedError, type Logger, type Metrics, type Outcome } from '../../core/ports.js';
import { DEVICE_AUTH_CHALLENGE, DeviceAuth, deviceKeysFromEnv, NO_DEVICE_KEYS } from '../http/auth.js';
import type { DeadLetterAdmin } from '../http/types.js';
import type { DeliveryState, DynamoStore } from './dynamodb.js';
import type { S3Buckets } from './s3.js';
import {
  apiRequest,
  classify,
  directEvent,
  dynamoDbEvent,
  eventBridgeEvent,
  eventsFromMessage,
  MalformedRecordError,
  routedRequest,
  s3Events,
  snsEvent,
  type ApiGatewayEvent,
  type SourceContext,
} from './sources.js';
import type { APIGatewayProxyResult, DynamoDBRecord, DynamoDBStreamEvent, EventBridgeEnvelope, EventPublisher, LambdaContext, QueueControl, S3Event, SNSEvent, SQSEvent, SQSRecord } from './types.js';

/** What a function's handler is built from: only the services the function uses are needed. */
export interface HandlerOptions {
  /** DynamoDB: the app's tables and the delivery records; needed unless the function is http-triggered and uses no table. */
  store?: DynamoStore;
  buckets?: S3Buckets;
  /** EventBridge; needed when the function emits. */
  bus?: EventPublisher;
  /** SQS, to set a failed message's visibility timeout to its backoff. */
  queues?: QueueControl;
  logger?: Logger;
  metrics?: FlushableMetrics;
  /** Attempts Lambda makes at an asynchronous invocation (SNS, S3, EventBridge): 1 + the function's MaximumRetryAttempts. Default 3. */
  asyncAttempts?: number;
  /** Checks requests to http triggers marked `auth: 'device'`, as the express ingress does; default: keys from PETREL_API_KEYS(_FILE). */
  deviceAuth?: Pick<DeviceAuth, 'verify'>;
}

export interface FlushableMetrics extends Metrics {
  /** Called at the end of every invocation. */
  flush(): void;
}

export type LambdaHandler = (event: unknown, context?: LambdaContext) => Promise<unknown>;

/** Re-runs after losing a write race before the loss counts as a failed attempt (as on the embedded runtime). */
const MAX_CONFLICTS = 3;

type Delivery = { outcome: 'ok' | 'duplicate' | 'skipped' } | { outcome: 'retry'; retryInMs: number } | { outcome: 'dead' };

export function createHandler(app: App, fnName: string, options: HandlerOptions = {}): LambdaHandler {
  const found = app.function(fnName);
  if (!found) throw new Error(`app "${app.name}" has no function "${fnName}" (it has: ${app.functions.map((f) => f.name).join(', ')})`);
  const fn: AppFunction = found;
  const trigger = fn.spec.trigger;
  const { store, buckets, bus, queues } = options;
  const uses = Object.keys(fn.spec.uses).map((name) => app.resources[name].kind);
  const missing = [
    !store && (uses.includes('table') || trigger.kind !== 'http') && 'store (DynamoDB)',
    !buckets && uses.includes('bucket') && 'buckets (S3)',
    !bus && fn.emits.size > 0 && 'bus (EventBridge)',
  ].filter(Boolean);
  if (missing.length) throw new Error(`function "${fn.name}" needs ${missing.join(', ')} in createHandler's options`);
  const deviceAuth = trigger.kind === 'http' && trigger.auth === 'device' ? (options.deviceAuth ?? deviceAuthFromEnv()) : undefined;

  const powertools = options.logger ? undefined : new PowertoolsLogger({ serviceName: app.name, persistentKeys: { function: fn.name } });
  const log = options.logger ?? powertoolsLogger(powertools!);
  const metrics = options.metrics ?? new EmfMetrics(new PowertoolsMetrics({ namespace: 'petrel', serviceName: app.name, defaultDimensions: { function: fn.name } }));
  const sources: SourceContext = { appName: app.name, bucketResource: (physical) => buckets?.resourceOf(physical) };
  const asyncAttempts = options.asyncAttempts ?? 3;

  async function publishOutbox(key: string, events: CloudEvent[]): Promise<void> {
    if (events.length === 0) return;
    await bus!.publish(events);
    observeEmitted(metrics, events);
    await store!.clearOutbox(fn.name, key);
  }

  /** Finishes what an earlier delivery of the event left (intent, outbox); true when it was completed. */
  async function settled(state: DeliveryState, key: string, writer: string): Promise<boolean> {
    if (state.intent && !state.done) {
      try {
        await store!.finish(fn.name, key, state.intent, writer);
        state.done = true;
      } catch (error) {
        if (!(error instanceof ConditionFailedError)) throw error;
        log.warn({ err: error, key }, 'an interrupted commit lost its condition; running the handler again');
        state.intent = undefined;
        state.outbox = undefined;
        return false;
      }
    }
    if (!state.done) return false;
    await publishOutbox(key, state.outbox ?? []);
    return true;
  }

  /** One event through core/invoke, committed; `origin`: the queue it came from (for redrive). */
  async function deliver(event: CloudEvent, attempt: number | undefined, maxAttempts: number | undefined, origin?: string): Promise<Delivery> {
    if (fn.pattern && !fn.pattern.matches(event)) {
      log.debug({ eventId: event.id, type: event.type }, 'event does not match the function pattern; skipped');
      return { outcome: 'skipped' };
    }
    const key = eventKey(event);
    const writer = `${fn.name} ${key}`;
    const state = await store!.deliveryState(fn.name, key);
    if (state.dead) return { outcome: 'dead' };
    const current = attempt ?? state.attempts.length + 1;
    for (let conflicts = 0; ; conflicts++) {
      const session = store!.session();
      const scope: InvocationScope = {
        table: (name, spec) => session.table(name, spec),
        bucket: (name) => buckets!.bucket(name),
        completed: () => settled(state, key, writer),
      };
      let result: InvokeResult = await invoke({ app, fn, event, attempt: current, scope, log, metrics });
      if (result.outcome === 'duplicate') return { outcome: 'duplicate' };
      if (result.outcome === 'ok') {
        const emitted = result.emitted;
        try {
          if (emitted.length) bus!.check(emitted);
          if ((await store!.commit(session.planned(), writer, { fn: fn.name, key, outbox: emitted })) === 'duplicate') return { outcome: 'duplicate' };
        } catch (error) {
          if (error instanceof ConditionFailedError && conflicts < MAX_CONFLICTS) continue;
          result = failureOutcome(fn, current, error);
        }
        if (result.outcome === 'ok') {
          try {
            await publishOutbox(key, emitted);
          } catch (error) {
            // Committed: the outbox is published by the next delivery of this event; no attempt is spent.
            log.error({ err: error, eventId: event.id }, 'emitted events not published yet; they will be on redelivery');
            return { outcome: 'retry', retryInMs: backoffDelay(current, retryPolicy(fn.spec.retry)) };
          }
          return { outcome: 'ok' };
        }
      }
      if (result.outcome === 'retry' && result.error instanceof ConditionFailedError && conflicts < MAX_CONFLICTS) continue;
      if (result.outcome === 'retry' && (maxAttempts === undefined || current < maxAttempts)) {
        await store!.recordAttempt(fn.name, key, result.record);
        return { outcome: 'retry', retryInMs: result.retryInMs };
      }
      const attempts = [...state.attempts, result.record];
      await store!.putDeadLetter({ id: newEventId(), fn: fn.name, event, attempts, deadAt: new Date().toISOString() }, key, origin);
      log.error({ eventId: event.id, attempts: attempts.length, lastError: result.record.error }, 'event dead-lettered');
      return { outcome: 'dead' };
    }
  }

  async function sqsBatch(event: SQSEvent, context?: LambdaContext) {
    const handleRecord = async (record: SQSRecord) => {
      const failLater = async (seconds: number, error: Error) => {
        await queues?.retryAfter(record.eventSourceARN, record.receiptHandle, seconds).catch((e: unknown) => log.warn({ err: e }, 'could not set the visibility timeout'));
        throw error;
      };
      let events: CloudEvent[];
      try {
        events = eventsFromMessage(record.body, `SQS message ${record.messageId}`, sources);
      } catch (error) {
        log.error({ err: error, messageId: record.messageId }, 'malformed SQS message; it goes to the dead-letter queue after its receives');
        return failLater(0, error as Error);
      }
      const attempt = Number(record.attributes.ApproximateReceiveCount) || 1;
      for (const cloudEvent of events) {
        const delivery = await deliver(cloudEvent, attempt, undefined, record.eventSourceARN);
        if (delivery.outcome === 'retry') return failLater(delivery.retryInMs / 1000, new Error(`event ${cloudEvent.id}: attempt ${attempt} failed; retry in ${delivery.retryInMs} ms`));
        // Dead-lettered: failing fast until the redrive policy moves the message to the DLQ.
        if (delivery.outcome === 'dead') return failLater(0, new Error(`event ${cloudEvent.id} is dead-lettered`));
      }
    };
    if (fn.spec.ordered) {
      return processPartialResponse(event, handleRecord, new SqsFifoPartialProcessorAsync(), { context, throwOnFullBatchFailure: false, skipGroupOnError: true });
    }
    return processPartialResponse(event, handleRecord, new BatchProcessor(EventType.SQS), { context, throwOnFullBatchFailure: false });
  }

  async function streamBatch(event: DynamoDBStreamEvent, context?: LambdaContext) {
    const handleRecord = async (record: DynamoDBRecord) => {
      let cloudEvent: CloudEvent;
      try {
        cloudEvent = dynamoDbEvent(record);
      } catch (error) {
        // Retrying cannot fix it and would hold up the shard behind it: logged and passed.
        log.error({ err: error }, 'malformed DynamoDB Stream record skipped');
        return;
      }
      const delivery = await deliver(cloudEvent, undefined, undefined);
      if (delivery.outcome === 'retry') throw new Error(`event ${cloudEvent.id} failed; Lambda retries from this record`);
    };
    // In order: Lambda resumes a shard from the first failed record.
    return processPartialResponse(event, handleRecord, new BatchProcessor(EventType.DynamoDBStreams), { context, throwOnFullBatchFailure: false, processInParallel: false });
  }

  /** Asynchronous invocations: throwing makes Lambda invoke again (its retries), up to asyncAttempts. */
  async function asyncEvents(events: CloudEvent[]): Promise<void> {
    const failed: string[] = [];
    for (const cloudEvent of events) {
      const delivery = await deliver(cloudEvent, undefined, asyncAttempts);
      if (delivery.outcome === 'retry') failed.push(cloudEvent.id);
    }
    if (failed.length) throw new Error(`event(s) ${failed.join(', ')} failed; Lambda retries the invocation`);
  }

  function fromEventBridge(envelope: EventBridgeEnvelope): CloudEvent {
    // A scheduled rule's event becomes the schedule trigger's event, with the id of its period.
    if (trigger.kind === 'schedule' && envelope.source === 'aws.events' && envelope['detail-type'] === 'Scheduled Event') {
      return scheduledEvent(app.name, fn.name, trigger, Math.floor(Date.parse(envelope.time) / trigger.everyMs));
    }
    return eventBridgeEvent(envelope);
  }

  async function serveHttp(apiEvent: ApiGatewayEvent): Promise<APIGatewayProxyResult> {
    const route = trigger as HttpTrigger;
    try {
      const request = apiRequest(apiEvent);
      const parts = request.method.toUpperCase() === route.method ? routedRequest(request, route.path) : undefined;
      if (!parts) return apiResponse({ status: 404, body: { error: `no route for ${request.method} ${request.path}` } });
      if (route.auth === 'device') {
        const verdict = deviceAuth ? deviceAuth.verify(parts.headers, parts.body ?? new Uint8Array()) : { ok: false as const, reason: NO_DEVICE_KEYS };
        if (!verdict.ok) return apiResponse({ status: 401, headers: DEVICE_AUTH_CHALLENGE, body: { error: verdict.reason } });
      }
      const event = httpRequestEvent(app, fn, parts);
      for (let conflicts = 0; ; conflicts++) {
        const session = store?.session();
        const scope: InvocationScope = { table: (name, spec) => session!.table(name, spec), bucket: (name) => buckets!.bucket(name), completed: () => false };
        const result = await invoke({ app, fn, event, attempt: 1, scope, log, metrics });
        if (result.outcome !== 'ok') {
          const error = result.outcome === 'duplicate' ? 'Duplicate' : result.record.error.name;
          return apiResponse({ status: 500, body: { error: `function "${fn.name}" failed (${error}); see the server log`, eventId: event.id } });
        }
        try {
          if (result.emitted.length) bus!.check(result.emitted);
          if (session) await store!.commit(session.planned(), `${fn.name} ${eventKey(event)}`);
        } catch (error) {
          if (error instanceof ConditionFailedError && conflicts < MAX_CONFLICTS) continue;
          throw error;
        }
        // Accepted means durable: the answer waits for EventBridge to take the events.
        if (result.emitted.length) {
          await bus!.publish(result.emitted);
          observeEmitted(metrics, result.emitted);
        }
        return apiResponse(result.response ?? { status: result.emitted.length ? 202 : 200 });
      }
    } catch (error) {
      return errorResponse(error, log);
    }
  }

  return async (event: unknown, context?: LambdaContext) => {
    if (context) powertools?.addContext(context);
    try {
      switch (classify(event)) {
        case 'http':
          if (trigger.kind !== 'http') throw new MalformedRecordError(`function "${fn.name}" is not http-triggered; API Gateway must not route to it`);
          return await serveHttp(event as ApiGatewayEvent);
        case 'sqs':
          return await sqsBatch(event as SQSEvent, context);
        case 'dynamodb':
          return await streamBatch(event as DynamoDBStreamEvent, context);
        case 'sns':
          return await asyncEvents((event as SNSEvent).Records.map((r) => snsEvent(r.Sns, `SNS message ${r.Sns.MessageId}`)));
        case 's3':
          return await asyncEvents(s3Events((event as S3Event).Records, 'S3 event notification', sources));
        case 'eventbridge':
          return await asyncEvents([fromEventBridge(event as EventBridgeEnvelope)]);
        case 'cloudevent':
          return await asyncEvents([directEvent(event)]);
        default:
          throw new MalformedRecordError(`function "${fn.name}" got an event of no known shape (expected API Gateway, SQS, DynamoDB Streams, SNS, S3, EventBridge or a CloudEvent)`);
      }
    } catch (error) {
      if (error instanceof MalformedRecordError) log.error({ err: error }, 'invocation event rejected');
      throw error;
    } finally {
      metrics.flush();
    }
  };
}

/**
 * The dead-letter administration of the other targets (/admin/dead-letters...), behind API
 * Gateway: `petrel dlq list|show|redrive --url <api>` works against it. Deploy it behind an
 * authorizer; it lists events and can redrive them.
 */
export function createAdminHandler(deadLetters: DeadLetterAdmin, logger: Logger = powertoolsLogger(new PowertoolsLogger({ serviceName: 'petrel-admin' }))): LambdaHandler {
  return async (event: unknown) => {
    if (classify(event) !== 'http') throw new MalformedRecordError('the admin handler serves API Gateway requests only');
    try {
      const request = apiRequest(event as ApiGatewayEvent);
      const route = (method: string, template: string) => (request.method.toUpperCase() === method ? matchRoute(template, request.path) : undefined);
      const fnFilter = typeof request.query.function === 'string' ? request.query.function : undefined;
      let params: Record<string, string> | undefined;
      if (route('GET', '/admin/dead-letters')) return apiResponse({ body: await deadLetters.list(fnFilter) });
      if ((params = route('GET', '/admin/dead-letters/:id'))) {
        const letter = await deadLetters.get(params.id);
        return apiResponse(letter ? { body: letter } : { status: 404, body: { error: `no dead letter with id "${params.id}"` } });
      }
      if ((params = route('POST', '/admin/dead-letters/:id/redrive'))) {
        const redriven = await deadLetters.redrive(params.id);
        return apiResponse(redriven ? { body: { redriven: 1 } } : { status: 404, body: { error: `no dead letter with id "${params.id}"` } });
      }
      if (route('POST', '/admin/dead-letters-redrive')) return apiResponse({ body: { redriven: await deadLetters.redriveAll(fnFilter) } });
      return apiResponse({ status: 404, body: { error: `no route for ${request.method} ${request.path}` } });
    } catch (error) {
      return errorResponse(error, logger);
    }
  };
}

/** Device keys from the Lambda environment, as on every target; undefined (every request refused) without any. */
function deviceAuthFromEnv(): DeviceAuth | undefined {
  const configured = deviceKeysFromEnv();
  return configured && new DeviceAuth(configured.keys);
}

/** An HttpResponse as API Gateway takes it (payload 1.0 and 2.0 alike), JSON like the express ingress. */
function apiResponse(response: HttpResponse): APIGatewayProxyResult {
  return {
    statusCode: response.status ?? 200,
    headers: { ...(response.body === undefined ? {} : { 'content-type': 'application/json; charset=utf-8' }), ...response.headers },
    body: response.body === undefined ? '' : JSON.stringify(response.body),
    isBase64Encoded: false,
  };
}

/** JSON errors as the express ingress answers them: 4xx say what is wrong, 5xx details stay in the log. */
function errorResponse(error: unknown, log: Logger): APIGatewayProxyResult {
  const declared = (error as { status?: unknown }).status;
  const status = error instanceof HttpRequestError ? error.status : typeof declared === 'number' && declared >= 400 && declared < 600 ? declared : 500;
  if (status >= 500) {
    log.error({ err: error }, 'request failed');
    return apiResponse({ status, body: { error: 'internal error; see the server log' } });
  }
  return apiResponse({ status, body: { error: (error as Error).message } });
}

/** petrel's Logger (pino's shape) over the Powertools Logger (structured JSON for CloudWatch). */
export function powertoolsLogger(logger: PowertoolsLogger): Logger {
  const at = (level: 'debug' | 'info' | 'warn' | 'error') => (obj: object | string, msg?: string) => {
    if (typeof obj === 'string') logger[level](obj);
    else logger[level](msg ?? '', obj as Record<string, unknown>);
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: (bindings) => powertoolsLogger(logger.createChild({ persistentKeys: bindings })) };
}

/** petrel's Metrics as CloudWatch Embedded Metric Format (Powertools Metrics), flushed per invocation. */
export class EmfMetrics implements FlushableMetrics {
  constructor(readonly emf: PowertoolsMetrics) {}

  invoked(_fn: string, outcome: Outcome, durationMs: number): void {
    // The function is a default dimension: one handler serves one function.
    this.emf.addMetric(`invocations.${outcome}`, MetricUnit.Count, 1);
    this.emf.addMetric('duration', MetricUnit.Milliseconds, durationMs);
  }

  observeLatency(name: string, ms: number): void {
    this.emf.addMetric(`latency.${name}`, MetricUnit.Milliseconds, ms);
  }

  flush(): void {
    this.emf.publishStoredMetrics();
  }
}
