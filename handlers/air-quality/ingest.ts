/**
 * Ingest, over HTTP (POST /readings, device-authenticated) and MQTT (`aq/<location>/<deviceId>`):
 * both validate with the one reading schema and clock-skew bounds, and emit one
 * `aq.reading.accepted` per reading, keyed by location: the functions after it see a location's
 * readings in the order they came in (so each device's too), which keeps a location's event time
 * as ordered as it arrived even when the runtime runs a busy partition's events in batches.
 */
import { fn, http, mqtt, PermanentError, type Context, type HttpRequestData, type MqttMessageData } from '../../core/index.js';
import type { AirQualityConfig } from './config.js';
import { parseReadings, type Reading, type ReadingError, type TimeBounds } from './reading.js';

export const READING_ACCEPTED = 'aq.reading.accepted';

function bounds(config: AirQualityConfig): TimeBounds {
  return { now: config.now(), maxFutureMs: config.maxFutureMs, maxAgeMs: config.maxAgeMs };
}

function emitReadings(ctx: Context, readings: Reading[]): void {
  for (const reading of readings) ctx.emit(READING_ACCEPTED, reading, { partitionkey: reading.location, subject: reading.location });
}

export function ingestHttp(config: AirQualityConfig) {
  return fn({
    trigger: http('POST', '/readings', { auth: 'device' }),
    emits: [READING_ACCEPTED],
    handler: async (event, ctx) => {
      const parsed = parseReadings((event.data as HttpRequestData).body, bounds(config));
      if (!parsed.ok) return { status: 400, body: { error: 'invalid readings; none were accepted', errors: parsed.errors } };
      emitReadings(ctx, parsed.readings);
      return { status: 202, body: { accepted: parsed.readings.length } };
    },
  });
}

/** The location and device a topic `aq/<location>/<deviceId>` names (the filter's two `+` levels). */
export function topicIdentity(topic: string): { location: string; deviceId: string } | undefined {
  const levels = topic.split('/');
  return levels.length === 3 && levels[1] && levels[2] ? { location: levels[1], deviceId: levels[2] } : undefined;
}

function describe(errors: ReadingError[]): string {
  return errors.map((e) => `${e.index === undefined ? '' : `[${e.index}] `}${e.field}: ${e.message}`).join('; ');
}

/**
 * An MQTT message holds one reading or an array of them, as JSON. `location` and `deviceId` may
 * be left out (the topic names them); given, they must agree with the topic. A bad message fails
 * permanently, so it becomes a dead letter that says why.
 */
export function ingestMqtt(config: AirQualityConfig) {
  return fn({
    trigger: mqtt(config.mqttTopic),
    emits: [READING_ACCEPTED],
    // Per topic (device) in order, so the readings keep the order the device published them in.
    ordered: true,
    handler: async (event, ctx) => {
      const message = event.data as MqttMessageData;
      const identity = topicIdentity(message.topic);
      if (!identity) throw new PermanentError(`topic "${message.topic}" is not aq/<location>/<deviceId>`);
      if (message.payload === undefined) throw new PermanentError('the payload is not UTF-8 text; send a JSON reading');
      let body: unknown;
      try {
        body = JSON.parse(message.payload);
      } catch (error) {
        throw new PermanentError(`the payload is not valid JSON: ${(error as Error).message}`);
      }
      const items = Array.isArray(body) ? body : [body];
      for (const item of items) {
        if (typeof item !== 'object' || item === null || Array.isArray(item)) continue; // the schema names it
        const fields = item as Record<string, unknown>;
        for (const name of ['location', 'deviceId'] as const) {
          if (fields[name] !== undefined && fields[name] !== identity[name]) {
            throw new PermanentError(`${name} ${JSON.stringify(fields[name])} disagrees with the topic "${message.topic}"`);
          }
          fields[name] = identity[name];
        }
      }
      const parsed = parseReadings(body, bounds(config));
      if (!parsed.ok) throw new PermanentError(`invalid reading: ${describe(parsed.errors)}`);
      emitReadings(ctx, parsed.readings);
    },
  });
}
