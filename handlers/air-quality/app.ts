/**
 * City air-quality monitoring: sensor readings in over HTTP, US EPA AQI per reading, alerts at
 * "Unhealthy for Sensitive Groups" or worse.
 */
import { defineApp } from '../../core/index.js';
import alerts from './alerts.js';
import assess from './assess.js';
import ingest from './ingest.js';
import { tables } from './tables.js';

export default defineApp({
  name: 'air-quality',
  resources: tables,
  functions: { ingest, assess, listAlerts: alerts },
});
