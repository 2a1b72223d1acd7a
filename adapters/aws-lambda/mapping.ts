/**
 * The one mapping between a CloudEvent and Amazon EventBridge, and of petrel patterns onto it.
 *
 * CloudEvent -> PutEvents entry (and so the event EventBridge delivers):
 *
 * | EventBridge       | CloudEvent                                                              |
 * | ----------------- | ----------------------------------------------------------------------- |
 * | `source`          | `source`                                                                |
 * | `detail-type`     | `type`                                                                  |
 * | `time`            | `time`, to the second (EventBridge's precision; the exact value is in `ce`) |
 * | `resources`       | the `resources` extension, a list of strings (none: `[]`)               |
 * | `detail.data`     | `data` (absent when the event has none)                                 |
 * | `detail.ce`       | every other attribute and extension, by name: `specversion`, `id`, `time`, `subject`, `datacontenttype`, `dataschema`, `partitionkey`, `traceparent`, `causationid`, `ingesttime`, ..., and `data_base64` |
 *
 * EventBridge's own `id`, `account`, `region` and `version` are not part of the event: the
 * inverse takes every attribute from `detail.ce`, so inverse(forward(e)) = e (an empty
 * `resources` list is the same as none). An event petrel did not put (an AWS service event: its
 * detail has no `ce`) becomes `{ id, source, type: detail-type, time, data: detail, resources }`
 * plus every other envelope field: as an extension of its own name when that is a CloudEvents
 * attribute name (account, region, version), else by its name inside the `awsenvelope` extension
 * (`replay-name`), so no two fields ever land on one name.
 *
 * Patterns: petrel patterns are over the CloudEvent (attributes top level, payload under `data`);
 * `translatePattern` rewrites one over the EventBridge event by the same table: `source` and
 * `resources` stay, `type` becomes `detail-type`, `data` moves under `detail`, every other
 * attribute `a` becomes `detail.ce.a`; `$or` branches are rewritten alike. Matchers are untouched,
 * so a translated pattern matches the delivered event exactly when the original matches the
 * CloudEvent.
 */
import type { CloudEvent } from '../../core/event.js';
import { compilePattern } from '../../core/pattern/index.js';
import type { EventBridgeEnvelope, PutEventsEntry } from './types.js';

/** Where the attributes other than source, type and data travel in `detail`. */
export const ATTRIBUTES_KEY = 'ce';

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function resourcesOf(event: CloudEvent): string[] | undefined {
  const { resources } = event;
  if (resources === undefined) return undefined;
  if (!Array.isArray(resources) || resources.some((r) => typeof r !== 'string')) {
    throw new TypeError(`event ${event.id}: the "resources" extension must be a list of strings (it becomes the EventBridge resources field)`);
  }
  return resources.length ? (resources as string[]) : undefined;
}

/** The PutEvents entry for a CloudEvent. */
export function toPutEventsEntry(event: CloudEvent, eventBusName?: string): PutEventsEntry {
  const { source, type, data, resources: _resources, ...attributes } = event;
  const resources = resourcesOf(event);
  const detail = data === undefined ? { [ATTRIBUTES_KEY]: attributes } : { data, [ATTRIBUTES_KEY]: attributes };
  return {
    Source: source,
    DetailType: type,
    Detail: JSON.stringify(detail),
    ...(event.time ? { Time: new Date(event.time) } : {}),
    ...(resources ? { Resources: resources } : {}),
    ...(eventBusName ? { EventBusName: eventBusName } : {}),
  };
}

/** The CloudEvent an EventBridge event carries (see the table above). */
export function fromEventBridgeEvent(envelope: EventBridgeEnvelope): CloudEvent {
  const { detail, source } = envelope;
  const type = envelope['detail-type'];
  const resources = Array.isArray(envelope.resources) && envelope.resources.length ? { resources: envelope.resources } : {};
  if (isObject(detail) && isObject(detail[ATTRIBUTES_KEY]) && detail[ATTRIBUTES_KEY].specversion === '1.0') {
    const attributes = detail[ATTRIBUTES_KEY] as Json;
    return { ...attributes, source, type, ...('data' in detail ? { data: detail.data } : {}), ...resources } as CloudEvent;
  }
  const { id, time, 'detail-type': _type, source: _source, detail: _detail, resources: _resources, ...fields } = envelope;
  const event: CloudEvent = { specversion: '1.0', id, source, type, time, ...(detail !== undefined ? { data: detail } : {}), ...resources };
  const others: Json = {};
  for (const [field, value] of Object.entries(fields)) {
    if (isOwnExtension(field)) event[field] = value;
    else others[field] = value;
  }
  if (Object.keys(others).length) event[ENVELOPE_FIELDS_KEY] = others;
  return event;
}

/** The extension that keeps, by name, the envelope fields of a foreign event that cannot be extensions of their own. */
export const ENVELOPE_FIELDS_KEY = 'awsenvelope';
const TAKEN = new Set(['specversion', 'id', 'source', 'type', 'time', 'data', 'resources', ENVELOPE_FIELDS_KEY]);

/** Does an envelope field of a foreign event become an extension of the same name (a CloudEvents attribute name, not taken)? */
export function isOwnExtension(field: string): boolean {
  return /^[a-z0-9]{1,20}$/.test(field) && !TAKEN.has(field);
}

/** An EventBridge pattern over the delivered event, from a petrel pattern over the CloudEvent. */
export function translatePattern(pattern: Json): Json {
  compilePattern(pattern); // a PatternError names the bad part before anything is rewritten
  return translateLevel(pattern);
}

function translateLevel(pattern: Json): Json {
  const out: Json = {};
  const detail: Json = {};
  const attributes: Json = {};
  for (const [key, value] of Object.entries(pattern)) {
    if (key === '$or') {
      out.$or = (value as Json[]).map(translateLevel);
      continue;
    }
    // A dotted key is a path ("data.pm25"): its first segment decides where it goes.
    const dot = key.indexOf('.');
    const head = dot < 0 ? key : key.slice(0, dot);
    if (head === 'source' || head === 'resources') out[key] = value;
    else if (head === 'type') out[`detail-type${dot < 0 ? '' : key.slice(dot)}`] = value;
    else if (head === 'data') detail[key] = value;
    else attributes[key] = value;
  }
  if (Object.keys(attributes).length) detail[ATTRIBUTES_KEY] = attributes;
  if (Object.keys(detail).length) out.detail = detail;
  return out;
}

/**
 * The event EventBridge delivers to a rule's targets for a PutEvents entry (for tests and local
 * runs that stand in for EventBridge): its time to the second, `resources` always a list.
 */
export function deliveredEvent(entry: PutEventsEntry, delivery: { id: string; account: string; region: string; now?: Date }): EventBridgeEnvelope {
  const time = (entry.Time ?? delivery.now ?? new Date()).toISOString().replace(/\.\d+Z$/, 'Z');
  return {
    version: '0',
    id: delivery.id,
    'detail-type': entry.DetailType ?? '',
    source: entry.Source ?? '',
    account: delivery.account,
    time,
    region: delivery.region,
    resources: entry.Resources ?? [],
    detail: JSON.parse(entry.Detail ?? '{}') as unknown,
  };
}

/** An entry's size as EventBridge counts it against its 256 KiB limit (docs: "Calculating PutEvents event entry size"). */
export function entrySize(entry: PutEventsEntry): number {
  const bytes = (s: string | undefined) => (s ? Buffer.byteLength(s, 'utf8') : 0);
  return (entry.Time ? 14 : 0) + bytes(entry.Source) + bytes(entry.DetailType) + bytes(entry.Detail) + (entry.Resources ?? []).reduce((n, r) => n + bytes(r), 0);
}
