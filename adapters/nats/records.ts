/**
 * Delivery bookkeeping on JetStream: completion records with their outbox (KV, with the
 * idempotency TTL) for functions that use no PostgreSQL tables, each failing (function, event)'s attempt history (KV,
 * deleted on success), and dead letters (a stream of their own).
 */
import { JetStreamApiError, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { AttemptRecord, DeadLetter } from '../../core/delivery.js';
import type { CloudEvent } from '../../core/event.js';
import { names } from './subjects.js';

const WRONG_LAST_SEQUENCE = 10071;
/** A dead-letter listing reads at most this many letters, newest first. */
const MAX_LISTED = 1000;

export class NatsRecords {
  private readonly names;

  constructor(
    app: string,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly completions: KV,
    private readonly attempts: KV,
  ) {
    this.names = names(app);
  }

  /** The completion recorded under this key: the outbox of events its attempt emitted. */
  async completion(key: string): Promise<CloudEvent[] | undefined> {
    const entry = await this.completions.get(key);
    if (!entry || entry.operation !== 'PUT') return undefined;
    return entry.value.length > 0 ? entry.json<CloudEvent[]>() : [];
  }

  /**
   * Records completion with the outbox, before the outbox is published (as the PostgreSQL
   * transaction does). If a completion exists already (a duplicate finished first), returns its
   * outbox instead, to be published again.
   */
  async complete(key: string, outbox: CloudEvent[]): Promise<{ created: true } | { created: false; outbox: CloudEvent[] }> {
    try {
      await this.completions.create(key, outbox.length ? JSON.stringify(outbox) : '');
      return { created: true };
    } catch (error) {
      if (!(error instanceof JetStreamApiError && error.code === WRONG_LAST_SEQUENCE)) throw error;
      return { created: false, outbox: (await this.completion(key)) ?? [] };
    }
  }

  async history(key: string): Promise<AttemptRecord[]> {
    const entry = await this.attempts.get(key);
    return entry && entry.operation === 'PUT' && entry.value.length > 0 ? entry.json<AttemptRecord[]>() : [];
  }

  async putHistory(key: string, history: AttemptRecord[]): Promise<void> {
    await this.attempts.put(key, JSON.stringify(history));
  }

  async clearHistory(key: string): Promise<void> {
    await this.attempts.purge(key);
  }

  /** Stores a dead letter; its id is the message id, so storing it twice keeps one. */
  async putDeadLetter(letter: DeadLetter): Promise<void> {
    await this.js.publish(this.names.deadLetterSubject(letter.fn, letter.id), JSON.stringify(letter), { msgID: `dead:${letter.id}` });
  }

  async deadLetters(fn?: string): Promise<DeadLetter[]> {
    const stream = this.names.deadLetterStream;
    const { state } = await this.jsm.streams.info(stream);
    const letters: DeadLetter[] = [];
    for (let seq = state.last_seq; seq >= state.first_seq && seq > 0 && letters.length < MAX_LISTED; seq--) {
      const stored = await this.jsm.streams.getMessage(stream, { seq }).catch(() => null);
      if (!stored) continue;
      const letter = stored.json<DeadLetter>();
      if (!fn || letter.fn === fn) letters.push(letter);
    }
    return letters;
  }

  async deadLetter(id: string): Promise<DeadLetter | undefined> {
    return (await this.deadLetters()).find((letter) => letter.id === id);
  }

  async deleteDeadLetter(letter: DeadLetter): Promise<void> {
    await this.jsm.streams.purge(this.names.deadLetterStream, { filter: this.names.deadLetterSubject(letter.fn, letter.id) });
  }

  /** Dead letters stored, per function. */
  async deadLetterCounts(): Promise<Record<string, number>> {
    const info = await this.jsm.streams.info(this.names.deadLetterStream, { subjects_filter: this.names.deadLetterSubjects });
    const counts: Record<string, number> = {};
    for (const [subject, n] of Object.entries(info.state.subjects ?? {})) {
      const fn = subject.split('.')[2];
      counts[fn] = (counts[fn] ?? 0) + n;
    }
    return counts;
  }
}
