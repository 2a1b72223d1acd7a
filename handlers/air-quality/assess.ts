/** Stores each accepted reading with its US EPA AQI and raises an alert at "Unhealthy for Sensitive Groups" or worse. */
import { fn, on, PermanentError } from '../../core/index.js';
import { computeAqi, raisesAlert } from './aqi.js';
import { READING_ACCEPTED } from './ingest.js';
import { readingSchema } from './reading.js';
import { ALL_LOCATIONS } from './tables.js';

export const ALERT_RAISED = 'aq.alert.raised';

export default fn({
  trigger: on({ type: [READING_ACCEPTED] }),
  uses: { readings: 'write', alerts: 'write', locations: 'write' },
  emits: [ALERT_RAISED],
  retry: { maxAttempts: 5 },
  handler: async (event, ctx) => {
    // Events can also arrive through POST /events, so the payload is checked again here.
    const parsed = readingSchema.safeParse(event.data);
    if (!parsed.success) throw new PermanentError(`not a valid reading: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'reading'}: ${i.message}`).join('; ')}`);
    const reading = parsed.data;
    const result = computeAqi(reading);
    if (!result) throw new PermanentError('a reading needs at least one pollutant');
    const key = `${reading.time}#${reading.deviceId}`;
    await ctx.tables.readings.put({ ...reading, key, aqi: result.aqi, category: result.category.name, pollutant: result.pollutant });
    if (!(await ctx.tables.locations.get({ scope: ALL_LOCATIONS, location: reading.location }))) {
      await ctx.tables.locations.put({ scope: ALL_LOCATIONS, location: reading.location });
    }
    if (!raisesAlert(result.aqi)) return;
    const alert = {
      location: reading.location,
      key,
      deviceId: reading.deviceId,
      time: reading.time,
      aqi: result.aqi,
      category: result.category.name,
      pollutant: result.pollutant,
      readingId: event.id,
    };
    await ctx.tables.alerts.put(alert);
    ctx.emit(ALERT_RAISED, alert, { subject: reading.location });
  },
});
