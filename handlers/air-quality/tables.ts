/** The air-quality app's tables. */
import { table } from '../../core/index.js';

/** Partition of `locations` that lists every location (a city has few, so one partition serves). */
export const ALL_LOCATIONS = 'all';

export const tables = {
  /** Every reading with its AQI, per location in time order. */
  readings: table({ partitionKey: 'location', sortKey: 'key' }),
  /** Raised alerts, per location in time order. */
  alerts: table({ partitionKey: 'location', sortKey: 'key' }),
  /** Known locations, so alerts can be listed across the city without a scan. */
  locations: table({ partitionKey: 'scope', sortKey: 'location' }),
};
