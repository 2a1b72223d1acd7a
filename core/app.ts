/**
 * The one description of an app: functions, what triggers them, what they emit, which resources
 * they use. Every target derives its wiring, queues, dead letters and permissions from it.
 *
 * @example
 * export default defineApp({
 *   name: 'hello',
 *   resources: { greetings: table({ partitionKey: 'name' }) },
 *   functions: {
 *     greet: fn({
 *       trigger: on({ type: ['hello.requested'] }),
 *       uses: { greetings: 'write' },
 *       emits: ['hello.sent'],
 *       handler: async (event, ctx) => {
 *         await ctx.tables.greetings.put({ name: String(event.data) });
 *         ctx.emit('hello.sent', { to: event.data });
 *       },
 *     }),
 *   },
 * });
 */
import { deriveEventId, type CloudEvent } from './event.js';
import type { RetryPolicy } from './delivery.js';
import type { Bucket, Logger, ReadBucket, ReadTable, Table } from './ports.js';
import { compilePattern, type CompiledPattern } from './pattern/index.js';

// ---- resources -------------------------------------------------------------------------------

export interface TableSpec {
  kind: 'table';
  /** Attribute holding the partition key (string or number). */
  partitionKey: string;
  /** Attribute holding the sort key; items in a partition are ordered by it. */
  sortKey?: string;
  /** Attribute holding an expiry time in epoch seconds; expired items are invisible and swept. */
  ttlAttribute?: string;
}

export interface BucketSpec {
  kind: 'bucket';
}

export type ResourceSpec = TableSpec | BucketSpec;

export function table(options: Omit<TableSpec, 'kind'>): TableSpec {
  return { kind: 'table', ...options };
}

export function bucket(): BucketSpec {
  return { kind: 'bucket' };
}

// ---- triggers --------------------------------------------------------------------------------

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface HttpTrigger {
  kind: 'http';
  method: HttpMethod;
  /** Express-style path, e.g. `/readings` or `/alerts/:id`. */
  path: string;
  /** `device`: the ingress admits only requests carrying a device API key or signature. */
  auth?: 'device';
}

export interface EventTrigger {
  kind: 'event';
  /** An EventBridge event pattern over the CloudEvent (attributes top level, payload under `data`). */
  pattern: Record<string, unknown>;
}

export interface ObjectCreatedTrigger {
  kind: 'objectCreated';
  bucket: string;
  prefix?: string;
  suffix?: string;
}

export interface ScheduleTrigger {
  kind: 'schedule';
  /** `rate(5 minutes)`, as in EventBridge Scheduler. */
  expression: string;
  /** The interval the expression denotes, in milliseconds. */
  everyMs: number;
}

export interface MqttTrigger {
  kind: 'mqtt';
  /** An MQTT topic filter: `/`-separated levels, `+` for one level, a trailing `#` for any rest. */
  topic: string;
}

export type Trigger = HttpTrigger | EventTrigger | ObjectCreatedTrigger | ScheduleTrigger | MqttTrigger;

export function http(method: HttpMethod, path: string, options: { auth?: 'device' } = {}): HttpTrigger {
  if (!path.startsWith('/')) throw new AppDefinitionError(`http trigger path must start with "/", got "${path}"`);
  // What every ingress can match (core/http.ts matchRoute): no wildcards or optional parts.
  for (const segment of path.split('/')) {
    if (/[*?{}()+]/.test(segment) || (segment.startsWith(':') && !/^:[A-Za-z_$][\w$]*$/.test(segment))) {
      throw new AppDefinitionError(`http trigger path "${path}": only literal segments and ":name" parameters are supported`);
    }
  }
  if (options.auth !== undefined && options.auth !== 'device') throw new AppDefinitionError(`http trigger auth must be "device", got "${String(options.auth)}"`);
  return { kind: 'http', method, path, ...(options.auth ? { auth: options.auth } : {}) };
}

/**
 * Messages published on MQTT topics matching `topicFilter` (MQTT 3.1.1 section 4.7). A bridge
 * subscribes to the app's filters and delivers each message as a `petrel.mqtt.message` CloudEvent
 * whose subject is the topic and whose `data.filters` lists the app's filters the topic matches,
 * so routing is exact on every target (an EventBridge wildcard cannot say "one level").
 */
export function mqtt(topicFilter: string): MqttTrigger {
  const levels = topicFilter.split('/');
  const problem = topicFilter === '' ? 'is empty'
    : topicFilter.includes('\0') ? 'contains a NUL character'
      : levels.some((l, i) => (l.includes('#') && (l !== '#' || i !== levels.length - 1)) || (l.includes('+') && l !== '+')) ? 'uses a wildcard wrongly: "+" must be a whole level and "#" the whole last level'
        : undefined;
  if (problem) throw new AppDefinitionError(`mqtt topic filter "${topicFilter}" ${problem}`);
  return { kind: 'mqtt', topic: topicFilter };
}

/** Does an MQTT topic match a topic filter? (`+` one level, `#` the rest, `$` topics only by name.) */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  if (t[0].startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length || (f[i] !== '+' && f[i] !== t[i])) return false;
  }
  return f.length === t.length;
}

/** The `data` of a `petrel.mqtt.message` event. */
export interface MqttMessageData {
  topic: string;
  /** The app's topic filters this topic matches (what mqtt triggers route by). */
  filters: string[];
  /** The payload as UTF-8 text; absent when it is not valid UTF-8 (then payloadBase64 is set). */
  payload?: string;
  payloadBase64?: string;
  qos: number;
  retain: boolean;
}

export function on(pattern: Record<string, unknown>): EventTrigger {
  compilePattern(pattern); // fail at definition time, naming the bad part of the pattern
  return { kind: 'event', pattern };
}

export function objectCreated(bucketName: string, filter: { prefix?: string; suffix?: string } = {}): ObjectCreatedTrigger {
  return { kind: 'objectCreated', bucket: bucketName, ...filter };
}

const RATE = /^rate\((\d+) (second|seconds|minute|minutes|hour|hours|day|days)\)$/;
const UNIT_MS: Record<string, number> = { second: 1000, minute: 60_000, hour: 3_600_000, day: 86_400_000 };

export function schedule(expression: string): ScheduleTrigger {
  const match = RATE.exec(expression.trim());
  if (!match || Number(match[1]) < 1) {
    throw new AppDefinitionError(`schedule "${expression}" is not supported: use rate(<n> <seconds|minutes|hours|days>), e.g. rate(5 minutes)`);
  }
  return { kind: 'schedule', expression, everyMs: Number(match[1]) * UNIT_MS[match[2].replace(/s$/, '')] };
}

/**
 * The event a schedule trigger fires for one period (epoch ms / everyMs). Its id is derived from
 * the period, so every process and every restart fires the same event, deduplicated downstream.
 */
export function scheduledEvent(appName: string, fnName: string, trigger: ScheduleTrigger, period: number): CloudEvent {
  const id = deriveEventId(`${appName}:schedule`, fnName, period);
  const time = new Date(period * trigger.everyMs).toISOString();
  return { specversion: '1.0', id, source: `petrel/${appName}/schedule`, type: SCHEDULE_TYPE, subject: fnName, time, data: { expression: trigger.expression } };
}

/** CloudEvent types the runtime itself produces for object and schedule triggers. */
export const OBJECT_CREATED_TYPE = 'petrel.object.created';
export const SCHEDULE_TYPE = 'petrel.schedule.fired';
export const HTTP_REQUEST_TYPE = 'petrel.http.request';
export const MQTT_MESSAGE_TYPE = 'petrel.mqtt.message';

/** The event pattern a trigger routes by, on every target (http triggers are routed by path). */
export function triggerPattern(trigger: Trigger, fnName: string): Record<string, unknown> | undefined {
  switch (trigger.kind) {
    case 'event':
      return trigger.pattern;
    case 'objectCreated': {
      // Values in a pattern list are alternatives; both filters together need one wildcard.
      const escape = (s: string) => s.replace(/[\\*]/g, '\\$&');
      const { prefix, suffix } = trigger;
      const key = prefix && suffix ? [{ wildcard: `${escape(prefix)}*${escape(suffix)}` }] : prefix ? [{ prefix }] : suffix ? [{ suffix }] : undefined;
      return { type: [OBJECT_CREATED_TYPE], data: { bucket: [trigger.bucket], ...(key ? { key } : {}) } };
    }
    case 'schedule':
      return { type: [SCHEDULE_TYPE], subject: [fnName] };
    case 'mqtt':
      return { type: [MQTT_MESSAGE_TYPE], data: { filters: [trigger.topic] } };
    case 'http':
      return undefined;
  }
}

// ---- functions -------------------------------------------------------------------------------

export type Access = 'read' | 'write';

/** The `data` of the event an http-triggered handler receives. */
export interface HttpRequestData {
  method: string;
  path: string;
  params: Record<string, string>;
  query: Record<string, unknown>;
  /** Request headers, minus those that may carry secrets (authorization, cookie, x-api-key). */
  headers: Record<string, string>;
  /** The parsed JSON body, if any. */
  body?: unknown;
}

export interface HttpResponse {
  status?: number;
  headers?: Record<string, string>;
  body?: unknown;
}

/** Per-emit options. */
export interface EmitOptions {
  subject?: string;
  partitionkey?: string;
  /** Defaults to `petrel/<app>/<function>`. */
  source?: string;
}

export interface Context<U extends Record<string, Access> = Record<string, Access>> {
  /** The function's name in the app. */
  fn: string;
  /** Tables granted by `uses`; read-only ones reject writes. */
  tables: { [K in keyof U]: U[K] extends 'write' ? Table : ReadTable };
  buckets: { [K in keyof U]: U[K] extends 'write' ? Bucket : ReadBucket };
  /** Queues an event; it is published only if the handler succeeds, with an id derived from the input. */
  emit(type: string, data: unknown, options?: EmitOptions): void;
  log: Logger;
  /** 1 on first delivery. */
  attempt: number;
  /** Epoch milliseconds after which the invocation is abandoned. */
  deadline: number;
  /** Aborted when the deadline passes or the runtime shuts down. */
  signal: AbortSignal;
}

export type Handler<U extends Record<string, Access>, D = unknown> = (
  event: CloudEvent<D>,
  ctx: Context<U>,
) => Promise<HttpResponse | void> | HttpResponse | void;

export interface FunctionOptions<U extends Record<string, Access>, D = unknown> {
  trigger: Trigger;
  uses?: U;
  emits?: string[];
  retry?: Partial<RetryPolicy>;
  /** Per-invocation timeout; default 30 s. */
  timeoutMs?: number;
  /** Invocations of this function at once; default 16. */
  concurrency?: number;
  /**
   * Deliver events with the same `partitionkey` one at a time, in order (each sees the table
   * writes of the ones before it). Partitions run side by side, so events of different keys may
   * be handled in another order than they arrived; the embedded runtime runs a busy partition's
   * waiting events back to back and commits them together, so one key can run up to 100 events
   * ahead of another.
   */
  ordered?: boolean;
  handler: Handler<U, D>;
}

export interface FunctionSpec<U extends Record<string, Access> = Record<string, Access>, D = unknown>
  extends Required<Pick<FunctionOptions<U, D>, 'trigger' | 'handler' | 'timeoutMs' | 'concurrency' | 'ordered'>> {
  uses: U;
  emits: string[];
  retry: Partial<RetryPolicy>;
}

export function fn<U extends Record<string, Access> = Record<never, Access>, D = unknown>(
  options: FunctionOptions<U, D>,
): FunctionSpec<NoInfer<U>, NoInfer<D>> {
  return {
    uses: {} as U,
    emits: [],
    retry: {},
    timeoutMs: 30_000,
    concurrency: 16,
    ordered: false,
    ...options,
  };
}

// ---- the app ---------------------------------------------------------------------------------

export interface AppOptions {
  name: string;
  resources?: Record<string, ResourceSpec>;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- each function has its own `uses` type
  functions: Record<string, FunctionSpec<any, any>>;
}

/** A function with everything a runtime needs precomputed. */
export interface AppFunction {
  name: string;
  spec: FunctionSpec;
  /** Compiled routing pattern; undefined for http triggers. */
  pattern?: CompiledPattern;
  emits: ReadonlySet<string>;
}

export interface App {
  name: string;
  resources: Record<string, ResourceSpec>;
  functions: AppFunction[];
  function(name: string): AppFunction | undefined;
}

export class AppDefinitionError extends Error {
  override name = 'AppDefinitionError';
}

const FUNCTION_NAME = /^[a-z][a-zA-Z0-9-]{0,62}$/;

/** Validates the description once, so every target can trust it. */
export function defineApp(options: AppOptions): App {
  if (!/^[a-z][a-z0-9-]{0,39}$/.test(options.name)) {
    throw new AppDefinitionError(`app name "${options.name}" must be 1-40 lower-case letters, digits or dashes, starting with a letter`);
  }
  const resources = options.resources ?? {};
  const functions: AppFunction[] = [];
  const routes = new Set<string>();
  for (const [name, spec] of Object.entries(options.functions)) {
    if (!FUNCTION_NAME.test(name)) throw new AppDefinitionError(`function name "${name}" must start with a lower-case letter and hold only letters, digits and dashes`);
    for (const [resource, access] of Object.entries(spec.uses as Record<string, Access>)) {
      if (!resources[resource]) throw new AppDefinitionError(`function "${name}" uses "${resource}", which is not among the app's resources (${Object.keys(resources).join(', ') || 'none'})`);
      if (access !== 'read' && access !== 'write') throw new AppDefinitionError(`function "${name}": access to "${resource}" must be "read" or "write"`);
    }
    const trigger = spec.trigger as Trigger;
    if (trigger.kind === 'objectCreated' && resources[trigger.bucket]?.kind !== 'bucket') {
      throw new AppDefinitionError(`function "${name}" is triggered by objects created in "${trigger.bucket}", which is not a bucket of the app`);
    }
    if (trigger.kind === 'http') {
      const route = `${trigger.method} ${trigger.path}`;
      if (routes.has(route)) throw new AppDefinitionError(`two functions serve ${route}`);
      routes.add(route);
    }
    if (spec.concurrency < 1 || !Number.isInteger(spec.concurrency)) throw new AppDefinitionError(`function "${name}": concurrency must be a positive integer`);
    if (spec.timeoutMs <= 0) throw new AppDefinitionError(`function "${name}": timeoutMs must be positive`);
    const pattern = triggerPattern(trigger, name);
    functions.push({
      name,
      spec: spec as FunctionSpec,
      pattern: pattern ? compilePattern(pattern) : undefined,
      emits: new Set(spec.emits),
    });
  }
  const byName = new Map(functions.map((f) => [f.name, f]));
  return { name: options.name, resources, functions, function: (name) => byName.get(name) };
}

/** Is this value an App made by defineApp (for loaders of user modules)? */
export function isApp(value: unknown): value is App {
  return typeof value === 'object' && value !== null && Array.isArray((value as App).functions) && typeof (value as App).function === 'function';
}
