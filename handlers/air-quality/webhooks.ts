/**
 * Alert fan-out to webhook subscribers: `notify` turns each raised alert into one delivery event
 * per subscriber, and `deliver` POSTs it, signed, retrying with the runtime's backoff and
 * dead-lettering after the last attempt. One delivery per subscriber, so a subscriber that is
 * down delays and dead-letters only its own deliveries.
 *
 * Signature: `x-petrel-signature: sha256=<hex>`, the HMAC-SHA256 of `<x-petrel-timestamp>.<body>`
 * with the subscriber's secret (timestamp in Unix seconds). A receiver recomputes it and rejects
 * a timestamp far from its clock (`verifyWebhook`).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { fn, on, PermanentError } from '../../core/index.js';
import { ALERT_RAISED, type AlertRecord } from './alerting.js';
import { redactUrl, type AirQualityConfig, type AlertKind, type WebhookSubscriber } from './config.js';
import { ALL } from './tables.js';

export const ALERT_DELIVERY = 'aq.alert.delivery';

export interface AlertDelivery {
  subscriberId: string;
  /** The `aq.alert.raised` event's id: receivers dedupe by it (a retried delivery repeats it). */
  alertEventId: string;
  alert: AlertRecord;
}

export interface StoredSubscriber extends WebhookSubscriber {
  locations?: string[];
}

export function webhookSignature(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** Headers for a webhook body signed now. */
export function signWebhook(secret: string, body: string, now = Date.now()): Record<string, string> {
  const timestamp = String(Math.floor(now / 1000));
  return { 'x-petrel-timestamp': timestamp, 'x-petrel-signature': webhookSignature(secret, timestamp, body) };
}

/** Is this a body signed with `secret` within `toleranceS` of now? (For receivers, and tests.) */
export function verifyWebhook(secret: string, headers: Record<string, string | string[] | undefined>, body: string, now = Date.now(), toleranceS = 300): boolean {
  const timestamp = headers['x-petrel-timestamp'];
  const signature = headers['x-petrel-signature'];
  if (typeof timestamp !== 'string' || typeof signature !== 'string' || !/^\d{1,12}$/.test(timestamp)) return false;
  if (Math.abs(now / 1000 - Number(timestamp)) > toleranceS) return false;
  const expected = Buffer.from(webhookSignature(secret, timestamp, body));
  const given = Buffer.from(signature);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function wants(subscriber: StoredSubscriber, alert: AlertRecord): boolean {
  return (!subscriber.kinds || subscriber.kinds.includes(alert.kind as AlertKind)) && (!subscriber.locations || subscriber.locations.includes(alert.location));
}

export function notify(config: AirQualityConfig) {
  return fn({
    trigger: on({ type: [ALERT_RAISED] }),
    uses: { subscribers: 'read' },
    emits: [ALERT_DELIVERY],
    handler: async (event, ctx) => {
      const alert = event.data as AlertRecord;
      const registered = (await ctx.tables.subscribers.query(ALL)) as unknown as StoredSubscriber[];
      for (const subscriber of [...config.webhooks, ...registered]) {
        if (!wants(subscriber, alert)) continue;
        const delivery: AlertDelivery = { subscriberId: subscriber.id, alertEventId: event.id, alert };
        ctx.emit(ALERT_DELIVERY, delivery, { partitionkey: subscriber.id, subject: subscriber.id });
      }
    },
  });
}

export function deliver(config: AirQualityConfig) {
  return fn({
    trigger: on({ type: [ALERT_DELIVERY] }),
    uses: { subscribers: 'read' },
    retry: config.webhookRetry,
    timeoutMs: config.webhookTimeoutMs + 5_000,
    handler: async (event, ctx) => {
      const delivery = event.data as AlertDelivery;
      const subscriber = config.webhooks.find((w) => w.id === delivery.subscriberId)
        ?? ((await ctx.tables.subscribers.get({ scope: ALL, id: delivery.subscriberId })) as StoredSubscriber | undefined);
      if (!subscriber) return void ctx.log.info({ subscriberId: delivery.subscriberId }, 'subscriber gone; delivery dropped');
      const body = JSON.stringify({ id: delivery.alertEventId, type: ALERT_RAISED, alert: delivery.alert });
      const where = redactUrl(subscriber.url);
      let response: Response;
      try {
        response = await fetch(subscriber.url, {
          method: 'POST',
          body,
          redirect: 'manual',
          headers: { 'content-type': 'application/json', 'user-agent': 'petrel-air-quality', 'x-petrel-delivery': event.id, ...signWebhook(subscriber.secret, body) },
          signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(config.webhookTimeoutMs)]),
        });
        await response.body?.cancel();
      } catch (error) {
        const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).name;
        throw new Error(`webhook ${where} unreachable (${cause})`);
      }
      if (response.status >= 200 && response.status < 300) return;
      const message = `webhook ${where} answered ${response.status}`;
      // Other 4xx mean the request itself is refused: trying again would give the same answer.
      if (response.status >= 400 && response.status < 500 && response.status !== 408 && response.status !== 429) throw new PermanentError(message);
      throw new Error(message);
    },
  });
}
