/**
 * A bounded in-memory journal of the embedded runtime's invocations, and the journey of an event
 * built from it: the chain of events that led to it, followed by `causationid` back to the ingest
 * (an HTTP request or an MQTT message), each with the invocations that handled it.
 *
 * The runtime reports each handler attempt through `LocalRuntimeOptions.onInvoked`; recording it
 * costs one small object in a ring, and past `capacity` the oldest records are overwritten. There
 * is no index to keep up on that hot path: a journey (a person's click) scans the ring instead,
 * which takes well under a millisecond at the default capacity.
 * Event payloads are not copied: they are read back from the log, which keeps the newest settled
 * events (`retainEvents`), so a journey older than both shows what is left and says so.
 */
import { HTTP_REQUEST_TYPE } from '../../core/app.js';
import { traceIdOf, type CloudEvent } from '../../core/event.js';
import type { InvokeResult } from '../../core/invoke.js';
import type { Outcome } from '../../core/ports.js';

/** One attempt of a handler, as the runtime reports it. */
export interface Invocation {
  fn: string;
  event: CloudEvent;
  /** The event's position in the log; absent for http requests, which are not logged. */
  seq?: number;
  attempt: number;
  result: InvokeResult;
  /** When the attempt started (epoch ms, fractional) and how long the handler ran. */
  startedAt: number;
  durationMs: number;
}

/** What the journal keeps of an invocation: the event's attributes, not its data. */
export interface InvocationRecord {
  fn: string;
  eventId: string;
  type: string;
  source: string;
  subject?: string;
  time?: string;
  ingesttime?: string;
  causationid?: string;
  traceparent?: string;
  seq?: number;
  attempt: number;
  outcome: Outcome;
  /** `<name>: <message>` of a failed attempt. */
  error?: string;
  startedAt: number;
  durationMs: number;
  /** Ids of the events this invocation emitted (committed only when the outcome is ok). */
  emitted: string[];
}

export const DEFAULT_JOURNAL_CAPACITY = 10_000;

export class InvocationJournal {
  private readonly ring: Array<InvocationRecord | undefined>;
  private next = 0;

  constructor(readonly capacity = DEFAULT_JOURNAL_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`journal capacity must be a positive integer, got ${capacity}`);
    this.ring = new Array<InvocationRecord | undefined>(capacity);
  }

  /** Records one attempt; pass it as `onInvoked` (it is bound). */
  readonly record = (invocation: Invocation): void => {
    const { event, result } = invocation;
    const failed = result.outcome === 'retry' || result.outcome === 'dead' ? result.record.error : undefined;
    const record: InvocationRecord = {
      fn: invocation.fn,
      eventId: event.id,
      type: event.type,
      source: event.source,
      subject: event.subject,
      time: event.time,
      ingesttime: event.ingesttime,
      causationid: event.causationid,
      traceparent: event.traceparent,
      seq: invocation.seq,
      attempt: invocation.attempt,
      outcome: result.outcome,
      error: failed && `${failed.name}: ${failed.message}`,
      startedAt: invocation.startedAt,
      durationMs: invocation.durationMs,
      emitted: result.outcome === 'ok' ? result.emitted.map((e) => e.id) : [],
    };
    this.ring[this.next] = record;
    this.next = (this.next + 1) % this.capacity;
  };

  /** The recorded invocations of one event, oldest first. */
  invocationsOf(eventId: string): InvocationRecord[] {
    const found: InvocationRecord[] = [];
    for (let i = 0; i < this.capacity; i++) {
      const record = this.ring[(this.next + i) % this.capacity];
      if (record?.eventId === eventId) found.push(record);
    }
    return found;
  }

  get size(): number {
    return this.ring[this.next] === undefined ? this.next : this.capacity;
  }
}

/** How the journey reads the log (LocalRuntime has it). */
export interface EventLogReader {
  events(afterSeq: number, limit: number): Array<{ seq: number; event: CloudEvent }>;
}

/** An invocation as a journey shows it: the record without the event it handled. */
export type JourneyInvocation = Pick<InvocationRecord, 'fn' | 'attempt' | 'outcome' | 'error' | 'startedAt' | 'durationMs' | 'emitted'>;

export interface JourneyStep {
  /** The event, with its data when it is still in the log (else its attributes only). */
  event: CloudEvent;
  /** `log`: read from the log (data included); `journal`: known from invocations only; `missing`: known only as a cause. */
  found: 'log' | 'journal' | 'missing';
  seq?: number;
  invocations: JourneyInvocation[];
}

export interface Journey {
  eventId: string;
  traceId?: string;
  /** From the first ingest (HTTP request or MQTT message) to the last event, root first. */
  steps: JourneyStep[];
  /** True when the chain reaches an event without a cause (the ingest); false when older links are forgotten. */
  complete: boolean;
  /** The root's ingest time to the last event's time, when both are known. */
  ingestToEventMs?: number;
}

/** A cause chain longer than this is cut (no app here has one; it guards against a cycle). */
const MAX_STEPS = 64;
const SCAN_PAGE = 1000;

/**
 * The chain of events that led to `eventId`, root first, each with its invocations; undefined
 * when the event is neither in the log nor in the journal.
 */
export function journey(eventId: string, journal: InvocationJournal, log: EventLogReader): Journey | undefined {
  const steps: JourneyStep[] = [];
  const seen = new Set<string>();
  let id: string | undefined = eventId;
  let complete = false;
  while (id !== undefined && !seen.has(id) && steps.length < MAX_STEPS) {
    seen.add(id);
    const step = findStep(id, journal, log);
    if (!step) {
      if (steps.length === 0) return undefined;
      steps.push({ event: { specversion: '1.0', id, type: '', source: '' }, found: 'missing', invocations: [] });
      break;
    }
    steps.push(step);
    id = step.event.causationid;
    complete = id === undefined;
  }
  steps.reverse();
  const last = steps[steps.length - 1].event;
  const root = steps[0].event;
  const traceId = traceIdOf(last.traceparent);
  const ingested = Date.parse(root.ingesttime ?? root.time ?? '');
  const reached = Date.parse(last.time ?? '');
  return {
    eventId,
    ...(traceId ? { traceId } : {}),
    steps,
    complete,
    ...(complete && Number.isFinite(ingested) && Number.isFinite(reached) ? { ingestToEventMs: Math.max(0, reached - ingested) } : {}),
  };
}

function findStep(id: string, journal: InvocationJournal, log: EventLogReader): JourneyStep | undefined {
  const records = journal.invocationsOf(id);
  const invocations = records.map(({ fn, attempt, outcome, error, startedAt, durationMs, emitted }) => ({ fn, attempt, outcome, ...(error ? { error } : {}), startedAt, durationMs, emitted }));
  const seq = records.find((r) => r.seq !== undefined)?.seq;
  // A consumer's first delivery of an event records its position; http requests are never
  // logged; any other event (not handled yet, or only by retries since forgotten) is looked for.
  const unlogged = records.length > 0 && records.every((r) => r.type === HTTP_REQUEST_TYPE);
  const entry = seq !== undefined ? entryAt(log, seq, id) : unlogged ? undefined : scan(log, id);
  if (entry) return { event: entry.event, found: 'log', seq: entry.seq, invocations };
  if (records.length === 0) return undefined;
  const r = records[0];
  const event = Object.fromEntries(
    Object.entries({ specversion: '1.0', id, type: r.type, source: r.source, subject: r.subject, time: r.time, ingesttime: r.ingesttime, causationid: r.causationid, traceparent: r.traceparent }).filter(([, v]) => v !== undefined),
  ) as CloudEvent;
  return { event, found: 'journal', ...(seq !== undefined ? { seq } : {}), invocations };
}

function entryAt(log: EventLogReader, seq: number, id: string): { seq: number; event: CloudEvent } | undefined {
  const [entry] = log.events(seq - 1, 1);
  return entry?.seq === seq && entry.event.id === id ? entry : undefined;
}

function scan(log: EventLogReader, id: string): { seq: number; event: CloudEvent } | undefined {
  for (let after = 0; ; ) {
    const page = log.events(after, SCAN_PAGE);
    const found = page.find((e) => e.event.id === id);
    if (found) return found;
    if (page.length < SCAN_PAGE) return undefined;
    after = page[page.length - 1].seq;
  }
}
