/**
 * Delivers an app's JetStream events to its functions over HTTP, as Knative Eventing's JetStream
 * channel dispatcher (eventing-natss) delivers to subscribers: each function's durable consumer
 * (the same one the NATS runtime's workers use), each event POSTed in binary mode with
 * `Prefer: reply` to the function's URL, and the answer settles the message:
 *
 *   2xx                          ack; a reply event (200 with a CloudEvent) is published first
 *   5xx, 404, 408, 409, 429,
 *   no answer, timeout           attempt recorded (KV), nak with the function's backoff
 *                                (ordered functions retry in place), dead letter after maxAttempts
 *   other 4xx                    dead letter now (term)
 *
 * Unlike Knative's dispatchers it tells the function which attempt this is (ATTEMPT_HEADER, from
 * the JetStream delivery count and the attempt history) and keeps the function's own attempt
 * records (error name and message from the answer) in the dead letter, which the NATS runtime's
 * admin lists and redrives. The app's streams and KV buckets must exist: the NATS runtime serving
 * its ingress creates them (`ingressApp`).
 */
import { jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import pino from 'pino';
import { defineApp, scheduledEvent, type App, type AppFunction } from '../../core/app.js';
import { attemptRecord, backoffDelay, retryPolicy, sleep, TimeoutError, type AttemptRecord } from '../../core/delivery.js';
import { eventKey, newEventId, type CloudEvent } from '../../core/event.js';
import type { Logger } from '../../core/ports.js';
import { toCloudEvents } from '../http/binding.js';
import { DurableConsumer } from '../nats/durable.js';
import { NatsRecords } from '../nats/records.js';
import { names, recordKey } from '../nats/subjects.js';
import { toBinaryHttp } from './encode.js';
import { connectNats, type NatsSettings } from './stores.js';
import { ATTEMPT_HEADER } from './types.js';

export interface HttpDispatcherOptions {
  nats: NatsSettings;
  /** Where each function with an event trigger is served: function name -> URL. */
  urls: Record<string, string>;
  logger?: Logger;
}

/** Time beyond the function's timeout for its answer to arrive (commit, K_SINK, network). */
const ANSWER_MARGIN_MS = 2000;
/** Ack wait beyond the POST's own timeout: time to publish the reply and ack. */
const ACK_MARGIN_MS = 1000;
/** Statuses Knative's data-plane contract retries; every other non-2xx is final. */
const RETRIED = new Set([404, 408, 409, 429]);

/** The app's ingress side: its http functions, served by the NATS runtime while this dispatcher delivers the rest. */
export function ingressApp(app: App): App {
  const functions = Object.fromEntries(app.functions.filter((f) => f.spec.trigger.kind === 'http').map((f) => [f.name, f.spec]));
  return defineApp({ name: app.name, resources: app.resources, functions });
}

interface DispatchContext {
  app: App;
  js: ReturnType<typeof jetstream>;
  jsm: Awaited<ReturnType<typeof jetstreamManager>>;
  names: ReturnType<typeof names>;
  records: NatsRecords;
  logger: Logger;
  signal: AbortSignal;
  publish(events: CloudEvent[]): Promise<void>;
}

type Answer = { outcome: 'done'; reply?: CloudEvent } | { outcome: 'retry' | 'dead'; record: AttemptRecord };

/** One function's durable consumer and its HTTP endpoint. */
class Route extends DurableConsumer {
  readonly answerTimeoutMs: number;

  constructor(private readonly ctx: DispatchContext, fn: AppFunction, readonly url: string) {
    super(ctx, fn, fn.spec.timeoutMs + ANSWER_MARGIN_MS + ACK_MARGIN_MS);
    this.answerTimeoutMs = fn.spec.timeoutMs + ANSWER_MARGIN_MS;
  }

  protected async deliver(msg: JsMsg, event: CloudEvent): Promise<void> {
    const { ctx, fn } = this;
    const historyKey = recordKey(fn.name, eventKey(event));
    const delivered = msg.info.deliveryCount;
    let history = delivered > 1 ? await ctx.records.history(historyKey) : [];
    let stored = history.length > 0;
    let attempt = Math.max(delivered, history.length + 1);
    const policy = retryPolicy(fn.spec.retry);
    for (;;) {
      const answer = await this.post(event, attempt);
      if (answer.outcome === 'done') {
        if (answer.reply) await ctx.publish([answer.reply]);
        msg.ack();
        if (stored) await ctx.records.clearHistory(historyKey);
        return;
      }
      history = [...history, answer.record];
      if (answer.outcome === 'dead' || attempt >= policy.maxAttempts) {
        await ctx.records.putDeadLetter({ id: newEventId(), fn: fn.name, event, attempts: history, deadAt: new Date().toISOString() });
        msg.term();
        if (stored) await ctx.records.clearHistory(historyKey);
        return;
      }
      await ctx.records.putHistory(historyKey, history);
      stored = true;
      const retryInMs = backoffDelay(attempt, policy);
      // Ordered functions retry in place: the event stays unacknowledged, so nothing behind it overtakes.
      if (fn.spec.ordered && !this.stopped) {
        await sleep(retryInMs, ctx.signal);
        if (!this.stopped) {
          attempt++;
          continue;
        }
      }
      return msg.nak(retryInMs);
    }
  }

  /** POSTs the event in binary mode and reads the answer as Knative's data-plane contract says. */
  private async post(event: CloudEvent, attempt: number): Promise<Answer> {
    const { headers, body } = toBinaryHttp(event);
    let response: Response;
    let text: Buffer;
    try {
      response = await fetch(this.url, {
        method: 'POST',
        headers: { ...headers, prefer: 'reply', [ATTEMPT_HEADER]: String(attempt) },
        body: new Uint8Array(body),
        signal: AbortSignal.any([AbortSignal.timeout(this.answerTimeoutMs), this.ctx.signal]),
      });
      text = Buffer.from(await response.arrayBuffer());
    } catch (error) {
      const timedOut = (error as Error).name === 'TimeoutError';
      const cause = timedOut ? new TimeoutError(`function "${this.fn.name}" did not answer within ${this.answerTimeoutMs} ms`) : new Error(`POST to function "${this.fn.name}" failed: ${causeOf(error)}`);
      return { outcome: 'retry', record: attemptRecord(attempt, cause) };
    }
    const answerHeaders = Object.fromEntries(response.headers.entries());
    if (response.ok) {
      if (response.status !== 200 || (answerHeaders['ce-specversion'] === undefined && !answerHeaders['content-type']?.startsWith('application/cloudevents+json'))) return { outcome: 'done' };
      try {
        return { outcome: 'done', reply: toCloudEvents(answerHeaders, text)[0] };
      } catch (error) {
        return { outcome: 'dead', record: attemptRecord(attempt, new Error(`function "${this.fn.name}" replied with an invalid CloudEvent: ${(error as Error).message}`)) };
      }
    }
    const outcome = response.status >= 500 || RETRIED.has(response.status) ? 'retry' : 'dead';
    return { outcome, record: recordOf(text, attempt) ?? attemptRecord(attempt, new Error(`function "${this.fn.name}" answered ${response.status}: ${text.toString('utf8').slice(0, 500)}`)) };
  }
}

export class HttpDispatcher {
  private readonly routes: Route[];
  private readonly timers: NodeJS.Timeout[] = [];
  private stopping?: Promise<void>;

  private constructor(private readonly nc: NatsConnection, private readonly ctx: DispatchContext, private readonly shutdown: AbortController, urls: Record<string, string>) {
    this.routes = ctx.app.functions.filter((f) => f.pattern).map((f) => new Route(ctx, f, urls[f.name]));
  }

  /** Connects, opens each function's durable consumer and starts delivering. */
  static async start(app: App, options: HttpDispatcherOptions): Promise<HttpDispatcher> {
    const wanted = app.functions.filter((f) => f.pattern).map((f) => f.name);
    const missing = wanted.filter((name) => !options.urls[name]);
    const unknown = Object.keys(options.urls).filter((name) => !wanted.includes(name));
    if (missing.length || unknown.length) {
      throw new Error(`dispatching needs a URL for each function with an event trigger (${wanted.join(', ')})${missing.length ? `; missing: ${missing.join(', ')}` : ''}${unknown.length ? `; no such functions: ${unknown.join(', ')}` : ''}`);
    }
    for (const [name, url] of Object.entries(options.urls)) {
      if (!/^https?:\/\//.test(url)) throw new Error(`the URL of function "${name}" must be http(s), got ${JSON.stringify(url)}`);
    }
    const logger = options.logger ?? pino({ name: `${app.name}/dispatcher` });
    const nc = await connectNats(options.nats, `petrel-${app.name}-dispatcher`);
    try {
      const js = jetstream(nc);
      const jsm = await jetstreamManager(nc);
      const n = names(app.name);
      const kvm = new Kvm(js);
      let records: NatsRecords;
      try {
        await jsm.streams.info(n.stream);
        records = new NatsRecords(app.name, js, jsm, await kvm.open(n.completions), await kvm.open(n.attempts));
      } catch (error) {
        throw new Error(`the stream of app "${app.name}" is not there (${(error as Error).message}): start the NATS runtime for its ingress first`);
      }
      const shutdown = new AbortController();
      const ctx: DispatchContext = {
        app,
        js,
        jsm,
        names: n,
        records,
        logger,
        signal: shutdown.signal,
        publish: async (events) => {
          await Promise.all(events.map((event) => js.publish(n.eventSubject(event.type), JSON.stringify(event), { msgID: eventKey(event) })));
        },
      };
      const dispatcher = new HttpDispatcher(nc, ctx, shutdown, options.urls);
      await Promise.all(dispatcher.routes.map((r) => r.start()));
      dispatcher.startTimers();
      return dispatcher;
    } catch (error) {
      await nc.close().catch(() => undefined);
      throw error;
    }
  }

  /** Events not yet settled, per function, as of the last refresh. */
  lag(): Record<string, number> {
    return Object.fromEntries(this.routes.map((r) => [r.fn.name, r.lag()]));
  }

  /** Resolves when every function has settled every event in the stream (retries included). */
  async idle(timeoutMs = 15_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const lags = await Promise.all(this.routes.map((r) => r.refresh())).catch(() => undefined);
      if (lags?.every((n) => n === 0) && !this.routes.some((r) => r.busy())) return;
      if (Date.now() > until) throw new Error(`dispatcher not idle after ${timeoutMs} ms: ${JSON.stringify(this.lag())}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** Stops pulling, lets in-flight deliveries finish, closes. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const timer of this.timers) clearInterval(timer);
      await Promise.all(this.routes.map((r) => r.stop()));
      await this.nc.drain().catch(() => undefined);
    })();
    return this.stopping;
  }

  /** Stops as a crash would: the connection is cut, in-flight POSTs abandoned, nothing settled. For tests. */
  crash(): Promise<void> {
    this.stopping ??= (async () => {
      for (const timer of this.timers) clearInterval(timer);
      await this.nc.close().catch(() => undefined);
      this.shutdown.abort(new Error('dispatcher crashed'));
      await Promise.all(this.routes.map((r) => r.stop()));
    })();
    return this.stopping;
  }

  private startTimers(): void {
    const every = (ms: number, run: () => unknown) => this.timers.push(setInterval(run, ms).unref());
    every(1000, () => Promise.all(this.routes.map((r) => r.refresh())).catch((error: unknown) => this.ctx.logger.warn({ err: error }, 'could not read consumer state')));
    for (const route of this.routes) every(route.keepAliveEveryMs, () => route.keepAlive());
    // Schedules fire here, as the NATS runtime fires them for its workers; the period-derived id makes JetStream keep one.
    for (const fn of this.ctx.app.functions) {
      const trigger = fn.spec.trigger;
      if (trigger.kind !== 'schedule') continue;
      const fire = () => {
        const period = Math.floor(Date.now() / trigger.everyMs);
        this.ctx.publish([scheduledEvent(this.ctx.app.name, fn.name, trigger, period)]).catch((error: unknown) => this.ctx.logger.error({ err: error, fn: fn.name }, 'could not fire schedule'));
      };
      const first = setTimeout(() => {
        fire();
        every(trigger.everyMs, fire);
      }, trigger.everyMs - (Date.now() % trigger.everyMs));
      this.timers.push(first.unref());
    }
  }
}

/** The attempt record a petrel function put in its failure answer, if it is one. */
function recordOf(body: Buffer, attempt: number): AttemptRecord | undefined {
  try {
    const record = (JSON.parse(body.toString('utf8')) as { attempt?: AttemptRecord }).attempt;
    if (typeof record?.error?.name === 'string' && typeof record.error.message === 'string' && typeof record.at === 'string') return { attempt, at: record.at, error: { name: record.error.name, message: record.error.message } };
  } catch {
    // not JSON: the caller records the status and body instead
  }
  return undefined;
}

function causeOf(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error as Error).message;
}
