/**
 * City air-quality monitoring: sensor readings in over HTTP and MQTT, US EPA AQI per reading,
 * per-location windows, alerts (category changes, sustained exceedance, faulty sensors) fanned out
 * to webhooks, a Server-Sent Events stream and the alerts table.
 *
 * Flow (events; functions in brackets):
 *   POST /readings [ingest], MQTT aq/<location>/<deviceId> [ingestMqtt]
 *     -> aq.reading.accepted (partitionkey: location)
 *        -> [assess] in location order: AQI, stored in `readings`, per-sensor spikes and stuck
 *           values, then 1/5/60-minute windows; on finalized minutes: category, sustained, drift.
 *           Resent readings change nothing.
 *   aq.alert.raised -> [notify] -> aq.alert.delivery per subscriber -> [deliver] signed webhook POST
 *   schedule rate(1 minute) [tick] -> aq.location.tick -> [assess] finalizes silent locations
 *
 * HTTP endpoints (JSON; errors are `{ "error": "..." }` with a 4xx status):
 *   POST /readings                   one reading or up to 500; device auth (Bearer / x-api-key, or
 *                                    x-petrel-timestamp + x-petrel-signature); 202 {accepted}
 *   GET  /locations                  [{location, time, aqi, category, color, pollutant, readings,
 *                                    alertLevel, finalizedThrough, tooLate}]: latest minute per location
 *   GET  /readings?location=&since=&until=&limit=
 *                                    one location's readings, oldest first (default: last 15 minutes;
 *                                    the newest `limit` (1000) when more match)
 *   GET  /windows?location=&size=1|5|60&since=&limit=
 *                                    [{location, size, start, end, readings, means, aqi, category,
 *                                    color, pollutant, final}], oldest first (default: newest 60)
 *   GET  /alerts?location=&kind=category|sustained|anomaly&since=&until=&limit=
 *                                    [{id, location, kind, time, message, ...}], newest first; by kind:
 *                                    category: direction up|down, level, category, previousCategory, aqi, pollutant
 *                                    sustained: aqi, category, pollutant, minutes, since
 *                                    anomaly: deviceId, anomaly spike|stuck|drift, pollutant, value, expected, score
 *   GET  /alerts/stream?location=&kind=   Server-Sent Events of the same alerts as raised (live.ts)
 *   GET  /stats                      throughput, ingest-to-alert p50/p99, errors, retries, dead letters (live.ts)
 *   POST /subscriptions {url, secret?, kinds?, locations?}   webhook subscriber; device auth; 201 with its secret
 *   GET  /subscriptions, DELETE /subscriptions/:id           device auth
 *   and the runtime's own: GET /admin/dead-letters[?function=], GET /admin/dead-letters/:id,
 *   POST /admin/dead-letters/:id/redrive, POST /admin/dead-letters-redrive, GET /metrics, GET /healthz
 */
import { defineApp } from '../../core/index.js';
import { listAlerts } from './alerts.js';
import { assess } from './assess.js';
import { configFromEnv, type AirQualityConfig } from './config.js';
import { ingestHttp, ingestMqtt } from './ingest.js';
import { LiveApi, type LiveRoute, type LiveSource } from './live.js';
import { listLocations, listReadings, listWindows } from './queries.js';
import { AirQualitySimulator, httpSender, runSimulation } from './simulator.js';
import { listSubscriptions, subscribe, unsubscribe } from './subscriptions.js';
import { tables } from './tables.js';
import { deliver, notify } from './webhooks.js';
import { tick } from './windows.js';

export function createAirQualityApp(config: AirQualityConfig) {
  return defineApp({
    name: 'air-quality',
    resources: tables,
    functions: {
      ingest: ingestHttp(config),
      ingestMqtt: ingestMqtt(config),
      assess: assess(config),
      ...(config.idleTick ? { tick: tick(config) } : {}),
      notify: notify(config),
      deliver: deliver(config),
      listAlerts: listAlerts(),
      listLocations: listLocations(),
      listReadings: listReadings(config),
      listWindows: listWindows(),
      subscribe: subscribe(),
      listSubscriptions: listSubscriptions(),
      unsubscribe: unsubscribe(),
    },
  });
}

export default createAirQualityApp(configFromEnv());

/** What `petrel dev` adds for this app: the live endpoints, and a simulated city feeding it. */
export const dev = {
  routes: (runtime: LiveSource): LiveRoute[] => new LiveApi(runtime).routes,
  /** Unless PETREL_SIMULATE=0: 40 sensors in 5 locations at PETREL_SIMULATE_RATE readings/s (20), 3 turning faulty after 30-60 minutes (drift needs 30 minutes of history to show). */
  start: async ({ baseUrl, apiKey, log }: { baseUrl: string; apiKey?: string; log: (line: string) => void }): Promise<() => Promise<void>> => {
    if (process.env.PETREL_SIMULATE === '0') return async () => undefined;
    if (!apiKey) {
      log('simulator off: the configured device keys are all hashes, and it needs a key itself');
      return async () => undefined;
    }
    const rate = Number(process.env.PETREL_SIMULATE_RATE ?? 20);
    if (!(rate > 0)) throw new Error(`PETREL_SIMULATE_RATE must be a positive number of readings per second, got "${process.env.PETREL_SIMULATE_RATE}"`);
    const now = Date.now();
    const simulator = new AirQualitySimulator({ devices: 40, locations: 5, seed: now % 2 ** 31, faults: { stuck: 1, spike: 1, drift: 1 }, faultWindow: [now + 30 * 60_000, now + 60 * 60_000] });
    let reported = 0;
    let reportedAt = 0;
    const run = runSimulation({
      simulator,
      rate,
      send: httpSender(baseUrl, () => ({ authorization: `Bearer ${apiKey}` })),
      // Failures are worth a line at most every 10 s; one per failed send would flood the terminal.
      onSettled: (progress) => {
        if (progress.errors === reported || Date.now() - reportedAt < 10_000) return;
        log(`simulator: ${progress.errors} readings not accepted so far; last: ${progress.lastError}`);
        reported = progress.errors;
        reportedAt = Date.now();
      },
    });
    log(`simulating 40 sensors in 5 locations at ${rate} readings/s, 3 turning faulty in 30-60 minutes (PETREL_SIMULATE=0 turns it off)`);
    return () => run.stop();
  },
};
