import type { App, AppFunction, HttpResponse } from '../../core/app.js';
import type { DeadLetter } from '../../core/delivery.js';
import type { CloudEvent } from '../../core/event.js';
import type { PromMetrics } from './metrics.js';

/** Dead-letter administration, the same on every target. */
export interface DeadLetterAdmin {
  list(fn?: string): Promise<DeadLetter[]>;
  get(id: string): Promise<DeadLetter | undefined>;
  /** Puts the event back in front of its function; false if no such dead letter. */
  redrive(id: string): Promise<boolean>;
  /** Redrives every dead letter (of one function, if given); returns how many. */
  redriveAll(fn?: string): Promise<number>;
}

/** What a runtime gives the shared HTTP ingress. */
export interface IngressTarget {
  app: App;
  /** Resolves once the events are durable (in the log, stream or bus). */
  publish(events: CloudEvent[]): Promise<void>;
  /** Runs an http-triggered function; its emitted events are durable before this resolves. */
  invokeHttp(fn: AppFunction, event: CloudEvent): Promise<HttpResponse>;
  /** True while the backlog is past its bound: the ingress answers 429. */
  overloaded(): boolean;
  deadLetters: DeadLetterAdmin;
  health(): { ok: boolean; [detail: string]: unknown };
  metrics: PromMetrics;
}
