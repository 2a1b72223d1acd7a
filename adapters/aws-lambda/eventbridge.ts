/**
 * Emitted events out through EventBridge PutEvents: entries by the one mapping (mapping.ts), in
 * requests of at most 10 entries and 256 KiB, entries that fail (FailedEntryCount) retried with
 * exponential backoff and full jitter; what still fails rejects, naming the events and the codes.
 */
import { EventBridgeClient, PutEventsCommand, type PutEventsResultEntry } from '@aws-sdk/client-eventbridge';
import { backoffDelay, PermanentError, type RetryPolicy } from '../../core/delivery.js';
import type { CloudEvent } from '../../core/event.js';
import { BODY_LIMIT } from '../../core/http.js';
import { entrySize, toPutEventsEntry } from './mapping.js';
import type { EventPublisher, PutEventsEntry } from './types.js';

/** PutEvents takes at most 10 entries and 256 KiB per request. */
export const MAX_ENTRIES = 10;
export const MAX_REQUEST_BYTES = BODY_LIMIT;

export interface EventBridgePublisherOptions {
  client?: Pick<EventBridgeClient, 'send'>;
  eventBusName?: string;
  /** Backoff for failed entries; default 4 attempts from 100 ms, at most 2 s apart. */
  retry?: RetryPolicy;
  random?: () => number;
}

interface Entry {
  id: string;
  entry: PutEventsEntry;
  size: number;
}

/** Events EventBridge would not take, after every retry. */
export class PublishError extends Error {
  override name = 'PublishError';

  constructor(readonly failed: Array<{ id: string; code?: string; message?: string }>) {
    super(`EventBridge rejected ${failed.length} event(s): ${failed.slice(0, 5).map((f) => `${f.id} (${f.code ?? 'unknown'}: ${f.message ?? ''})`).join(', ')}`);
  }
}

export class EventBridgePublisher implements EventPublisher {
  private readonly client: Pick<EventBridgeClient, 'send'>;
  private readonly retry: RetryPolicy;

  constructor(private readonly options: EventBridgePublisherOptions = {}) {
    this.client = options.client ?? new EventBridgeClient({});
    this.retry = options.retry ?? { maxAttempts: 4, baseDelayMs: 100, maxDelayMs: 2000 };
  }

  check(events: CloudEvent[]): void {
    this.entries(events);
  }

  async publish(events: CloudEvent[]): Promise<void> {
    let pending = this.entries(events);
    for (let attempt = 1; pending.length > 0; attempt++) {
      const failed: Array<Entry & { result: PutEventsResultEntry }> = [];
      for (const batch of batches(pending)) {
        const output = await this.client.send(new PutEventsCommand({ Entries: batch.map((b) => b.entry) }));
        if (!output.FailedEntryCount) continue;
        // Results come in entry order; a failed one has an ErrorCode.
        (output.Entries ?? []).forEach((result, i) => {
          if (result.ErrorCode) failed.push({ ...batch[i], result });
        });
      }
      if (failed.length === 0) return;
      if (attempt >= this.retry.maxAttempts) throw new PublishError(failed.map((f) => ({ id: f.id, code: f.result.ErrorCode, message: f.result.ErrorMessage })));
      pending = failed;
      await new Promise((resolve) => setTimeout(resolve, backoffDelay(attempt, this.retry, this.options.random)));
    }
  }

  private entries(events: CloudEvent[]): Entry[] {
    return events.map((event) => {
      let entry: PutEventsEntry;
      try {
        entry = toPutEventsEntry(event, this.options.eventBusName);
      } catch (error) {
        throw new PermanentError((error as Error).message);
      }
      const size = entrySize(entry);
      if (size > MAX_REQUEST_BYTES) throw new PermanentError(`event ${event.id} (${event.type}) is ${size} bytes on EventBridge; at most ${MAX_REQUEST_BYTES} (256 KiB) are accepted`);
      return { id: event.id, entry, size };
    });
  }
}

function* batches<T extends { size: number }>(entries: T[]): Generator<T[]> {
  let batch: T[] = [];
  let bytes = 0;
  for (const entry of entries) {
    if (batch.length === MAX_ENTRIES || (batch.length > 0 && bytes + entry.size > MAX_REQUEST_BYTES)) {
      yield batch;
      batch = [];
      bytes = 0;
    }
    batch.push(entry);
    bytes += entry.size;
  }
  if (batch.length) yield batch;
}
