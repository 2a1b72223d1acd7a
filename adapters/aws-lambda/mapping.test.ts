import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import JSON5 from 'json5';
import { describe, expect, it } from 'vitest';
import airQuality from '../../handlers/air-quality/app.js';
import { deriveEventId, newEventId, type CloudEvent } from '../../core/event.js';
import { compilePattern, PatternError } from '../../core/pattern/index.js';
import { deliveredEvent, ENVELOPE_FIELDS_KEY, entrySize, fromEventBridgeEvent, isOwnExtension, toPutEventsEntry, translatePattern } from './mapping.js';
import type { EventBridgeEnvelope } from './types.js';

const delivery = { id: 'e6a5c6f8-2f3b-4d3c-9a0e-0f6b1b7b7c01', account: '123456789012', region: 'eu-west-1' };
const viaEventBridge = (event: CloudEvent) => deliveredEvent(toPutEventsEntry(event), delivery);

const reading: CloudEvent = {
  specversion: '1.0',
  id: newEventId(),
  source: 'petrel/air-quality/ingest',
  type: 'aq.reading.accepted',
  time: '2026-11-28T10:15:30.123Z',
  subject: 'downtown',
  datacontenttype: 'application/json',
  data: { deviceId: 'd-1', location: 'downtown', time: '2026-11-28T10:15:00Z', pm25: 40.2, nested: { list: [1, 'two', null] } },
  causationid: 'c-1',
  traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
  partitionkey: 'd-1',
  ingesttime: '2026-11-28T10:15:30.100Z',
};

describe('CloudEvent <-> EventBridge', () => {
  it('maps attributes to the envelope and the rest under detail.ce', () => {
    const entry = toPutEventsEntry(reading, 'petrel-bus');
    expect(entry).toMatchObject({ Source: reading.source, DetailType: reading.type, EventBusName: 'petrel-bus', Time: new Date(reading.time!) });
    const detail = JSON.parse(entry.Detail!);
    expect(detail.data).toEqual(reading.data);
    expect(detail.ce).toEqual({
      specversion: '1.0', id: reading.id, time: reading.time, subject: 'downtown', datacontenttype: 'application/json',
      causationid: 'c-1', traceparent: reading.traceparent, partitionkey: 'd-1', ingesttime: reading.ingesttime,
    });
    expect(entry.Resources).toBeUndefined();
    const delivered = viaEventBridge(reading);
    expect(delivered.time).toBe('2026-11-28T10:15:30Z');
    expect(delivered.resources).toEqual([]);
  });

  const roundTrips: Array<[string, CloudEvent]> = [
    ['a full event', reading],
    ['no data, no time', { specversion: '1.0', id: 'x-1', source: 's', type: 't' }],
    ['data that is a string', { specversion: '1.0', id: 'x-2', source: 's', type: 't', data: 'plain text', datacontenttype: 'text/plain' }],
    ['data that is null', { specversion: '1.0', id: 'x-3', source: 's', type: 't', data: null }],
    ['data that is an array', { specversion: '1.0', id: 'x-4', source: 's', type: 't', data: [1, { a: 2 }] }],
    ['binary data', { specversion: '1.0', id: 'x-5', source: 's', type: 't', data_base64: 'AAEC', datacontenttype: 'application/octet-stream' }],
    ['resources', { specversion: '1.0', id: 'x-6', source: 's', type: 't', resources: ['arn:aws:s3:::b', 'arn:aws:s3:::c'], data: {} }],
    ['a time with an offset', { specversion: '1.0', id: deriveEventId(newEventId(), 'f', 0), source: 's', type: 't', time: '2026-01-01T01:00:00.5+01:00' }],
    ['an attribute named like a reserved key', { specversion: '1.0', id: 'x-8', source: 's', type: 't', ce: 'kept', detail: 'also kept' }],
  ];
  it.each(roundTrips)('round-trips %s through PutEvents and delivery', (_name, event) => {
    expect(fromEventBridgeEvent(viaEventBridge(event))).toEqual(event);
  });

  it('treats an empty resources list like none (EventBridge delivers [] either way)', () => {
    const event: CloudEvent = { specversion: '1.0', id: 'r', source: 's', type: 't', resources: [] };
    const { resources: _dropped, ...withoutResources } = event;
    expect(fromEventBridgeEvent(viaEventBridge(event))).toEqual(withoutResources);
  });

  it('rejects a resources extension that is not a list of strings, naming it', () => {
    expect(() => toPutEventsEntry({ specversion: '1.0', id: 'r', source: 's', type: 't', resources: 'arn:x' })).toThrow(/"resources" extension must be a list of strings/);
  });

  it('maps an AWS service event (not put by petrel) to a CloudEvent, keeping every field', () => {
    const scheduled: EventBridgeEnvelope = {
      version: '0', id: '53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa', 'detail-type': 'Scheduled Event', source: 'aws.events', account: '123456789012',
      time: '2015-10-08T16:53:06Z', region: 'us-east-1', resources: ['arn:aws:events:us-east-1:123456789012:rule/my-scheduled-rule'], detail: {}, 'replay-name': 'r1',
    };
    expect(fromEventBridgeEvent(scheduled)).toEqual({
      specversion: '1.0', id: scheduled.id, source: 'aws.events', type: 'Scheduled Event', time: scheduled.time, data: {},
      resources: scheduled.resources, account: '123456789012', region: 'us-east-1', version: '0', awsenvelope: { 'replay-name': 'r1' },
    });
  });

  it('counts entry size as EventBridge does (Time 14 bytes, UTF-8 lengths)', () => {
    expect(entrySize({ Source: 'ab', DetailType: 'é', Detail: '{}', Resources: ['x'] })).toBe(2 + 2 + 2 + 1);
    expect(entrySize({ Source: 'ab', DetailType: 't', Detail: '{}', Time: new Date() })).toBe(14 + 2 + 1 + 2);
  });
});

describe('translatePattern', () => {
  it('moves each attribute to its place in the envelope', () => {
    expect(translatePattern({ source: ['s'], type: [{ prefix: 'aq.' }], data: { pm25: [{ numeric: ['>=', 0] }] }, subject: ['downtown'], partitionkey: [{ exists: true }] })).toEqual({
      source: ['s'],
      'detail-type': [{ prefix: 'aq.' }],
      detail: { data: { pm25: [{ numeric: ['>=', 0] }] }, ce: { subject: ['downtown'], partitionkey: [{ exists: true }] } },
    });
  });

  it('rewrites dotted paths and $or branches', () => {
    expect(translatePattern({ 'data.pm25': [1], $or: [{ type: ['a'] }, { id: ['x'] }, { 'type.x': ['y'] }] })).toEqual({
      detail: { 'data.pm25': [1] },
      $or: [{ 'detail-type': ['a'] }, { detail: { ce: { id: ['x'] } } }, { 'detail-type.x': ['y'] }],
    });
  });

  it('rejects an invalid pattern with the pattern error', () => {
    expect(() => translatePattern({ type: 'not-a-list' })).toThrow(PatternError);
  });

  it("keeps the air-quality app's routing on EventBridge", () => {
    const accepted = { ...reading, data: { deviceId: 'd', location: 'l', time: '2026-11-28T10:00:00Z', pm25: 1 } };
    for (const fn of airQuality.functions.filter((f) => f.pattern)) {
      const onBus = compilePattern(translatePattern(fn.pattern!.pattern as Record<string, unknown>));
      for (const event of [accepted, { ...accepted, type: 'other' }]) expect(onBus.matches(viaEventBridge(event))).toBe(fn.pattern!.matches(event));
    }
  });
});

// EventBridge pattern conformance (../shared/conformance/eventbridge-patterns, see its README): each
// case's envelope becomes a CloudEvent by the inverse mapping, its pattern is restated over that
// CloudEvent, then translated back; before and after translation the result must be the case's.
const dir = path.resolve(process.cwd(), '../shared/conformance/eventbridge-patterns');
const found = existsSync(dir);
const inCI = process.env.CI === 'true';
if (!found && !inCI) console.warn(`EventBridge pattern conformance data not found at ${dir}; skipping the translation conformance suite`);

/** The case's envelope pattern over the CloudEvent the inverse mapping makes of its envelope. */
function overCloudEvent(pattern: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(pattern)) {
    if (key === '$or') out.$or = (value as Array<Record<string, unknown>>).map(overCloudEvent);
    else if (key === 'detail') out.data = value;
    else if (key === 'detail-type') out.type = value;
    else if (['id', 'source', 'time', 'resources'].includes(key) || isOwnExtension(key)) out[key] = value;
    else out[ENVELOPE_FIELDS_KEY] = { ...(out[ENVELOPE_FIELDS_KEY] as object | undefined), [key]: value };
  }
  return out;
}

describe.skipIf(!found && !inCI)('EventBridge pattern conformance, before and after translation', () => {
  if (!found) {
    it('finds the conformance data (required under CI)', () => expect.fail(`EventBridge pattern conformance data not found at ${dir}`));
    return;
  }
  const cases = readdirSync(dir).filter((f) => f.endsWith('.json5')).sort().map((file) => {
    const { Event, EventPattern } = JSON5.parse(readFileSync(path.join(dir, file), 'utf8')) as { Event: EventBridgeEnvelope; EventPattern: unknown };
    return { name: file, event: Event, pattern: EventPattern };
  });
  const pair = path.join(dir, 'complex_multi_key_event.json');
  if (existsSync(pair)) {
    // Its pattern repeats a key; JSON.parse keeps the last, as EventBridge does.
    cases.push({ name: 'complex_multi_key_event.json', event: JSON.parse(readFileSync(pair, 'utf8')), pattern: JSON.parse(readFileSync(path.join(dir, 'complex_multi_key_event_pattern.json'), 'utf8')) });
  }

  it('finds every case', () => expect(cases.length).toBeGreaterThanOrEqual(156));

  for (const { name, event, pattern } of cases) {
    it(name, () => {
      const restated = typeof pattern === 'object' && pattern !== null && !Array.isArray(pattern) ? overCloudEvent(pattern as Record<string, unknown>) : pattern;
      if (name.endsWith('_EXC.json5')) {
        expect(() => compilePattern(restated)).toThrow(PatternError);
        expect(() => translatePattern(restated as Record<string, unknown>)).toThrow(PatternError);
        return;
      }
      const expected = !name.endsWith('_NEG.json5');
      expect(compilePattern(pattern).matches(event)).toBe(expected);
      const cloudEvent = fromEventBridgeEvent(event);
      expect(compilePattern(restated).matches(cloudEvent)).toBe(expected);
      const translated = translatePattern(restated as Record<string, unknown>);
      expect(compilePattern(translated).matches(viaEventBridge(cloudEvent))).toBe(expected);
    });
  }
});
