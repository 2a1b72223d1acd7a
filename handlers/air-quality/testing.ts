/**
 * For this app's tests: the app on the embedded runtime in a temp dir, served on a free port with
 * a device key and the live endpoints, plus helpers to feed readings and read the JSON endpoints.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { DeviceAuth } from '../../adapters/http/auth.js';
import { LocalRuntime } from '../../adapters/local/index.js';
import { newEventId, type CloudEvent } from '../../core/event.js';
import { createAirQualityApp } from './app.js';
import { airQualityConfig, type AirQualityConfig } from './config.js';
import { READING_ACCEPTED } from './ingest.js';
import { LiveApi } from './live.js';
import type { Reading } from './reading.js';

export const TEST_KEY = 'test-device-key-0123456789';
export const MINUTE = 60_000;

export interface TestApp {
  runtime: LocalRuntime;
  base: string;
  live: LiveApi;
  config: AirQualityConfig;
  get(path: string): Promise<unknown>;
  /** Publishes readings as `aq.reading.accepted` events (what ingest emits), waiting until all is settled. */
  feed(readings: Reading[], ids?: string[]): Promise<string[]>;
  stop(): Promise<void>;
}

export async function startTestApp(overrides: Partial<AirQualityConfig> = {}): Promise<TestApp> {
  const config = airQualityConfig({ idleTick: false, allowedLatenessMs: 2 * MINUTE, ...overrides });
  const dataDir = mkdtempSync(join(tmpdir(), 'petrel-aq-'));
  const runtime = await LocalRuntime.start(createAirQualityApp(config), { dataDir, logger: pino({ level: 'silent' }) });
  const live = new LiveApi(runtime);
  const server = await runtime.listen(0, '127.0.0.1', {
    deviceAuth: new DeviceAuth([TEST_KEY]),
    extend: (router) => live.routes.forEach((route) => router.get(route.path, (req, res) => route.handle(req, res))),
  });
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    runtime,
    base,
    live,
    config,
    async get(path) {
      const response = await fetch(base + path);
      const body: unknown = await response.json();
      if (!response.ok) throw new Error(`GET ${path}: ${response.status} ${JSON.stringify(body)}`);
      return body;
    },
    async feed(readings, ids) {
      const now = new Date().toISOString();
      const events: CloudEvent[] = readings.map((reading, i) => ({
        specversion: '1.0',
        id: ids?.[i] ?? newEventId(),
        source: 'test',
        type: READING_ACCEPTED,
        data: reading,
        partitionkey: reading.location,
        subject: reading.location,
        ingesttime: now,
      }));
      await runtime.publish(events);
      await runtime.idle();
      return events.map((e) => e.id);
    },
    async stop() {
      live.close();
      await runtime.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
