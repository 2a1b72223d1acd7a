/**
 * One ordered pass per location (partitionkey = location) over its readings and its ticks.
 *
 * A reading is stored with its US EPA AQI under `<time>#<deviceId>`, fed to its sensor's spike
 * and stuck-value detector (detect.ts), and added to the location's windows (windows.ts), which
 * may finalize minutes and raise their alerts. A reading resent (same device and time, a new
 * event id: an MQTT redelivery, a client retry) changes nothing, so nothing counts it twice; one
 * with new values for a stored reading corrects the windows. A tick lets a silent location
 * finalize its windows.
 *
 * One function rather than a chain: the windows need the readings in the same location order,
 * and a second ordered function over every reading cost its own event, invocation and commit
 * per reading (a fifth of the pipeline's CPU, bench scenario 4).
 */
import { fn, on, PermanentError } from '../../core/index.js';
import { ALERT_RAISED } from './alerting.js';
import { pollutantValues } from './anomaly.js';
import { computeAqi } from './aqi.js';
import type { AirQualityConfig } from './config.js';
import { detectAnomalies } from './detect.js';
import { READING_ACCEPTED } from './ingest.js';
import { readingSchema, type Reading } from './reading.js';
import { advanceWindows, LOCATION_TICK, WINDOW_USES, type LocationTick } from './windows.js';

/** A reading's key in `readings`: its time in canonical UTC, then the device. */
export function readingKey(reading: Pick<Reading, 'time' | 'deviceId'>): string {
  return `${new Date(reading.time).toISOString()}#${reading.deviceId}`;
}

/** A valid reading from an event's data, or a permanent error naming what is wrong. */
export function readingFrom(data: unknown): Reading {
  const parsed = readingSchema.safeParse(data);
  if (!parsed.success) throw new PermanentError(`not a valid reading: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'reading'}: ${i.message}`).join('; ')}`);
  return parsed.data;
}

export function assess(config: AirQualityConfig) {
  return fn({
    trigger: on({ type: [READING_ACCEPTED, LOCATION_TICK] }),
    uses: { ...WINDOW_USES, readings: 'write', sensors: 'write' },
    emits: [ALERT_RAISED],
    ordered: true,
    retry: { maxAttempts: 5 },
    handler: async (event, ctx) => {
      if (event.type === LOCATION_TICK) {
        const tick = event.data as LocationTick;
        await advanceWindows(ctx, String(tick.location), { kind: 'tick', now: Number(tick.now) }, config);
        return;
      }
      // Events can also arrive through POST /events, so the payload is checked again here.
      const reading = readingFrom(event.data);
      const result = computeAqi(reading);
      if (!result) throw new PermanentError('a reading needs at least one pollutant');
      const key = readingKey(reading);
      const existing = await ctx.tables.readings.get({ location: reading.location, key });
      const values = pollutantValues(reading);
      const previous = existing && pollutantValues(existing);
      if (previous && JSON.stringify(previous) === JSON.stringify(values)) return;
      const time = Date.parse(reading.time);
      const expires = Math.floor((time + config.retentionMs) / 1000);
      await ctx.tables.readings.put({ ...reading, key, aqi: result.aqi, category: result.category.name, pollutant: result.pollutant, expires });
      await detectAnomalies(ctx, reading, values, config);
      const ingested = event.ingesttime ? Date.parse(event.ingesttime) : time;
      await advanceWindows(ctx, reading.location, { kind: 'reading', deviceId: reading.deviceId, time, ingested, values, ...(previous ? { previous } : {}) }, config);
    },
  });
}
