/** POST /readings: validates one reading or a batch and emits one event per reading. */
import { fn, http, type HttpRequestData } from '../../core/index.js';
import { parseReadings } from './reading.js';

export const READING_ACCEPTED = 'aq.reading.accepted';

export default fn({
  trigger: http('POST', '/readings'),
  emits: [READING_ACCEPTED],
  handler: async (event, ctx) => {
    const parsed = parseReadings((event.data as HttpRequestData).body);
    if (!parsed.ok) return { status: 400, body: { error: 'invalid readings; none were accepted', errors: parsed.errors } };
    for (const reading of parsed.readings) {
      // Per-device order lets window and anomaly functions see a sensor's readings in sequence.
      ctx.emit(READING_ACCEPTED, reading, { partitionkey: reading.deviceId, subject: reading.location });
    }
    return { status: 202, body: { accepted: parsed.readings.length } };
  },
});
