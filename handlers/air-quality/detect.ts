/**
 * Spike and stuck-value detection per sensor, one reading at a time in location order (so in
 * device order), with the detector state in `sensors`. Run by `assess` for each new reading: a
 * second function reading every accepted reading cost a third of the pipeline's CPU (its own
 * invocation, parse and commit), for work that is per reading like the AQI.
 */
import type { Context } from '../../core/index.js';
import { ALERT_RAISED, alertRecord, anomalyDraft, suppressedByCooldown } from './alerting.js';
import { detectReading, newSensorState, type PollutantValues, type SensorState } from './anomaly.js';
import type { AirQualityConfig } from './config.js';
import type { Reading } from './reading.js';

interface SensorItem {
  deviceId: string;
  location: string;
  detector: SensorState;
  lastRaised: Record<string, number>;
  [attribute: string]: unknown;
}

type DetectContext = Context<{ sensors: 'write'; alerts: 'write' }>;

/**
 * Feeds a reading into its sensor's detector and raises the anomalies it reveals (after the
 * cooldown). A reading not newer than the sensor's last one (out of order, or a correction)
 * leaves the state as it was.
 */
export async function detectAnomalies(ctx: DetectContext, reading: Reading, values: PollutantValues, config: AirQualityConfig): Promise<void> {
  const time = Date.parse(reading.time);
  const stored = (await ctx.tables.sensors.get({ location: reading.location, deviceId: reading.deviceId })) as SensorItem | undefined;
  const sensor: SensorItem = stored ?? { deviceId: reading.deviceId, location: reading.location, detector: newSensorState(), lastRaised: {} };
  const anomalies = detectReading(sensor.detector, time, values, config.anomaly);
  if (anomalies === undefined) return;
  const drafts = anomalies.map((a) => anomalyDraft(reading.deviceId, time, a)).filter((d) => !suppressedByCooldown(sensor.lastRaised, d, config.cooldownMs));
  await ctx.tables.sensors.put(sensor);
  for (const draft of drafts) {
    const alert = alertRecord(reading.location, draft, config.retentionMs);
    await ctx.tables.alerts.put(alert);
    ctx.emit(ALERT_RAISED, alert, { subject: reading.location, partitionkey: reading.location });
  }
}
