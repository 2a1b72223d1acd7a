import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newEventId } from '../../core/event.js';
import airQuality from '../../handlers/air-quality/app.js';
import { LocalRuntime } from '../local/index.js';
import { DeviceAuth } from './auth.js';

const DEVICE_KEY = 'ingress-test-device-key';
const device = { authorization: `Bearer ${DEVICE_KEY}` };
/** Readings are checked against the clock: minute n of the last hour. */
const HOUR_AGO = Math.floor(Date.now() / 60_000) * 60_000 - 61 * 60_000;
const minute = (n: number) => new Date(HOUR_AGO + n * 60_000).toISOString();
const reading = (n: number, pm25 = 12.3) => ({ deviceId: `d-${n}`, location: 'downtown', time: minute(n % 60), pm25 });
const cloudEvent = (data: unknown, extra: Record<string, unknown> = {}) => ({ specversion: '1.0', id: newEventId(), source: 'test', type: 'aq.reading.accepted', data, ...extra });

async function post(base: string, path: string, body: string | Buffer, contentType: string, headers: Record<string, string> = {}) {
  const response = await fetch(base + path, { method: 'POST', body, headers: { 'content-type': contentType, ...headers } });
  const text = await response.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // left empty: the assertions below say what was expected
  }
  return { status: response.status, json, contentType: response.headers.get('content-type') ?? '' };
}

// Both ways the embedded runtime can serve HTTP: every answer the same.
describe.each([
  ['on a thread of its own', true],
  ['on the runtime thread', false],
])('the ingress %s', (_mode, ingressThread) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'petrel-ingress-'));
  let runtime: LocalRuntime;
  let base: string;

  beforeAll(async () => {
    runtime = await LocalRuntime.start(airQuality, { dataDir, logger: pino({ level: 'silent' }) });
    const server = await runtime.listen(0, '127.0.0.1', { deviceAuth: new DeviceAuth([DEVICE_KEY]), ingressThread });
    base = `http://127.0.0.1:${server.address().port}`;
  });

  afterAll(async () => {
    await runtime.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  describe('POST /events', () => {
    it('accepts structured, binary and batch mode, answering 202 once durable', async () => {
      const structured = cloudEvent(reading(1));
      let r = await post(base, '/events', JSON.stringify(structured), 'application/cloudevents+json');
      expect(r).toMatchObject({ status: 202, json: { accepted: 1, ids: [structured.id] } });

      const id = newEventId();
      r = await post(base, '/events', JSON.stringify(reading(2)), 'application/json', { 'ce-specversion': '1.0', 'ce-id': id, 'ce-source': 'test', 'ce-type': 'aq.reading.accepted', 'ce-partitionkey': 'd-2' });
      expect(r).toMatchObject({ status: 202, json: { accepted: 1, ids: [id] } });

      const batch = [cloudEvent(reading(3)), cloudEvent(reading(4))];
      r = await post(base, '/events', JSON.stringify(batch), 'application/cloudevents-batch+json');
      expect(r).toMatchObject({ status: 202, json: { accepted: 2 } });

      // 2xx means the events are already in the log.
      const logged = new Set(runtime.events(0, 10_000).map((e) => e.event.id));
      for (const e of [structured.id, id, ...batch.map((b) => b.id)]) expect(logged.has(e)).toBe(true);
      const binary = runtime.events(0, 10_000).find((e) => e.event.id === id)!.event;
      expect(binary).toMatchObject({ partitionkey: 'd-2', datacontenttype: 'application/json', data: reading(2) });
      expect(typeof binary.ingesttime).toBe('string');
      expect(binary.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    });

    const bad: Array<[string, string | Buffer, string, number, RegExp]> = [
      ['malformed JSON', '{"specversion":', 'application/cloudevents+json', 400, /not valid JSON/],
      ['a wrong content type', 'hello', 'text/plain', 415, /expected a CloudEvent/],
      ['a missing id', JSON.stringify({ specversion: '1.0', source: 's', type: 't' }), 'application/cloudevents+json', 400, /id is required/],
      ['a missing source', JSON.stringify({ specversion: '1.0', id: '1', type: 't' }), 'application/cloudevents+json', 400, /source is required/],
      ['a missing type', JSON.stringify({ specversion: '1.0', id: '1', source: 's' }), 'application/cloudevents+json', 400, /type is required/],
      ['a missing specversion', JSON.stringify({ id: '1', source: 's', type: 't' }), 'application/cloudevents+json', 400, /specversion must be "1.0"/],
      ['a wrong attribute type', JSON.stringify({ specversion: '1.0', id: 7, source: 's', type: 't' }), 'application/cloudevents+json', 400, /id is required and must be a non-empty string/],
      ['an invalid attribute name', JSON.stringify({ specversion: '1.0', id: '1', source: 's', type: 't', Bad_Name: 1 }), 'application/cloudevents+json', 400, /attribute name "Bad_Name" is invalid/],
      ['a bad time', JSON.stringify({ specversion: '1.0', id: '1', source: 's', type: 't', time: 'yesterday' }), 'application/cloudevents+json', 400, /time must be an RFC 3339/],
      ['a body over 256 KiB', JSON.stringify(cloudEvent('x'.repeat(300 * 1024))), 'application/cloudevents+json', 413, /larger than the 256 KiB limit/],
      ['a batch that is not an array', JSON.stringify({}), 'application/cloudevents-batch+json', 400, /must be a JSON array/],
      ['a batch with one invalid event', JSON.stringify([cloudEvent(1), { specversion: '1.0' }]), 'application/cloudevents-batch+json', 400, /1 of 2 CloudEvents in the batch are invalid/],
    ];

    it.each(bad)('rejects %s with a JSON error, keeps serving, and loses no valid event around it', async (_name, body, type, status, message) => {
      const before = cloudEvent(reading(10));
      const after = cloudEvent(reading(11));
      expect((await post(base, '/events', JSON.stringify(before), 'application/cloudevents+json')).status).toBe(202);
      const r = await post(base, '/events', body, type);
      expect(r.status).toBe(status);
      expect(r.contentType).toMatch(/application\/json/);
      expect(String(r.json.error)).toMatch(message);
      expect((await post(base, '/events', JSON.stringify(after), 'application/cloudevents+json')).status).toBe(202);
      const logged = new Set(runtime.events(0, 10_000).map((e) => e.event.id));
      expect(logged.has(before.id) && logged.has(after.id)).toBe(true);
    });

    it('names every invalid event of a batch', async () => {
      const r = await post(base, '/events', JSON.stringify([{ specversion: '1.0', id: 'a', source: 's' }, cloudEvent(1), { id: 'b' }]), 'application/cloudevents-batch+json');
      expect(r.status).toBe(400);
      const errors = (r.json.details as { errors: Array<{ index: number; problems: string[] }> }).errors;
      expect(errors.map((e) => e.index)).toEqual([0, 2]);
      expect(errors[0].problems).toEqual(['type is required and must be a non-empty string']);
    });
  });

  describe('POST /readings and GET /alerts', () => {
    it('stores readings, raises category alerts from the 5-minute averages, and lists alerts newest first', async () => {
      // A third reading ten minutes on moves the watermark past the first two minutes (plus the allowed lateness).
      const r = await post(base, '/readings', JSON.stringify([{ ...reading(20, 60.1), location: 'harbour', time: minute(0) }, { ...reading(21, 160), location: 'harbour', time: minute(10) }, { ...reading(22, 5), location: 'harbour', time: minute(20) }]), 'application/json', device);
      expect(r).toMatchObject({ status: 202, json: { accepted: 3 } });
      await runtime.idle();
      const alerts = (await (await fetch(`${base}/alerts?location=harbour`)).json()) as Array<Record<string, unknown>>;
      expect(alerts).toEqual([
        expect.objectContaining({ location: 'harbour', kind: 'category', direction: 'up', aqi: 235, category: 'Very Unhealthy', pollutant: 'pm25', time: minute(11) }),
        expect.objectContaining({ location: 'harbour', kind: 'category', direction: 'up', aqi: 154, category: 'Unhealthy', pollutant: 'pm25', time: minute(1) }),
      ]);
      const all = (await (await fetch(`${base}/alerts`)).json()) as Array<Record<string, unknown>>;
      expect(all.filter((a) => a.location === 'harbour')).toHaveLength(2);
      expect(all.some((a) => a.deviceId === 'd-22')).toBe(false);
    });

    it('rejects invalid readings with 400 naming each bad field, and accepts the next valid one', async () => {
      let r = await post(base, '/readings', JSON.stringify([reading(30), { deviceId: 'd-31', location: 'x', time: 'soon', pm25: 'high' }]), 'application/json', device);
      expect(r.status).toBe(400);
      expect(r.json.errors).toEqual([
        { index: 1, field: 'time', message: expect.stringMatching(/ISO 8601/) },
        { index: 1, field: 'pm25', message: 'expected a number, got string' },
      ]);
      r = await post(base, '/readings', '{"deviceId":', 'application/json', device);
      expect(r.status).toBe(400);
      expect(String(r.json.error)).toMatch(/not valid JSON/);
      r = await post(base, '/readings', 'pm25=3', 'application/x-www-form-urlencoded', device);
      expect(r.status).toBe(415);
      r = await post(base, '/readings', JSON.stringify(Array.from({ length: 4000 }, (_, n) => reading(n))), 'application/json', device);
      expect(r.status).toBe(413);
      r = await post(base, '/readings', JSON.stringify(Array.from({ length: 501 }, (_, n) => reading(n))), 'application/json', device);
      expect(r.status).toBe(400);
      expect(JSON.stringify(r.json.errors)).toMatch(/500/);
      r = await post(base, '/readings', JSON.stringify(reading(32, 200)), 'application/json', device);
      expect(r.status).toBe(202);
    });

    it('refuses a body over the limit (413), a device route without credentials (401 with a challenge), a wrong method (404)', async () => {
      const large = await post(base, '/readings', Buffer.alloc(300 * 1024, 0x20), 'application/json', device);
      expect(large).toMatchObject({ status: 413, json: { error: 'the body is larger than the 256 KiB limit' }, contentType: 'application/json; charset=utf-8' });
      const anonymous = await fetch(`${base}/readings`, { method: 'POST', body: JSON.stringify(reading(5)), headers: { 'content-type': 'application/json' } });
      expect(anonymous.status).toBe(401);
      expect(anonymous.headers.get('www-authenticate')).toBe('Bearer realm="petrel devices"');
      expect(await anonymous.json()).toMatchObject({ error: expect.stringMatching(/^missing credentials/) });
      const put = await fetch(`${base}/readings`, { method: 'PUT', body: '{}', headers: { 'content-type': 'application/json', ...device } });
      expect(put.status).toBe(404);
      expect(await put.json()).toEqual({ error: 'no route for PUT /readings' });
      // The ingress still serves after all that.
      expect((await post(base, '/readings', JSON.stringify(reading(6)), 'application/json', device)).status).toBe(202);
    });

    it('answers HEAD for a GET route with its headers only, and a bad path parameter with 400', async () => {
      const head = await fetch(`${base}/alerts`, { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(head.headers.get('content-type')).toBe('application/json; charset=utf-8');
      expect(await head.text()).toBe('');
      const bad = await fetch(`${base}/subscriptions/%E0%A4%A`, { method: 'DELETE', headers: device });
      expect(bad.status).toBe(400);
      expect(await bad.json()).toEqual({ error: 'path parameter "id" is not valid percent-encoding' });
    });

    it('answers unknown routes and bad query parameters with JSON errors', async () => {
      const missing = await fetch(`${base}/nope`);
      expect(missing.status).toBe(404);
      expect(await missing.json()).toEqual({ error: 'no route for GET /nope' });
      const bad = await fetch(`${base}/alerts?location=a&location=b`);
      expect(bad.status).toBe(400);
    });
  });

  describe('operations endpoints', () => {
    it('serves Prometheus metrics and health', async () => {
      await runtime.idle();
      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(metrics).toMatch(/petrel_invocations_total\{function="assess",outcome="ok"\} \d+/);
      expect(metrics).toMatch(/petrel_lag_events\{function="assess"\} 0/);
      expect(metrics).toMatch(/petrel_invocation_duration_seconds_bucket\{le="0.001",function="assess"\}/);
      const health = await fetch(`${base}/healthz`);
      expect(health.status).toBe(200);
      expect(await health.json()).toMatchObject({ ok: true, app: 'air-quality', lag: { assess: 0 } });
    });

    it('lists, shows and redrives dead letters over HTTP', async () => {
      // A reading event with no pollutant fails validation in assess: a permanent error.
      const poison = cloudEvent({ deviceId: 'd-99', location: 'x', time: '2026-11-28T10:00:00Z' });
      await post(base, '/events', JSON.stringify(poison), 'application/cloudevents+json');
      await runtime.idle();
      const letters = (await (await fetch(`${base}/admin/dead-letters?function=assess`)).json()) as Array<{ id: string; event: { id: string } }>;
      const letter = letters.find((l) => l.event.id === poison.id)!;
      expect(letter).toBeDefined();
      const shown = (await (await fetch(`${base}/admin/dead-letters/${letter.id}`)).json()) as { attempts: Array<{ error: { message: string } }> };
      expect(shown.attempts[0].error.message).toMatch(/at least one pollutant/);
      const redrive = await fetch(`${base}/admin/dead-letters/${letter.id}/redrive`, { method: 'POST' });
      expect(await redrive.json()).toEqual({ redriven: 1 });
      await runtime.idle();
      // Still poison, so it is dead-lettered again, under a new id.
      const again = (await (await fetch(`${base}/admin/dead-letters?function=assess`)).json()) as Array<{ id: string; event: { id: string } }>;
      expect(again.filter((l) => l.event.id === poison.id).map((l) => l.id)).not.toContain(letter.id);
      expect(again.filter((l) => l.event.id === poison.id)).toHaveLength(1);
      expect((await fetch(`${base}/admin/dead-letters/nope`)).status).toBe(404);
    });
  });
});
