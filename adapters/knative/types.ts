/** The Knative adapter's own types: where a function keeps what it completed, and its options. */
import type { ObjectStore } from '@nats-io/obj';
import type { CloudEvent } from '../../core/event.js';
import type { Logger } from '../../core/ports.js';
import type { TableSession } from '../../core/session.js';
import type { PgStore } from '../postgres/store.js';

/**
 * The attempt number a dispatcher may send. Knative's own dispatchers (the channel-based broker,
 * eventing-natss' JetStream channel) send none, so there every delivery is attempt 1 to the
 * handler and the Trigger's `delivery.retry` bounds the retries; petrel's dispatcher sends the
 * JetStream delivery count here.
 */
export const ATTEMPT_HEADER = 'petrel-attempt';

/**
 * A function's idempotency records: which event keys it completed, each with the outbox of events
 * its attempt emitted (sent again when the event is delivered again, since the first reply may
 * have been lost with its connection).
 */
export interface CompletionStore {
  /** Where the records live, for the startup line. */
  readonly kind: 'postgres' | 'nats-kv' | 'memory';
  /** The outbox recorded when the function completed this event key; undefined if it has not. */
  completion(key: string): Promise<CloudEvent[] | undefined>;
  /**
   * Records completion with the outbox, and the attempt's table writes in the same transaction
   * (PostgreSQL only). Returns the outbox to deliver: this attempt's, or, if a concurrent delivery
   * completed first, the one it recorded (this attempt's writes are then dropped).
   */
  commit(key: string, session: TableSession | undefined, outbox: CloudEvent[]): Promise<CloudEvent[]>;
  /** The outbox reached K_SINK (2xx): a redelivery need not send it again. */
  delivered(key: string): void;
}

/** What one function's container holds open: its records, tables and buckets. */
export interface FunctionStores {
  /** Undefined when the function has no effects to protect (no emits, no writes). */
  completions?: CompletionStore;
  /** Present when the function uses tables. */
  pg?: PgStore;
  /** The app's buckets the function uses, on the NATS Object Store. */
  buckets: Map<string, ObjectStore>;
  close(): Promise<void>;
}

export interface KnativeFunctionOptions {
  stores: FunctionStores;
  logger: Logger;
  /** K_SINK: where emitted events go that do not travel back as the reply. */
  sink?: string;
  /** How long `stop` waits for in-flight events before aborting them. Default 10 s. */
  drainTimeoutMs?: number;
}
