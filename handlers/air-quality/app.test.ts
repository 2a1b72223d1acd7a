/** The app's HTTP and MQTT ingest, its JSON endpoints, webhooks, the SSE stream and /stats, on the embedded runtime. */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signRequest } from '../../adapters/http/auth.js';
import { MQTT_MESSAGE_TYPE } from '../../core/app.js';
import { newEventId, type CloudEvent } from '../../core/event.js';
import { ALERT_RAISED, type AlertRecord } from './alerting.js';
import { configuredSubscriber } from './config.js';
import type { Reading } from './reading.js';
import { MINUTE, startTestApp, TEST_KEY, type TestApp } from './testing.js';
import { signWebhook, verifyWebhook } from './webhooks.js';

const auth = { authorization: `Bearer ${TEST_KEY}` };

async function post(app: TestApp, path: string, body: unknown, headers: Record<string, string> = auth) {
  const response = await fetch(app.base + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  return { status: response.status, body: (await response.json().catch(() => undefined)) as Record<string, unknown> };
}

/**
 * Readings of `devices` sensors at `location`, one a minute each, over `minutes` minutes ending a
 * minute ago. Each minute's readings sit 10-13 s into it, so the devices' few seconds apart never
 * spill into the next minute, whatever the clock says when the test runs.
 */
function series(location: string, devices: number, minutes: number, pm25: (minute: number, device: number) => number, end = Math.floor((Date.now() - MINUTE) / MINUTE) * MINUTE + 10_000): Reading[] {
  const readings: Reading[] = [];
  for (let m = minutes - 1; m >= 0; m--) {
    for (let d = 0; d < devices; d++) readings.push({ deviceId: `${location}-${d}`, location, time: new Date(end - m * MINUTE + d * 1000).toISOString(), pm25: pm25(minutes - 1 - m, d) });
  }
  return readings;
}

describe('ingest', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp();
  });
  afterAll(() => app.stop());

  it('POST /readings takes one reading or a batch with a device key or a signature, and refuses without', async () => {
    const reading = { deviceId: 'd-1', location: 'pier', time: new Date(Date.now() - 5000).toISOString(), pm25: 12 };
    expect(await post(app, '/readings', reading, {})).toMatchObject({ status: 401, body: { error: expect.stringMatching(/missing credentials/) } });
    expect(await post(app, '/readings', [reading, { ...reading, deviceId: 'd-2' }])).toEqual({ status: 202, body: { accepted: 2 } });
    const body = JSON.stringify({ ...reading, deviceId: 'd-3' });
    const signed = await fetch(`${app.base}/readings`, { method: 'POST', headers: { 'content-type': 'application/json', ...signRequest(TEST_KEY, body) }, body });
    expect(signed.status).toBe(202);
    await app.runtime.idle();
    const stored = (await app.get('/readings?location=pier')) as Reading[];
    expect(stored.map((r) => r.deviceId).sort()).toEqual(['d-1', 'd-2', 'd-3']);
  });

  it('refuses readings too far from the server clock, naming the field', async () => {
    const ahead = { deviceId: 'd-1', location: 'pier', time: new Date(Date.now() + 10 * MINUTE).toISOString(), pm25: 12 };
    const old = { ...ahead, time: new Date(Date.now() - 2 * 86_400_000).toISOString() };
    const r = await post(app, '/readings', [ahead, old]);
    expect(r.status).toBe(400);
    expect(r.body.errors).toEqual([
      { index: 0, field: 'time', message: expect.stringMatching(/ahead of the server clock; at most 5 minutes is accepted/) },
      { index: 1, field: 'time', message: 'is older than 24 hours; readings that old are not accepted' },
    ]);
  });

  it('takes MQTT messages (as the bridge delivers them), filling location and device from the topic', async () => {
    const message = (topic: string, payload: unknown): CloudEvent => ({
      specversion: '1.0',
      id: newEventId(),
      source: 'test',
      type: MQTT_MESSAGE_TYPE,
      subject: topic,
      partitionkey: topic,
      data: { topic, filters: ['aq/+/+'], payload: typeof payload === 'string' ? payload : JSON.stringify(payload), qos: 1, retain: false },
    });
    const time = new Date(Date.now() - 3000).toISOString();
    const good = message('aq/quay/m-1', { time, pm25: 8.5 });
    const bad = [
      message('aq/quay/m-2', '{"time":'),
      message('aq/quay/m-3', { location: 'elsewhere', time, pm25: 1 }),
      message('aq/quay/m-4', { time, pm25: -3 }),
    ];
    await app.runtime.publish([good, ...bad]);
    await app.runtime.idle();
    expect(((await app.get('/readings?location=quay')) as Reading[]).map((r) => [r.deviceId, r.pm25])).toEqual([['m-1', 8.5]]);
    const letters = (await app.get('/admin/dead-letters?function=ingestMqtt')) as Array<{ event: { id: string }; attempts: Array<{ error: { message: string } }> }>;
    const reason = (event: CloudEvent) => letters.find((l) => l.event.id === event.id)?.attempts.map((a) => a.error.message);
    expect(reason(bad[0])).toEqual([expect.stringMatching(/^the payload is not valid JSON/)]);
    expect(reason(bad[1])).toEqual(['location "elsewhere" disagrees with the topic "aq/quay/m-3"']);
    expect(reason(bad[2])).toEqual(['invalid reading: pm25: must be between 0 and 1000 µg/m³, got -3']);
  });

  it('stores a resent reading once, and a corrected one with its new values', async () => {
    const reading: Reading = { deviceId: 'r-1', location: 'jetty', time: new Date(Date.now() - 60_000).toISOString(), pm25: 10 };
    await app.feed([reading, reading, { ...reading, pm25: 14 }]);
    expect(((await app.get('/readings?location=jetty')) as Reading[]).map((r) => r.pm25)).toEqual([14]);
    const minute = ((await app.get('/windows?location=jetty&size=1')) as Array<{ readings: number; means: { pm25: number } }>)[0];
    expect(minute).toMatchObject({ readings: 1, means: { pm25: 14 } });
  });
});

describe('windows, alerts and the console endpoints', () => {
  let app: TestApp;
  let stream: { events: Array<{ id: string; event: string; data: AlertRecord }>; close(): void };

  beforeAll(async () => {
    app = await startTestApp({ allowedLatenessMs: 0 });
    stream = await openStream(`${app.base}/alerts/stream?kind=category`);
    // Bay: clean air, then 8 minutes of smoke (AQI ~250), then clean again: one alert up, one down.
    await app.feed(series('bay', 4, 20, (m) => (m >= 5 && m < 13 ? 200 : 5)));
    // Cove: three minutes at 37 (AQI 105), three at 34 (AQI 98), over and over: the 5-minute
    // average wavers across the Moderate / USG boundary (99 / 102) for 15 minutes: one alert.
    await app.feed(series('cove', 4, 15, (m) => (m % 6 < 3 ? 37 : 34)));
  });
  afterAll(async () => {
    stream.close();
    await app.stop();
  });

  it('GET /locations lists each location with its latest AQI', async () => {
    const locations = (await app.get('/locations')) as Array<Record<string, unknown>>;
    expect(locations.map((l) => l.location)).toEqual(['bay', 'cove']);
    expect(locations[0]).toMatchObject({ location: 'bay', aqi: 28, category: 'Good', color: '#00E400', pollutant: 'pm25', readings: 4, tooLate: 0 });
  });

  it('GET /windows serves 1-, 5- and 60-minute windows, final once the watermark passed', async () => {
    const ones = (await app.get('/windows?location=bay&size=1&limit=100')) as Array<Record<string, unknown>>;
    expect(ones).toHaveLength(20);
    expect(ones.slice(0, -1).every((w) => w.final === true)).toBe(true);
    expect(ones.at(-1)!.final).toBe(false);
    const fives = (await app.get('/windows?location=bay&size=5')) as Array<{ start: string; end: string; readings: number; aqi: number }>;
    const peak = fives.find((w) => w.readings === 20 && w.aqi > 200)!;
    expect(Date.parse(peak.end) - Date.parse(peak.start)).toBe(5 * MINUTE);
    const hours = (await app.get('/windows?location=bay&size=60')) as Array<{ readings: number }>;
    expect(hours.at(-1)!.readings).toBe(19 * 4);
    expect(await fetch(`${app.base}/windows?location=bay&size=7`).then((r) => r.status)).toBe(400);
    expect(await fetch(`${app.base}/windows?size=5`).then((r) => r.json())).toEqual({ error: 'location is required' });
  });

  it('follows an episode up and down category by category, and raises one alert (not one per wobble) for a wavering value', async () => {
    const bay = ((await app.get('/alerts?location=bay&kind=category')) as Array<Record<string, unknown>>).reverse();
    // The 5-minute average climbs through the categories as the smoke fills it, and back down.
    expect(bay.map((a) => [a.direction, a.category])).toEqual([
      ['up', 'Unhealthy for Sensitive Groups'],
      ['up', 'Unhealthy'],
      ['up', 'Very Unhealthy'],
      ['down', 'Unhealthy'],
      ['down', 'Unhealthy for Sensitive Groups'],
      ['down', 'Good'],
    ]);
    const cove = (await app.get('/alerts?location=cove')) as Array<Record<string, unknown>>;
    expect(cove.filter((a) => a.kind === 'category').map((a) => [a.direction, a.category])).toEqual([['up', 'Unhealthy for Sensitive Groups']]);
    // ...and it is at or above 101 three minutes running at most, so no sustained alert there.
    expect(cove.filter((a) => a.kind === 'sustained')).toEqual([]);
  });

  it('filters alerts by kind and time, and says what is wrong with a bad filter', async () => {
    const all = (await app.get('/alerts')) as Array<{ time: string; kind: string; id: string }>;
    expect(all.length).toBeGreaterThanOrEqual(4);
    expect(all.map((a) => a.time)).toEqual([...all.map((a) => a.time)].sort().reverse());
    const sustained = (await app.get('/alerts?kind=sustained')) as Array<{ kind: string; location: string; minutes: number }>;
    expect(sustained).toEqual([expect.objectContaining({ kind: 'sustained', location: 'bay', minutes: 5 })]);
    const middle = all[Math.floor(all.length / 2)].time;
    const since = (await app.get(`/alerts?since=${middle}`)) as Array<{ time: string }>;
    const until = (await app.get(`/alerts?until=${middle}`)) as Array<{ time: string }>;
    expect(since.every((a) => a.time >= middle) && until.every((a) => a.time <= middle)).toBe(true);
    expect(since.length + until.length).toBe(all.length + all.filter((a) => a.time === middle).length);
    expect(await fetch(`${app.base}/alerts?kind=loud`).then((r) => r.json())).toEqual({ error: 'kind must be one of category, sustained, anomaly, got "loud"' });
    expect(await fetch(`${app.base}/alerts?since=yesterday`).then((r) => r.status)).toBe(400);
  });

  it('GET /readings serves one location oldest first, from `since`', async () => {
    const since = new Date(Date.now() - 4 * MINUTE).toISOString();
    const readings = (await app.get(`/readings?location=bay&since=${since}`)) as Reading[];
    expect(readings.length).toBeGreaterThan(0);
    expect(readings.every((r) => r.time >= since)).toBe(true);
    expect(readings.map((r) => r.time)).toEqual([...readings.map((r) => r.time)].sort());
    // Past the limit: the newest readings, still oldest first.
    const newest = (await app.get(`/readings?location=bay&since=${since}&limit=3`)) as Reading[];
    expect(newest.map((r) => `${r.time}#${r.deviceId}`)).toEqual(readings.slice(-3).map((r) => `${r.time}#${r.deviceId}`));
  });

  it('streams the alerts over Server-Sent Events as they are committed, filtered by kind', async () => {
    const expected = ((await app.get('/alerts?kind=category')) as Array<{ id: string }>).map((a) => a.id).sort();
    for (let i = 0; i < 100 && stream.events.length < expected.length; i++) await new Promise((r) => setTimeout(r, 20));
    expect(stream.events.map((e) => e.event)).toEqual(expected.map(() => 'alert'));
    expect(stream.events.map((e) => e.data.id).sort()).toEqual(expected);
    expect(stream.events.every((e) => e.data.kind === 'category')).toBe(true);
    // Each carries when its reading arrived, before the alert was sent.
    expect(stream.events.every((e) => Date.parse(String(e.data.ingestedAt)) <= Date.now())).toBe(true);
    expect(await fetch(`${app.base}/alerts/stream?kind=loud`).then((r) => r.status)).toBe(400);
  });

  it('measures ingest to alert end to end: /stats percentiles and the Prometheus histogram', async () => {
    const stats = (await app.get('/stats')) as { ingestToAlert: { alerts: number; p50Ms: number; p99Ms: number }; readingsPerSecond: number; deadLetters: { stored: number } };
    const alerts = ((await app.get('/alerts?limit=1000')) as unknown[]).length;
    expect(stats.ingestToAlert.alerts).toBe(alerts);
    expect(stats.ingestToAlert.p50Ms).toBeGreaterThanOrEqual(0);
    expect(stats.ingestToAlert.p99Ms).toBeGreaterThanOrEqual(stats.ingestToAlert.p50Ms);
    expect(stats.deadLetters.stored).toBe(0);
    const metrics = await fetch(`${app.base}/metrics`).then((r) => r.text());
    expect(metrics).toContain(`petrel_latency_seconds_count{name="aq.alert.raised"} ${alerts}`);
  });
});

describe('webhooks', () => {
  let app: TestApp;
  let receiver: Server;
  const received: Array<{ path: string; headers: IncomingMessage['headers']; body: string }> = [];
  let failuresLeft = 2;
  const secret = 'configured-webhook-secret';
  let anomalySecret = '';

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk) => (body += chunk));
      req.on('end', () => {
        received.push({ path: req.url!, headers: req.headers, body });
        const status = req.url === '/flaky' ? (failuresLeft-- > 0 ? 500 : 200) : req.url === '/down' ? 503 : req.url === '/gone' ? 410 : 204;
        res.writeHead(status).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const url = (path: string) => `http://127.0.0.1:${(receiver.address() as AddressInfo).port}${path}`;
    app = await startTestApp({
      webhooks: ['/flaky', '/down', '/gone'].map((path) => configuredSubscriber(url(path), secret)),
      webhookRetry: { maxAttempts: 3, baseDelayMs: 5, maxDelayMs: 20 },
    });
    const subscribed = await post(app, '/subscriptions', { url: url('/anomalies?token=s3cret'), kinds: ['anomaly'] });
    expect(subscribed.status).toBe(201);
    anomalySecret = String(subscribed.body.secret);
    expect(anomalySecret.length).toBeGreaterThanOrEqual(32);
  });
  afterAll(async () => {
    await app.stop();
    receiver.close();
  });

  const alert = (kind: string): CloudEvent => ({
    specversion: '1.0',
    id: newEventId(),
    source: 'test',
    type: ALERT_RAISED,
    data: { location: 'bay', key: `k-${kind}`, kind, time: new Date().toISOString(), message: 'test', expires: 0 },
  });

  it('delivers each alert to each subscriber, signed; retries failures; dead-letters after the last attempt', async () => {
    const category = alert('category');
    await app.runtime.publish([category, alert('anomaly')]);
    await app.runtime.idle();
    const flaky = received.filter((r) => r.path === '/flaky');
    const kindOf = (r: { body: string }) => (JSON.parse(r.body) as { alert: { kind: string } }).alert.kind;
    // Two failures, then success: four attempts in all for the two alerts, the retries of one delivery alike.
    expect(flaky.length).toBe(4);
    for (const r of received) expect(verifyWebhook(r.path.startsWith('/anomalies') ? anomalySecret : secret, r.headers, r.body)).toBe(true);
    const categoryDeliveries = flaky.filter((r) => kindOf(r) === 'category');
    expect(JSON.parse(categoryDeliveries[0].body)).toMatchObject({ id: category.id, type: ALERT_RAISED, alert: { kind: 'category' } });
    expect(new Set(categoryDeliveries.map((r) => r.headers['x-petrel-delivery'])).size).toBe(1);
    // The subscriber registered for anomalies only got the anomaly.
    expect(received.filter((r) => r.path.startsWith('/anomalies')).map(kindOf)).toEqual(['anomaly']);

    const letters = (await app.get('/admin/dead-letters?function=deliver')) as Array<{ attempts: Array<{ error: { message: string } }> }>;
    const messages = letters.map((l) => l.attempts.map((a) => a.error.message));
    const port = (receiver.address() as AddressInfo).port;
    // /down: every attempt failed (503), retried to the last; /gone: 410 is final at once. No URL path or token in the reasons.
    expect(messages).toEqual(expect.arrayContaining([Array(3).fill(`webhook http://127.0.0.1:${port}/… answered 503`), [`webhook http://127.0.0.1:${port}/… answered 410`]]));
    expect(letters).toHaveLength(4);
    expect(JSON.stringify(letters)).not.toContain(secret);
  });

  it('signatures verify only with the secret, the body and a fresh timestamp', () => {
    const body = '{"a":1}';
    const headers = signWebhook(secret, body);
    expect(verifyWebhook(secret, headers, body)).toBe(true);
    expect(verifyWebhook('another-secret-value', headers, body)).toBe(false);
    expect(verifyWebhook(secret, headers, '{"a":2}')).toBe(false);
    expect(verifyWebhook(secret, signWebhook(secret, body, Date.now() - 10 * MINUTE), body)).toBe(false);
  });
});

/** Reads a Server-Sent Events stream into `events` as it arrives. */
async function openStream(url: string): Promise<{ events: Array<{ id: string; event: string; data: AlertRecord }>; close(): void }> {
  const controller = new AbortController();
  const response = await fetch(url, { signal: controller.signal });
  expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const events: Array<{ id: string; event: string; data: AlertRecord }> = [];
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  void (async () => {
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (done) return;
      buffer += value;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const fields = Object.fromEntries(block.split('\n').filter((l) => !l.startsWith(':')).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)]));
        if (fields.data) events.push({ id: fields.id, event: fields.event, data: JSON.parse(fields.data) as AlertRecord });
      }
    }
  })();
  return { events, close: () => controller.abort() };
}
