/**
 * Stores each accepted reading with its US EPA AQI under `<time>#<deviceId>`, feeds it to its
 * sensor's spike and stuck-value detector (detect.ts), and passes new and corrected readings on
 * to the location's windows. A reading resent (same device and time, a new event id: an MQTT
 * redelivery, a client retry) changes nothing and goes no further, so nothing downstream counts
 * it twice. Runs in location order, so two copies of one reading never race.
 */
import { fn, on, PermanentError } from '../../core/index.js';
import { ALERT_RAISED } from './alerting.js';
import { computeAqi, POLLUTANTS } from './aqi.js';
import type { PollutantValues } from './anomaly.js';
import type { AirQualityConfig } from './config.js';
import { detectAnomalies } from './detect.js';
import { READING_ACCEPTED } from './ingest.js';
import { readingSchema, type Reading } from './reading.js';

export const READING_ASSESSED = 'aq.reading.assessed';

/** The data of `aq.reading.assessed`. */
export interface AssessedReading {
  reading: Reading;
  aqi: number;
  /** The values this reading replaces (a correction); absent for a new reading. */
  previous?: PollutantValues;
}

/** A reading's key in `readings`: its time in canonical UTC, then the device. */
export function readingKey(reading: Pick<Reading, 'time' | 'deviceId'>): string {
  return `${new Date(reading.time).toISOString()}#${reading.deviceId}`;
}

export function pollutantValues(item: Record<string, unknown>): PollutantValues {
  const values: PollutantValues = {};
  for (const p of POLLUTANTS) if (typeof item[p] === 'number') values[p] = item[p];
  return values;
}

/** A valid reading from an event's data, or a permanent error naming what is wrong. */
export function readingFrom(data: unknown): Reading {
  const parsed = readingSchema.safeParse(data);
  if (!parsed.success) throw new PermanentError(`not a valid reading: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'reading'}: ${i.message}`).join('; ')}`);
  return parsed.data;
}

export function assess(config: AirQualityConfig) {
  return fn({
    trigger: on({ type: [READING_ACCEPTED] }),
    uses: { readings: 'write', sensors: 'write', alerts: 'write' },
    emits: [READING_ASSESSED, ALERT_RAISED],
    ordered: true,
    retry: { maxAttempts: 5 },
    handler: async (event, ctx) => {
      // Events can also arrive through POST /events, so the payload is checked again here.
      const reading = readingFrom(event.data);
      const result = computeAqi(reading);
      if (!result) throw new PermanentError('a reading needs at least one pollutant');
      const key = readingKey(reading);
      const existing = await ctx.tables.readings.get({ location: reading.location, key });
      const values = pollutantValues(reading);
      const previous = existing && pollutantValues(existing);
      if (previous && JSON.stringify(previous) === JSON.stringify(values)) return;
      const expires = Math.floor((Date.parse(reading.time) + config.retentionMs) / 1000);
      await ctx.tables.readings.put({ ...reading, key, aqi: result.aqi, category: result.category.name, pollutant: result.pollutant, expires });
      const assessed: AssessedReading = { reading, aqi: result.aqi, ...(previous ? { previous } : {}) };
      ctx.emit(READING_ASSESSED, assessed, { partitionkey: reading.location, subject: reading.location });
      await detectAnomalies(ctx, reading, values, config);
    },
  });
}
