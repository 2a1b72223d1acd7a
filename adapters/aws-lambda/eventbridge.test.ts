import { describe, expect, it } from 'vitest';
import type { CloudEvent } from '../../core/event.js';
import { EventBridgePublisher, PublishError } from './eventbridge.js';
import { fromEventBridgeEvent, deliveredEvent } from './mapping.js';
import { recordingEventBridge } from './testing.js';

const events = (n: number, size = 10): CloudEvent[] =>
  Array.from({ length: n }, (_, i) => ({ specversion: '1.0', id: `e-${i}`, source: 'petrel/t/f', type: 't.happened', data: { i, pad: 'x'.repeat(size) } }));
const noWait = { maxAttempts: 4, baseDelayMs: 0, maxDelayMs: 0 };

describe('EventBridgePublisher', () => {
  it('sends at most 10 entries per PutEvents, on the configured bus, by the one mapping', async () => {
    const eventBridge = recordingEventBridge();
    const publisher = new EventBridgePublisher({ client: eventBridge.client, eventBusName: 'petrel-bus', retry: noWait });
    const sent = events(25);
    await publisher.publish(sent);
    expect(eventBridge.requests.map((r) => r.length)).toEqual([10, 10, 5]);
    expect(eventBridge.entries.every((e) => e.EventBusName === 'petrel-bus')).toBe(true);
    const back = eventBridge.entries.map((entry) => fromEventBridgeEvent(deliveredEvent(entry, { id: 'x', account: '1', region: 'r' })));
    expect(back).toEqual(sent);
  });

  it('starts a new request before 256 KiB', async () => {
    const eventBridge = recordingEventBridge();
    await new EventBridgePublisher({ client: eventBridge.client, retry: noWait }).publish(events(5, 100_000));
    expect(eventBridge.requests.map((r) => r.length)).toEqual([2, 2, 1]);
  });

  it('retries only the entries EventBridge failed (FailedEntryCount), until they pass', async () => {
    const eventBridge = recordingEventBridge((entry, call) => (call <= 2 && entry.Detail!.includes('"i":3') ? 'ThrottlingException' : undefined));
    await new EventBridgePublisher({ client: eventBridge.client, retry: noWait }).publish(events(4));
    expect(eventBridge.requests.map((r) => r.length)).toEqual([4, 1, 1]);
    expect(eventBridge.entries).toHaveLength(4);
  });

  it('rejects with the events and error codes once retries are spent', async () => {
    const eventBridge = recordingEventBridge((entry) => (entry.Detail!.includes('"i":1') ? 'InternalFailure' : undefined));
    const publishing = new EventBridgePublisher({ client: eventBridge.client, retry: { ...noWait, maxAttempts: 3 } }).publish(events(2));
    await expect(publishing).rejects.toThrow(PublishError);
    await expect(publishing).rejects.toThrow(/e-1 \(InternalFailure/);
    expect(eventBridge.requests).toHaveLength(3);
  });

  it('refuses an event over 256 KiB before anything is committed, permanently', () => {
    const publisher = new EventBridgePublisher({ client: recordingEventBridge().client });
    expect(() => publisher.check(events(1, 270_000))).toThrow(expect.objectContaining({ permanent: true, message: expect.stringMatching(/event e-0 \(t.happened\) is \d+ bytes on EventBridge/) }));
    expect(() => publisher.check(events(3))).not.toThrow();
  });
});
