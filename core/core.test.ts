import { describe, expect, it } from 'vitest';
import { AppDefinitionError, defineApp, fn, http, objectCreated, on, schedule, table, triggerPattern } from './app.js';
import { HttpRequestError, matchRoute } from './http.js';
import { redactUrl } from './redact.js';
import { backoffDelay, DEFAULT_RETRY, PermanentError, afterFailure, isPermanent, retryPolicy } from './delivery.js';
import { cloudEventProblems, deriveEventId, newEventId, traceIdOf, traceparentFor } from './event.js';
import { compilePattern } from './pattern/index.js';
import { itemKey } from './session.js';

describe('event ids and trace context', () => {
  it('new ids are UUIDv7, unique, and ordered by time', () => {
    const a = newEventId(1_700_000_000_000);
    const b = newEventId(1_700_000_000_001);
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(a < b).toBe(true);
    expect(new Set(Array.from({ length: 10_000 }, () => newEventId())).size).toBe(10_000);
  });

  it('derived ids are deterministic, distinct per function and position, and keep the parent time prefix', () => {
    const parent = newEventId(1_700_000_000_000);
    expect(deriveEventId(parent, 'f', 0)).toBe(deriveEventId(parent, 'f', 0));
    expect(new Set([deriveEventId(parent, 'f', 0), deriveEventId(parent, 'f', 1), deriveEventId(parent, 'g', 0)]).size).toBe(3);
    expect(deriveEventId(parent, 'f', 0).slice(0, 13)).toBe(parent.slice(0, 13));
    expect(deriveEventId('not-a-uuid', 'f', 0)).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('traceparent continues the parent trace with a new span', () => {
    const parent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const child = traceparentFor('e1', parent);
    expect(traceIdOf(child)).toBe('0af7651916cd43dd8448eb211c80319c');
    expect(child).not.toBe(parent);
    expect(traceparentFor('e1', parent)).toBe(child);
    expect(traceIdOf(traceparentFor('e1'))).toMatch(/^[0-9a-f]{32}$/);
    expect(traceIdOf(traceparentFor('e1', 'garbage'))).not.toBe(traceIdOf(traceparentFor('e2', 'garbage')));
  });

  it('cloudEventProblems names each missing or mistyped attribute', () => {
    expect(cloudEventProblems({ specversion: '1.0', id: '1', source: 's', type: 't' })).toEqual([]);
    expect(cloudEventProblems({ specversion: '0.3', id: '', source: 's', type: 't', subject: 3 })).toEqual([
      'specversion must be "1.0", got "0.3"',
      'id is required and must be a non-empty string',
      'subject must be a string',
    ]);
    expect(cloudEventProblems([])).toEqual(['a CloudEvent must be a JSON object']);
  });
});

describe('item keys', () => {
  it('spell every (table, partition key, sort key) differently, whatever characters the keys hold', () => {
    const keys: Array<[string, string | number, string | number]> = [
      ['t', 'a', 'b'], ['t', 'a', 1], ['t', 1, 'b'], ['t', '1', 'b'], ['t', 'a:1', 'b'], ['t', 'a', ':1b'],
      ['t1', ':sa', 'b'], ['t', '1:sa', 'b'], ['t', 'a\u0000sb', 'c'], ['t', 'a', 'b\u0000sc'], ['t', '', 'ab'], ['t', 'a', 'b:'], ['ta', '', ''], ['t', 'as', 'b'], ['t', 'a', 'sb'],
    ];
    expect(new Set(keys.map((k) => itemKey(...k))).size).toBe(keys.length);
    expect(itemKey('t', 'a', 'b')).toBe(itemKey('t', 'a', 'b'));
  });
});

describe('retry policy', () => {
  it('full jitter: uniform below an exponentially growing cap', () => {
    const policy = { maxAttempts: 10, baseDelayMs: 100, maxDelayMs: 1000 };
    expect([1, 2, 3, 4, 5].map((a) => backoffDelay(a, policy, () => 0.999999))).toEqual([99, 199, 399, 799, 999]);
    expect(backoffDelay(3, policy, () => 0)).toBe(0);
    const samples = Array.from({ length: 2000 }, () => backoffDelay(3, policy));
    expect(Math.max(...samples)).toBeLessThan(400);
    expect(samples.filter((s) => s < 200).length / samples.length).toBeGreaterThan(0.4);
  });

  it('dead after maxAttempts or a permanent error, otherwise retry', () => {
    const policy = retryPolicy({ maxAttempts: 3 });
    expect(afterFailure(1, new Error('x'), policy)).toHaveProperty('retryInMs');
    expect(afterFailure(3, new Error('x'), policy)).toEqual({ dead: true });
    expect(afterFailure(1, new PermanentError('x'), policy)).toEqual({ dead: true });
    expect(isPermanent(Object.assign(new Error('x'), { permanent: true }))).toBe(true);
    expect(retryPolicy()).toEqual(DEFAULT_RETRY);
    expect(() => retryPolicy({ maxAttempts: 0 })).toThrow(/maxAttempts/);
  });
});

describe('app description', () => {
  const handler = () => undefined;

  it('rejects a function that uses an undeclared resource, a bad name, a bad pattern, duplicate routes', () => {
    expect(() => defineApp({ name: 'a', functions: { f: fn({ trigger: on({ type: ['t'] }), uses: { nope: 'read' }, handler }) } })).toThrow(/uses "nope", which is not among the app's resources/);
    expect(() => defineApp({ name: 'Bad Name', functions: {} })).toThrow(AppDefinitionError);
    expect(() => on({ type: 't' })).toThrow(/type/);
    expect(() =>
      defineApp({ name: 'a', functions: { f: fn({ trigger: http('GET', '/x'), handler }), g: fn({ trigger: http('GET', '/x'), handler }) } }),
    ).toThrow(/two functions serve GET \/x/);
    expect(() => defineApp({ name: 'a', resources: { t: table({ partitionKey: 'id' }) }, functions: { f: fn({ trigger: objectCreated('t'), handler }) } })).toThrow(/not a bucket/);
    expect(() => http('GET', '/files/*rest')).toThrow(/only literal segments and ":name" parameters/);
    expect(() => http('GET', '/files/:a-b')).toThrow(AppDefinitionError);
    expect(http('GET', '/files/:name').path).toBe('/files/:name');
  });

  it('redacts the password of a URL for logs and errors, and never echoes what is not a URL', () => {
    expect(redactUrl('postgres://app:s3cret@db:5432/test')).toBe('postgres://app:***@db:5432/test');
    expect(redactUrl('mqtt://broker:1883')).toBe('mqtt://broker:1883');
    expect(redactUrl('nats://:tok3n@nats:4222')).not.toContain('tok3n');
    expect(redactUrl('s3cret not a url')).toBe('(unparseable URL)');
  });

  it('matches routes like express: parameters decoded, case-insensitive, optional trailing slash', () => {
    expect(matchRoute('/things/:id', '/things/a%2Fb')).toEqual({ id: 'a/b' });
    expect(matchRoute('/things/:id', '/THINGS/x/')).toEqual({ id: 'x' });
    expect(matchRoute('/things/:id', '/things')).toBeUndefined();
    expect(matchRoute('/things/:id', '/things/x/y')).toBeUndefined();
    expect(() => matchRoute('/things/:id', '/things/%E0%A4%A')).toThrow(HttpRequestError);
    expect(matchRoute('/v1.0/:a/and/:b', '/V1.0/x/AND/y')).toEqual({ a: 'x', b: 'y' });
    expect(matchRoute('/v1.0/:a', '/v1x0/x')).toBeUndefined();
    expect(matchRoute('/', '/')).toEqual({});
    expect(matchRoute('/', '/x')).toBeUndefined();
  });

  it('schedule accepts rate expressions only, with a clear error otherwise', () => {
    expect(schedule('rate(5 minutes)').everyMs).toBe(300_000);
    expect(schedule('rate(1 hour)').everyMs).toBe(3_600_000);
    expect(() => schedule('cron(0 * * * ? *)')).toThrow(/use rate/);
    expect(() => schedule('rate(0 minutes)')).toThrow(/use rate/);
  });

  it('objectCreated with prefix and suffix matches keys with both', () => {
    const pattern = compilePattern(triggerPattern(objectCreated('files', { prefix: 'in/*', suffix: '.csv' }), 'f')!);
    const created = (key: string) => ({ type: 'petrel.object.created', data: { bucket: 'files', key } });
    expect(pattern.matches(created('in/*/x.csv'))).toBe(true);
    expect(pattern.matches(created('in/x.csv'))).toBe(false);
    expect(pattern.matches(created('in/*/x.txt'))).toBe(false);
  });
});
