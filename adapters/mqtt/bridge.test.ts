import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { AppDefinitionError, defineApp, fn, mqtt as mqttTrigger, MQTT_MESSAGE_TYPE, topicMatches, triggerPattern, type MqttMessageData } from '../../core/app.js';
import type { CloudEvent } from '../../core/event.js';
import { createAirQualityApp } from '../../handlers/air-quality/app.js';
import { airQualityConfig } from '../../handlers/air-quality/config.js';
import { LocalRuntime } from '../local/index.js';
import { MqttBridge, mqttMessageEvent, mqttTopicFilters, type MqttBridgeTarget } from './index.js';

const silent = pino({ level: 'silent' });
const BROKER = process.env.PETREL_MQTT_URL ?? 'mqtt://127.0.0.1:1883';

describe('mqtt trigger (core)', () => {
  it('accepts MQTT topic filters and refuses malformed ones', () => {
    for (const filter of ['aq/+/+', 'aq/#', '#', '+', 'a/b/c', 'sport/+/player1']) expect(mqttTrigger(filter)).toEqual({ kind: 'mqtt', topic: filter });
    for (const filter of ['', 'aq/#/x', 'aq/x#', 'aq/+x', 'a\0b']) expect(() => mqttTrigger(filter)).toThrow(AppDefinitionError);
  });

  it('matches topics as MQTT does: + one level, # the rest (and the parent), $ topics only by name', () => {
    const cases: Array<[string, string, boolean]> = [
      ['aq/+/+', 'aq/harbour/d-1', true],
      ['aq/+/+', 'aq/harbour', false],
      ['aq/+/+', 'aq/harbour/d-1/x', false],
      ['aq/+/+', 'aq//d-1', true],
      ['aq/#', 'aq', true],
      ['aq/#', 'aq/a/b/c', true],
      ['aq/#', 'aqx/a', false],
      ['+/+', '/finance', true],
      ['#', '$SYS/broker', false],
      ['$SYS/#', '$SYS/broker', true],
      ['a/b', 'a/b', true],
      ['a/b', 'a/c', false],
    ];
    for (const [filter, topic, expected] of cases) expect([filter, topic, topicMatches(filter, topic)]).toEqual([filter, topic, expected]);
  });

  it('routes by the filters the bridge found, exactly (where an EventBridge wildcard could not say "one level")', () => {
    const app = defineApp({ name: 'routes', functions: { readings: fn({ trigger: mqttTrigger('aq/+/+'), handler: () => undefined }), everything: fn({ trigger: mqttTrigger('aq/#'), handler: () => undefined }) } });
    expect(triggerPattern(app.function('readings')!.spec.trigger, 'readings')).toEqual({ type: [MQTT_MESSAGE_TYPE], data: { filters: ['aq/+/+'] } });
    expect(mqttTopicFilters(app)).toEqual(['aq/+/+', 'aq/#']);
    const deep = mqttMessageEvent(app, mqttTopicFilters(app), { topic: 'aq/a/b/c', payload: Buffer.from('{}'), qos: 1, retain: false });
    const reading = mqttMessageEvent(app, mqttTopicFilters(app), { topic: 'aq/a/b', payload: Buffer.from('{}'), qos: 1, retain: false });
    expect([app.function('readings')!.pattern!.matches(deep), app.function('everything')!.pattern!.matches(deep)]).toEqual([false, true]);
    expect([app.function('readings')!.pattern!.matches(reading), app.function('everything')!.pattern!.matches(reading)]).toEqual([true, true]);
  });

  it('makes a CloudEvent of a message: subject and partitionkey the topic, text or base64 payload, ingest time', () => {
    const app = defineApp({ name: 'events', functions: { f: fn({ trigger: mqttTrigger('aq/+/+'), handler: () => undefined }) } });
    const now = new Date('2026-11-28T10:00:00Z');
    const text = mqttMessageEvent(app, ['aq/+/+'], { topic: 'aq/x/y', payload: Buffer.from('{"pm25":1}'), qos: 1, retain: true }, now);
    expect(text).toMatchObject({ specversion: '1.0', type: MQTT_MESSAGE_TYPE, source: 'petrel/events/mqtt', subject: 'aq/x/y', partitionkey: 'aq/x/y', ingesttime: now.toISOString() });
    expect(text.data).toEqual({ topic: 'aq/x/y', filters: ['aq/+/+'], payload: '{"pm25":1}', qos: 1, retain: true });
    const binary = mqttMessageEvent(app, ['aq/+/+'], { topic: 'aq/x/y', payload: Buffer.from([0xff, 0xfe, 0x00]), qos: 0, retain: false }, now);
    expect(binary.data).toEqual({ topic: 'aq/x/y', filters: ['aq/+/+'], payloadBase64: '//4A', qos: 0, retain: false });
  });
});

async function brokerReachable(): Promise<boolean> {
  try {
    const client = await mqtt.connectAsync(BROKER, { connectTimeout: 1500, reconnectPeriod: 0 });
    await client.endAsync();
    return true;
  } catch {
    return false;
  }
}

const reachable = await brokerReachable();
if (!reachable) console.warn(`MQTT bridge end-to-end tests skipped: no MQTT broker answers at ${BROKER} (set PETREL_MQTT_URL)`);

describe.skipIf(!reachable)('MQTT bridge against the broker', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  async function publisher() {
    const client = await mqtt.connectAsync(BROKER, { clientId: `petrel-test-pub-${randomUUID()}` });
    cleanups.push(() => client.endAsync());
    return client;
  }

  async function runtimeFor(app: ReturnType<typeof defineApp>) {
    const dataDir = mkdtempSync(join(tmpdir(), 'petrel-mqtt-'));
    const runtime = await LocalRuntime.start(app, { dataDir, logger: silent });
    cleanups.push(async () => {
      await runtime.stop();
      rmSync(dataDir, { recursive: true, force: true });
    });
    return runtime;
  }

  async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await probe();
      if (value !== undefined) return value;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  it('ingests air-quality readings published on aq/<location>/<device>, and dead-letters a bad message with its reason', async () => {
    const prefix = `petrel-test-${randomUUID().slice(0, 8)}`;
    const runtime = await runtimeFor(createAirQualityApp(airQualityConfig({ mqttTopic: `${prefix}/+/+`, idleTick: false })));
    const server = await runtime.listen(0);
    const bridge = MqttBridge.start(runtime, { url: BROKER, logger: silent, clientId: `petrel-test-${randomUUID()}`, clean: true });
    cleanups.push(() => bridge.stop());
    await bridge.ready();
    const client = await publisher();
    const time = new Date(Date.now() - 2000).toISOString();
    await client.publishAsync(`${prefix}/dock/m-1`, JSON.stringify({ time, pm25: 42.1, no2: 20 }), { qos: 1 });
    await client.publishAsync(`${prefix}/dock/m-2`, 'not json', { qos: 1 });
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const stored = await until('the reading to be assessed and stored', async () => ((await (await fetch(`${base}/readings?location=dock`)).json()) as Array<Record<string, unknown>>)[0]);
    // PM2.5 42.1: (150-101)/(55.4-35.5)*(42.1-35.5)+101 = 117.25 -> 117.
    expect(stored).toMatchObject({ deviceId: 'm-1', location: 'dock', time, pm25: 42.1, no2: 20, aqi: 117 });
    const letter = await until('the dead letter', async () => (await runtime.deadLetters.list('ingestMqtt'))[0]);
    expect((letter.event.data as MqttMessageData).topic).toBe(`${prefix}/dock/m-2`);
    expect(letter.attempts.map((a) => a.error.message)).toEqual([expect.stringMatching(/^the payload is not valid JSON/)]);
    expect(bridge.count).toBe(2);
  });

  it('acknowledges a message only once it is durable: one that could not be published is redelivered to the next bridge', async () => {
    const topic = `petrel-test-${randomUUID().slice(0, 8)}/a/b`;
    const app = defineApp({ name: 'ack-test', functions: { f: fn({ trigger: mqttTrigger(topic), handler: () => undefined }) } });
    const clientId = `petrel-test-${randomUUID()}`;
    const attempts: string[] = [];
    const refusing: MqttBridgeTarget = {
      app,
      overloaded: () => false,
      publish: async (events) => {
        attempts.push(String((events[0].data as MqttMessageData).payload));
        throw new Error('the store is down');
      },
    };
    // A persistent session (clean: false) keeps unacknowledged QoS 1 messages for the client id.
    const first = MqttBridge.start(refusing, { url: BROKER, logger: silent, clientId, clean: false });
    await first.ready();
    const client = await publisher();
    await client.publishAsync(topic, 'm1', { qos: 1 });
    await until('a publish attempt', () => (attempts.length ? true : undefined));
    await first.stop();

    const published: CloudEvent[] = [];
    const second = MqttBridge.start({ app, overloaded: () => false, publish: async (events) => void published.push(...events) }, { url: BROKER, logger: silent, clientId, clean: false });
    cleanups.push(async () => {
      await second.stop();
      // Leave no persistent session behind on the shared broker.
      const eraser = await mqtt.connectAsync(BROKER, { clientId, clean: true });
      await eraser.endAsync();
    });
    const redelivered = await until('the redelivery', () => published.find((e) => (e.data as MqttMessageData).payload === 'm1'));
    expect(redelivered).toMatchObject({ type: MQTT_MESSAGE_TYPE, subject: topic, data: { filters: [topic], qos: 1 } });
    expect(attempts[0]).toBe('m1');
  });
});
