/** The NATS runtime's shared parts, as workers and scopes need them. */
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { ObjectStore } from '@nats-io/obj';
import type { App } from '../../core/app.js';
import type { CloudEvent } from '../../core/event.js';
import type { Logger } from '../../core/ports.js';
import type { PromMetrics } from '../http/metrics.js';
import type { PgStore } from '../postgres/store.js';
import type { NatsRecords } from './records.js';
import type { names } from './subjects.js';

export interface NatsContext {
  app: App;
  js: JetStreamClient;
  jsm: JetStreamManager;
  names: ReturnType<typeof names>;
  records: NatsRecords;
  /** Present when the app has tables. */
  pg?: PgStore;
  objectStores: Map<string, ObjectStore>;
  logger: Logger;
  metrics: PromMetrics;
  /** Aborted when the runtime stops waiting for in-flight work. */
  signal: AbortSignal;
  /** Publishes events durably (resolves after every PubAck), each with its event key as message id. */
  publish(events: CloudEvent[]): Promise<void>;
  outboxes: OutboxMarks;
  deadLettered(fn: string): void;
}

/**
 * Marks published outboxes in PostgreSQL, batched: every mark queued within a tick goes out in one
 * UPDATE. A mark lost to a crash only means the outbox is published once more (and deduplicated).
 */
export class OutboxMarks {
  private queue: Array<{ fn: string; key: string }> = [];
  private flushing?: Promise<void>;

  constructor(private readonly pg: () => PgStore | undefined, private readonly app: string, private readonly logger: Logger) {}

  clear(fn: string, key: string): void {
    this.queue.push({ fn, key });
    this.flushing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.flush());
  }

  /** Resolves when every mark queued so far is written. */
  async drain(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  private async flush(): Promise<void> {
    const batch = this.queue;
    this.queue = [];
    try {
      await this.pg()?.clearOutboxes(this.app, batch);
    } catch (error) {
      this.logger.warn({ err: error }, 'could not mark outboxes as published; they will be published again on redelivery');
    } finally {
      this.flushing = undefined;
      if (this.queue.length) this.flushing = this.flush();
    }
  }
}
