/**
 * One function's durable pull consumer on the app's stream, shared by every process that
 * delivers the function's events: the NATS runtime's workers and the HTTP dispatcher for Knative
 * functions. It creates or updates the consumer from the function's spec, routes each message by
 * the function's pattern (and a redrive's target), keeps in-progress messages alive, and drains
 * on stop; what delivering an event means is the subclass's `deliver`.
 */
import { AckPolicy, DeliverPolicy, JetStreamApiCodes, JetStreamApiError, type Consumer, type ConsumerConfig, type ConsumerMessages, type JetStreamClient, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import { nanos, type Subscription } from '@nats-io/transport-node';
import { triggerPattern, type App, type AppFunction } from '../../core/app.js';
import type { CloudEvent } from '../../core/event.js';
import type { Logger } from '../../core/ports.js';
import { filterSubject, type names } from './subjects.js';

/** Header naming the one function a redriven dead letter is for. */
export const REDRIVE_HEADER = 'Petrel-Redrive';
/** Pull batch cap; the server never hands out more than max_ack_pending anyway. */
const MAX_BATCH = 256;

const decoder = new TextDecoder();

/** What a durable consumer needs of its surroundings. */
export interface DurableContext {
  app: App;
  js: JetStreamClient;
  jsm: JetStreamManager;
  names: ReturnType<typeof names>;
  logger: Logger;
}

export abstract class DurableConsumer {
  private consumer?: Consumer;
  private messages?: ConsumerMessages;
  /** Messages being handled, with when they arrived (for progress acks). */
  private readonly inFlight = new Map<JsMsg, number>();
  /** Arrived while stopping: handed back when the subscription has drained. */
  private readonly handingBack: JsMsg[] = [];
  private idleWaiters: Array<() => void> = [];
  private lagCache = 0;
  protected stopped = false;

  /** @param ackWaitMs how long the server waits for a settlement before redelivering */
  constructor(
    private readonly durable: DurableContext,
    readonly fn: AppFunction,
    readonly ackWaitMs: number,
  ) {}

  /** Delivers one event routed to this function, and settles its message. */
  protected abstract deliver(msg: JsMsg, event: CloudEvent): Promise<void>;

  /** The durable consumer's settings, derived from the function's spec. */
  consumerConfig(): Partial<ConsumerConfig> & { durable_name: string } {
    const { fn } = this;
    return {
      durable_name: fn.name,
      ack_policy: AckPolicy.Explicit,
      // A function new to the stream sees events from now on.
      deliver_policy: DeliverPolicy.New,
      filter_subject: filterSubject(this.durable.app.name, triggerPattern(fn.spec.trigger, fn.name)),
      ack_wait: nanos(this.ackWaitMs),
      // Unlimited: petrel counts attempts and dead-letters itself, so the server never drops silently.
      max_deliver: -1,
      // Ordered functions: one event at a time across every process, so order holds per key.
      max_ack_pending: fn.spec.ordered ? 1 : fn.spec.concurrency,
    };
  }

  async start(): Promise<void> {
    const { jsm, js, names } = this.durable;
    const config = this.consumerConfig();
    try {
      const { config: current } = await jsm.consumers.info(names.stream, config.durable_name);
      if (current.filter_subject !== config.filter_subject || current.ack_wait !== config.ack_wait || current.max_ack_pending !== config.max_ack_pending || current.max_deliver !== config.max_deliver) {
        await jsm.consumers.update(names.stream, config.durable_name, { filter_subject: config.filter_subject, ack_wait: config.ack_wait, max_ack_pending: config.max_ack_pending, max_deliver: config.max_deliver });
      }
    } catch (error) {
      if (!(error instanceof JetStreamApiError && error.code === JetStreamApiCodes.ConsumerNotFound)) throw error;
      await jsm.consumers.add(names.stream, config);
    }
    this.consumer = await js.consumers.get(names.stream, config.durable_name);
    this.messages = await this.consumer.consume({
      max_messages: Math.min(config.max_ack_pending!, MAX_BATCH),
      callback: (msg) => {
        // Stopping: kept, and handed back once nothing more can arrive (a nak now would bring it
        // straight back to this pull, round and round until the unsubscribe).
        if (this.stopped) return void this.handingBack.push(msg);
        void this.handle(msg);
      },
    });
  }

  /** Events not yet settled by this function (pending + unacknowledged), as of the last refresh. */
  lag(): number {
    return this.lagCache;
  }

  busy(): boolean {
    return this.inFlight.size > 0;
  }

  async refresh(): Promise<number> {
    if (!this.consumer) return this.lagCache;
    const info = await this.consumer.info();
    this.lagCache = info.num_pending + info.num_ack_pending;
    return this.lagCache;
  }

  /** Tells the server that long-running messages are still being worked on. */
  keepAlive(now = Date.now()): void {
    for (const [msg, since] of this.inFlight) if (now - since > this.ackWaitMs / 3) settle(() => msg.working());
  }

  /** How often `keepAlive` should run. */
  get keepAliveEveryMs(): number {
    return Math.max(100, this.ackWaitMs / 3);
  }

  /**
   * Stops pulling, hands back what arrived meanwhile so another process takes it at once, and
   * resolves when in-flight messages have settled.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.messages) await endConsume(this.messages);
    for (const msg of this.handingBack.splice(0)) settle(() => msg.nak());
    if (this.inFlight.size > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private async handle(msg: JsMsg): Promise<void> {
    const { fn } = this;
    const { logger } = this.durable;
    let event: CloudEvent;
    try {
      event = JSON.parse(decoder.decode(msg.data)) as CloudEvent;
    } catch {
      logger.error({ fn: fn.name, subject: msg.subject, seq: msg.seq }, 'message is not a JSON CloudEvent; terminated');
      return settle(() => msg.term());
    }
    const redriveFor = msg.headers?.get(REDRIVE_HEADER);
    if ((redriveFor && redriveFor !== fn.name) || !fn.pattern!.matches(event)) return settle(() => msg.ack());
    this.inFlight.set(msg, Date.now());
    try {
      await this.deliver(msg, event);
    } catch (error) {
      // Settling failed (NATS, PostgreSQL or the endpoint's answer path unreachable): the message
      // is redelivered now or after ack wait, and the completion record keeps it from doubling anything.
      logger.error({ err: error, fn: fn.name, eventId: event.id }, 'could not settle an event; it will be delivered again');
      if (!this.stopped) settle(() => msg.nak(1000));
    } finally {
      this.inFlight.delete(msg);
      if (this.inFlight.size === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }
}

/**
 * Ends a consume() without losing what is on the wire. nats.js's `close()` unsubscribes at once,
 * and a message the server sent before it saw that is dropped by the client yet counted as
 * delivered: no process sees it until ack wait (the function's timeout + 2 s) runs out, and it
 * holds one of the function's max_ack_pending slots meanwhile, so a few stops under load stalled
 * the function in every process. Draining the subscription (UNSUB, then a round trip) lets those
 * arrive first. ConsumerMessages does not expose its subscription; nats.js 3 keeps it as `sub`
 * (durable.test.ts fails if that changes).
 */
async function endConsume(messages: ConsumerMessages): Promise<void> {
  const sub = (messages as { sub?: Partial<Subscription> }).sub;
  if (typeof sub?.drain === 'function' && !sub.isClosed?.()) await sub.drain().catch(() => undefined);
  await messages.close().catch(() => undefined);
}

/** Acks on a connection that is gone throw; the server redelivers after ack wait anyway. */
export function settle(ack: () => void): void {
  try {
    ack();
  } catch {
    // nothing to do: see above
  }
}
