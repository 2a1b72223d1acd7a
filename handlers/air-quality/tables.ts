/** The air-quality app's tables. Items with `expires` (epoch seconds) are swept after it. */
import { table } from '../../core/index.js';

/** Partition of `locations` and `subscribers` that lists them all (a city has few: one partition serves). */
export const ALL = 'all';

export const tables = {
  /** Every reading with its AQI, per location by `<time>#<deviceId>`: a resent reading lands on itself. */
  readings: table({ partitionKey: 'location', sortKey: 'key', ttlAttribute: 'expires' }),
  /** Windows per location by `<size>m#<start>`: 1-minute tumbling, 5- and 60-minute sliding. */
  windows: table({ partitionKey: 'location', sortKey: 'key', ttlAttribute: 'expires' }),
  /** Per location: watermark, first open minute, alert state (written only by `windows`, in order). */
  windowState: table({ partitionKey: 'location' }),
  /** Raised alerts, per location by `<time>#<dedupe key>`. */
  alerts: table({ partitionKey: 'location', sortKey: 'key', ttlAttribute: 'expires' }),
  /** Known locations with their latest AQI, for the console and for listing across the city. */
  locations: table({ partitionKey: 'scope', sortKey: 'location' }),
  /** Spike and stuck detector state per sensor at a location (written only by `assess`, in location order). */
  sensors: table({ partitionKey: 'location', sortKey: 'deviceId' }),
  /**
   * Per location by `<minute start>#<deviceId>`: a sensor's sums in a minute not yet final, for
   * drift against its peers when the minute is (then deleted).
   */
  deviceMinutes: table({ partitionKey: 'location', sortKey: 'key', ttlAttribute: 'expires' }),
  /** Drift detector state per sensor at a location (written only by `windows`, in location order). */
  drift: table({ partitionKey: 'location', sortKey: 'deviceId' }),
  /** Webhook subscribers registered with POST /subscriptions. */
  subscribers: table({ partitionKey: 'scope', sortKey: 'id' }),
};
