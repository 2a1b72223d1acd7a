/**
 * Spike and stuck-value detection per sensor, one reading at a time in location order (so in
 * device order), with the detector state in `sensors`. A reading not newer than the sensor's last one (a duplicate, or
 * out of order) leaves the state as it was. Invalid readings are left to `assess`, which
 * dead-letters them with the reason; one bad event gives one dead letter.
 */
import { fn, on } from '../../core/index.js';
import { ALERT_RAISED, alertRecord, anomalyDraft, suppressedByCooldown } from './alerting.js';
import { detectReading, newSensorState, type SensorState } from './anomaly.js';
import { pollutantValues } from './assess.js';
import type { AirQualityConfig } from './config.js';
import { READING_ACCEPTED } from './ingest.js';
import { readingSchema } from './reading.js';

interface SensorItem {
  deviceId: string;
  location: string;
  detector: SensorState;
  lastRaised: Record<string, number>;
  [attribute: string]: unknown;
}

export function detect(config: AirQualityConfig) {
  return fn({
    trigger: on({ type: [READING_ACCEPTED] }),
    uses: { sensors: 'write', alerts: 'write' },
    emits: [ALERT_RAISED],
    ordered: true,
    handler: async (event, ctx) => {
      const parsed = readingSchema.safeParse(event.data);
      if (!parsed.success) return;
      const reading = parsed.data;
      const time = Date.parse(reading.time);
      const stored = (await ctx.tables.sensors.get({ location: reading.location, deviceId: reading.deviceId })) as SensorItem | undefined;
      const sensor: SensorItem = stored ?? { deviceId: reading.deviceId, location: reading.location, detector: newSensorState(), lastRaised: {} };
      const anomalies = detectReading(sensor.detector, time, pollutantValues(reading), config.anomaly);
      if (anomalies === undefined) return;
      const drafts = anomalies.map((a) => anomalyDraft(reading.deviceId, time, a)).filter((d) => !suppressedByCooldown(sensor.lastRaised, d, config.cooldownMs));
      await ctx.tables.sensors.put(sensor);
      for (const draft of drafts) {
        const alert = alertRecord(reading.location, draft, config.retentionMs);
        await ctx.tables.alerts.put(alert);
        ctx.emit(ALERT_RAISED, alert, { subject: reading.location, partitionkey: reading.location });
      }
    },
  });
}
