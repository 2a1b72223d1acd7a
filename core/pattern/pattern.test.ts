import { describe, expect, it } from 'vitest';
import { compilePattern, PatternError } from './index.js';

const matches = (pattern: unknown, event: unknown): boolean => compilePattern(pattern).matches(event);

/** Compiles a pattern that must be rejected and returns the error. */
function rejection(pattern: unknown): PatternError {
  try {
    compilePattern(pattern);
  } catch (e) {
    expect(e).toBeInstanceOf(PatternError);
    return e as PatternError;
  }
  throw new Error(`expected ${JSON.stringify(pattern)} to be rejected`);
}

describe('CloudEvent-shaped events', () => {
  const reading = {
    specversion: '1.0',
    id: 'r-1',
    source: 'sensors/berlin-7',
    type: 'aq.reading.accepted',
    time: '2024-05-01T10:00:00Z',
    datacontenttype: 'application/json',
    data: { station: 'berlin-7', pm25: 12.5, tags: ['urban', 'traffic'], location: { lat: 52.5, lon: 13.4 } },
  };

  it('matches attributes at top level and payload under data', () => {
    const p = compilePattern({ type: ['aq.reading.accepted'], data: { pm25: [{ numeric: ['>=', 0] }] } });
    expect(p.matches(reading)).toBe(true);
    expect(p.matches({ ...reading, type: 'aq.reading.rejected' })).toBe(false);
    expect(p.matches({ ...reading, data: { pm25: -1 } })).toBe(false);
    expect(p.matches({ ...reading, data: { pm25: '12.5' } })).toBe(false); // numeric needs a JSON number
    expect(p.matches({ ...reading, data: undefined })).toBe(false);
  });

  it('matches nested payload fields, arrays and prefixes on attributes', () => {
    expect(matches({ source: [{ prefix: 'sensors/' }], data: { location: { lat: [{ numeric: ['>', 50, '<', 55] }] } } }, reading)).toBe(true);
    expect(matches({ data: { tags: ['traffic'] } }, reading)).toBe(true);
    expect(matches({ data: { tags: ['rural'] } }, reading)).toBe(false);
  });

  it('keeps the pattern and lets matches be passed around on its own', () => {
    const pattern = { type: ['aq.reading.accepted'] };
    const compiled = compilePattern(pattern);
    expect(compiled.pattern).toBe(pattern);
    const { matches: test } = compiled;
    expect([reading, { type: 'other' }].filter(test)).toHaveLength(1);
  });

  it('is not affected by changes to the pattern object after compiling', () => {
    const pattern = { type: ['aq.reading.accepted'] };
    const compiled = compilePattern(pattern);
    pattern.type[0] = 'changed';
    expect(compiled.matches(reading)).toBe(true);
  });

  it('gives the same answers for every type, however many, when it remembers what each type decides', () => {
    const p = compilePattern({ type: [{ 'anything-but': ['aq.alert.raised'] }, 'aq.alert.raised.v2'], data: { pm25: [{ numeric: ['>', 10] }] } });
    for (let round = 0; round < 2; round++) {
      expect(p.matches(reading)).toBe(true);
      expect(p.matches({ ...reading, data: { pm25: 1 } })).toBe(false);
      expect(p.matches({ ...reading, type: 'aq.alert.raised' })).toBe(false);
      expect(p.matches({ ...reading, type: 'aq.alert.raised.v2' })).toBe(true);
      expect(p.matches({ ...reading, type: 7 })).toBe(true); // not a string: the whole pattern decides (7 is none of those strings)
      // More types than are remembered: each still decided by the whole pattern.
      for (let i = 0; i < 300; i++) expect(p.matches({ ...reading, type: `t${i}`, data: { pm25: i } })).toBe(i > 10);
    }
  });

  it('says which types it rejects whatever the rest of the event holds, and rejects none without a list for type', () => {
    const p = compilePattern({ type: [{ prefix: 'aq.alert.' }, 'aq.reading.accepted'], data: { pm25: [{ numeric: ['>', 10] }] } });
    expect(p.rejectsType('aq.alert.raised')).toBe(false);
    expect(p.rejectsType('aq.reading.accepted')).toBe(false);
    expect(p.rejectsType('aq.location.tick')).toBe(true);
    // A type not rejected is not a match: the rest of the pattern still decides.
    expect(p.matches({ ...reading, data: { pm25: 1 } })).toBe(false);
    expect(compilePattern({ type: [{ 'anything-but': 'aq.location.tick' }] }).rejectsType('aq.location.tick')).toBe(true);
    expect(compilePattern({ source: ['sensors'] }).rejectsType('aq.location.tick')).toBe(false);
  });

  it('accepts the pattern as JSON text', () => {
    const compiled = compilePattern('{"type": ["aq.reading.accepted"]}');
    expect(compiled.pattern).toEqual({ type: ['aq.reading.accepted'] });
    expect(compiled.matches(reading)).toBe(true);
  });
});

describe('exact values', () => {
  it('matches strings character by character', () => {
    expect(matches({ a: ['Hello 🚀 '] }, { a: 'Hello 🚀 ' })).toBe(true);
    expect(matches({ a: ['hello'] }, { a: 'Hello' })).toBe(false);
    expect(matches({ a: ['x'] }, { a: 'x ' })).toBe(false);
  });

  it('matches numbers by value however they are written', () => {
    expect(matches({ n: [301.8] }, JSON.parse('{"n": 3.018e2}'))).toBe(true);
    expect(matches(JSON.parse('{"n": [3.018e2]}'), { n: 301.8 })).toBe(true);
    expect(matches('{"n": [300]}', JSON.parse('{"n": 300.0}'))).toBe(true);
    expect(matches({ n: [0] }, { n: -0 })).toBe(true);
    expect(matches({ n: [300] }, { n: '300' })).toBe(false);
    expect(matches({ n: ['300'] }, { n: 300 })).toBe(false);
  });

  it('matches true, false and null only as themselves', () => {
    expect(matches({ b: [false] }, { b: false })).toBe(true);
    expect(matches({ b: [false] }, { b: true })).toBe(false);
    expect(matches({ b: [false] }, { b: 0 })).toBe(false);
    expect(matches({ v: [null] }, { v: null })).toBe(true);
    expect(matches({ v: [null] }, { v: 'null' })).toBe(false);
    expect(matches({ v: [null] }, {})).toBe(false);
  });

  it('matches the empty string', () => {
    expect(matches({ v: [''] }, { v: '' })).toBe(true);
    expect(matches({ v: [''] }, { v: null })).toBe(false);
  });

  it('matches when any value in the pattern list matches', () => {
    expect(matches({ env: ['dev', 'prod', 7] }, { env: 'prod' })).toBe(true);
    expect(matches({ env: ['dev', 'prod', 7] }, { env: 7 })).toBe(true);
    expect(matches({ env: ['dev', 'prod'] }, { env: 'test' })).toBe(false);
  });

  it('matches an event array when any element matches, at any array depth', () => {
    expect(matches({ r: ['b', 'z'] }, { r: ['a', 'b'] })).toBe(true);
    expect(matches({ r: ['z'] }, { r: ['a', ['b', ['z']]] })).toBe(true);
    expect(matches({ r: ['z'] }, { r: ['a', 'b'] })).toBe(false);
    expect(matches({ r: [null] }, { r: [] })).toBe(false);
  });

  it('is case-sensitive on keys and requires every field', () => {
    expect(matches({ MY_KEY: ['v'] }, { my_key: 'v' })).toBe(false);
    expect(matches({ a: ['1'], b: ['2'] }, { a: '1' })).toBe(false);
    expect(matches({ a: ['1'], b: ['2'] }, { a: '1', b: '2', c: '3' })).toBe(true);
  });

  it('does not treat objects or JSON text as leaf values', () => {
    expect(matches({ detail: { k: ['v'] } }, { detail: '{"k": "v"}' })).toBe(false);
    expect(matches({ detail: ['v'] }, { detail: { k: 'v' } })).toBe(false);
  });
});

describe('nested objects and dotted keys', () => {
  it('follows nesting', () => {
    expect(matches({ a: { b: { c: ['x'] } } }, { a: { b: { c: 'x' } } })).toBe(true);
    expect(matches({ a: { b: { c: ['x'] } } }, { a: { b: 'x' } })).toBe(false);
  });

  it('treats a dotted key, in the pattern or in the event, as a path', () => {
    expect(matches({ 'state.status': ['running'] }, { state: { status: 'running' } })).toBe(true);
    expect(matches({ state: { status: ['running'] } }, { 'state.status': 'running' })).toBe(true);
    expect(matches({ 'a.b': { c: ['x'] } }, { a: { 'b.c': 'x' } })).toBe(true);
    expect(matches({ state: { status: ['running'] } }, { 'state.status': { status: 'running' } })).toBe(false);
    expect(matches({ 'state.status': { status: ['running'] } }, { state: { status: 'running' } })).toBe(false);
  });

  it('merges dotted and nested spellings of the same object', () => {
    const p = compilePattern({ 'a.b': ['1'], a: { c: ['2'] } });
    expect(p.matches({ a: { b: '1', c: '2' } })).toBe(true);
    expect(p.matches({ a: { b: '1' } })).toBe(false);
  });

  it('uses the last of two spellings of the same field, as EventBridge does', () => {
    expect(matches({ 'a.b': ['1'], a: { b: ['2'] } }, { a: { b: '2' } })).toBe(true);
    expect(matches('{"location": ["us-east"], "location": ["eu-central-1"]}', { location: 'eu-central-1' })).toBe(true);
  });

  it('matches a sub-pattern against the elements of an array, all fields within one element', () => {
    const p = compilePattern({ items: { sku: ['a'], qty: [2] } });
    expect(p.matches({ items: [{ sku: 'b', qty: 1 }, { sku: 'a', qty: 2 }] })).toBe(true);
    expect(p.matches({ items: [{ sku: 'a', qty: 1 }, { sku: 'b', qty: 2 }] })).toBe(false);
    expect(p.matches({ items: [] })).toBe(false);
  });

  it('only looks at own properties', () => {
    expect(matches({ constructor: [{ exists: true }] }, {})).toBe(false);
    expect(matches({ toString: [{ exists: false }] }, {})).toBe(true);
    expect(matches({ constructor: ['x'] }, { constructor: 'x' })).toBe(true);
    expect(matches({ a: ['x'] }, Object.assign(Object.create(null) as object, { a: 'x' }))).toBe(true);
  });
});

describe('prefix and suffix', () => {
  it('matches the start or end of strings only', () => {
    expect(matches({ t: [{ prefix: '2022-07' }] }, { t: '2022-07-13T13:48:01Z' })).toBe(true);
    expect(matches({ t: [{ prefix: '2022-08' }] }, { t: '2022-07-13' })).toBe(false);
    expect(matches({ f: [{ suffix: '.png' }] }, { f: 'a.png' })).toBe(true);
    expect(matches({ f: [{ suffix: '.png' }] }, { f: 'a.PNG' })).toBe(false);
    expect(matches({ n: [{ prefix: '1' }] }, { n: 12 })).toBe(false);
  });

  it('matches every string with an empty prefix or suffix', () => {
    expect(matches({ s: [{ prefix: '' }] }, { s: 'anything' })).toBe(true);
    expect(matches({ s: [{ suffix: '' }] }, { s: '' })).toBe(true);
    expect(matches({ s: [{ prefix: '' }] }, { s: null })).toBe(false);
  });

  it('ignores case with equals-ignore-case inside', () => {
    expect(matches({ s: [{ prefix: { 'equals-ignore-case': 'EventB' } }] }, { s: 'eVeNtBridge' })).toBe(true);
    expect(matches({ s: [{ suffix: { 'equals-ignore-case': '.png' } }] }, { s: 'IMAGE.PNG' })).toBe(true);
    expect(matches({ s: [{ suffix: { 'equals-ignore-case': '.png' } }] }, { s: 'image.jpg' })).toBe(false);
    expect(matches({ s: [{ prefix: { 'equals-ignore-case': 'a.b' } }] }, { s: 'aXb' })).toBe(false); // no regex leaks
  });

  it('rejects lists, numbers and other operators', () => {
    expect(rejection({ t: [{ prefix: ['a'] }] }).path).toBe('t[0].prefix');
    expect(rejection({ t: [{ suffix: 1 }] }).path).toBe('t[0].suffix');
    expect(rejection({ t: [{ prefix: { wildcard: 'a*' } }] }).message).toContain('"wildcard" is not supported here');
  });
});

describe('equals-ignore-case', () => {
  it('matches whole strings regardless of case, including non-ASCII letters', () => {
    expect(matches({ n: [{ 'equals-ignore-case': 'alice' }] }, { n: 'ALICE' })).toBe(true);
    expect(matches({ n: [{ 'equals-ignore-case': 'alice' }] }, { n: 'alice2' })).toBe(false);
    expect(matches({ n: [{ 'equals-ignore-case': 'ärger' }] }, { n: 'ÄRGER' })).toBe(true);
    expect(matches({ n: [{ 'equals-ignore-case': '' }] }, { n: '' })).toBe(true);
    expect(matches({ n: [{ 'equals-ignore-case': '' }] }, { n: 'x' })).toBe(false);
  });

  it('takes only a string', () => {
    expect(rejection({ n: [{ 'equals-ignore-case': ['a'] }] }).path).toBe('n[0].equals-ignore-case');
  });
});

describe('anything-but', () => {
  it('excludes single values and lists of strings or numbers', () => {
    expect(matches({ s: [{ 'anything-but': 'init' }] }, { s: 'running' })).toBe(true);
    expect(matches({ s: [{ 'anything-but': 'init' }] }, { s: 'init' })).toBe(false);
    expect(matches({ n: [{ 'anything-but': [100, 200] }] }, { n: 999 })).toBe(true);
    expect(matches({ n: [{ 'anything-but': [100, 200] }] }, JSON.parse('{"n": 1.0e2}'))).toBe(false);
    expect(matches({ n: [{ 'anything-but': 0 }] }, { n: 5 })).toBe(true);
  });

  it('matches any present value of another type, null included, but not a missing field', () => {
    expect(matches({ s: [{ 'anything-but': 'init' }] }, { s: null })).toBe(true);
    expect(matches({ s: [{ 'anything-but': '100' }] }, { s: 100 })).toBe(true);
    expect(matches({ s: [{ 'anything-but': { prefix: 'init' } }] }, { s: 12 })).toBe(true);
    expect(matches({ s: [{ 'anything-but': 'init' }] }, {})).toBe(false);
    expect(matches({ s: [{ 'anything-but': 'init' }] }, { s: [] })).toBe(false);
  });

  it('matches an event array when any element is not excluded', () => {
    expect(matches({ s: [{ 'anything-but': ['a'] }] }, { s: ['a', 'b'] })).toBe(true);
    expect(matches({ s: [{ 'anything-but': ['a', 'b'] }] }, { s: ['a', 'b'] })).toBe(false);
  });

  it('excludes by prefix, suffix, case-insensitive value or wildcard', () => {
    expect(matches({ r: [{ 'anything-but': { prefix: 'us-' } }] }, { r: 'eu-west-1' })).toBe(true);
    expect(matches({ r: [{ 'anything-but': { prefix: ['us-', 'eu-'] } }] }, { r: 'eu-west-1' })).toBe(false);
    expect(matches({ f: [{ 'anything-but': { suffix: '.png' } }] }, { f: 'a.png' })).toBe(false);
    expect(matches({ f: [{ 'anything-but': { suffix: ['.png', '.jpg'] } }] }, { f: 'a.gif' })).toBe(true);
    expect(matches({ s: [{ 'anything-but': { 'equals-ignore-case': 'init' } }] }, { s: 'INIT' })).toBe(false);
    expect(matches({ s: [{ 'anything-but': { 'equals-ignore-case': ['a', 'b'] } }] }, { s: 'C' })).toBe(true);
    expect(matches({ p: [{ 'anything-but': { wildcard: '*/lib/*' } }] }, { p: '/usr/lib/x' })).toBe(false);
    expect(matches({ p: [{ 'anything-but': { wildcard: ['*/lib/*', '*.tmp'] } }] }, { p: '/usr/bin/x' })).toBe(true);
    expect(matches({ p: [{ 'anything-but': { wildcard: '' } }] }, { p: 'x' })).toBe(true);
  });

  it('rejects null, booleans, mixed or empty lists and empty prefixes', () => {
    expect(rejection({ s: [{ 'anything-but': null }] }).path).toBe('s[0].anything-but');
    expect(rejection({ s: [{ 'anything-but': true }] }).path).toBe('s[0].anything-but');
    expect(rejection({ s: [{ 'anything-but': ['a', 1] }] }).message).toContain('only strings or only numbers');
    expect(rejection({ s: [{ 'anything-but': [] }] }).message).toContain('at least one value');
    expect(rejection({ s: [{ 'anything-but': { prefix: '' } }] }).path).toBe('s[0].anything-but.prefix');
    expect(rejection({ s: [{ 'anything-but': { suffix: ['.a', ''] } }] }).path).toBe('s[0].anything-but.suffix[1]');
    expect(rejection({ s: [{ 'anything-but': { exists: true } }] }).message).toContain('"anything-but" as an object');
    expect(rejection({ s: [{ 'anything-but': { prefix: { 'equals-ignore-case': 'a' } } }] }).path).toBe('s[0].anything-but.prefix');
  });
});

describe('numeric', () => {
  const range = (spec: unknown[], n: unknown): boolean => matches({ n: [{ numeric: spec }] }, { n });

  it('compares with one comparison', () => {
    expect(range(['=', 5], 5)).toBe(true);
    expect(range(['=', 5], 5.1)).toBe(false);
    expect(range(['<', 5], 4.999)).toBe(true);
    expect(range(['<', 5], 5)).toBe(false);
    expect(range(['<=', 5], 5)).toBe(true);
    expect(range(['>', 5], 5)).toBe(false);
    expect(range(['>=', 5], 5)).toBe(true);
    expect(range(['>', 100], 101.0)).toBe(true);
  });

  it('compares with a lower and an upper bound', () => {
    expect(range(['>', 0, '<=', 5], 5)).toBe(true);
    expect(range(['>', 0, '<=', 5], 0)).toBe(false);
    expect(range(['>=', 0, '<', 5], 0)).toBe(true);
    expect(range(['>=', 0, '<', 5], 5)).toBe(false);
    expect(range(['>', -10.5, '<', -1], -3)).toBe(true);
  });

  it('compares numbers as numbers, however they are written', () => {
    expect(matches(JSON.parse('{"x": [{"numeric": ["=", 3.018e2]}]}'), { x: 301.8 })).toBe(true);
    expect(matches({ x: [{ numeric: ['=', 301.8] }] }, JSON.parse('{"x": 3.018e2}'))).toBe(true);
    expect(range(['=', 0.3], 0.1 + 0.2)).toBe(true); // six decimal places, like EventBridge
  });

  it('only matches JSON numbers within ±5e9', () => {
    expect(range(['>', 100], '300')).toBe(false);
    expect(range(['>', 100], null)).toBe(false);
    expect(range(['>', 100], true)).toBe(false);
    expect(range(['>', 100], 6e9)).toBe(false);
    expect(range(['<', 0], -6e9)).toBe(false);
    expect(range(['>=', 5e9], 5e9)).toBe(true);
    expect(range(['>', 100], [1, 200])).toBe(true);
  });

  it('rejects malformed comparisons with the path and the problem', () => {
    const e = rejection({ detail: { 'c-count': [{ numeric: ['>', 0, '>', 0] }] } });
    expect(e.path).toBe('detail.c-count[0].numeric');
    expect(e.message).toContain('detail.c-count[0].numeric');
    expect(e.message).toContain('upper bound');
    expect(rejection({ n: [{ numeric: 10 }] }).message).toContain('takes a list');
    expect(rejection({ n: [{ numeric: [] }] }).path).toBe('n[0].numeric');
    expect(rejection({ n: [{ numeric: ['>', 0, '<'] }] }).message).toContain('needs a number');
    expect(rejection({ n: [{ numeric: ['>', '0'] }] }).message).toContain('must be followed by a number');
    expect(rejection({ n: [{ numeric: ['==', 0] }] }).message).toContain('expected a comparison');
    expect(rejection({ n: [{ numeric: ['<', 5, '>', 0] }] }).message).toContain('cannot be combined');
    expect(rejection({ n: [{ numeric: ['=', 5, '<', 6] }] }).message).toContain('cannot be combined');
    expect(rejection({ n: [{ numeric: ['>', 5, '<', 5] }] }).message).toContain('must be below');
    expect(rejection({ n: [{ numeric: ['>', 0, '<', 5, 6] }] }).message).toContain('too many');
    expect(rejection({ n: [{ numeric: ['>', 5e9 + 1] }] }).message).toContain('out of range');
    expect(rejection({ n: [{ numeric: ['>', 0.0000001] }] }).message).toContain('6 decimal places');
    expect(rejection({ n: [{ NUMERIC: ['=', 5] }] }).message).toContain('write "numeric"');
  });
});

describe('exists', () => {
  it('matches a present leaf value, null included', () => {
    expect(matches({ a: [{ exists: true }] }, { a: 'x' })).toBe(true);
    expect(matches({ a: [{ exists: true }] }, { a: null })).toBe(true);
    expect(matches({ a: [{ exists: true }] }, { a: 0 })).toBe(true);
    expect(matches({ a: [{ exists: true }] }, {})).toBe(false);
  });

  it('treats objects and empty arrays as no value, since only leaves exist', () => {
    expect(matches({ a: [{ exists: true }] }, { a: { b: 1 } })).toBe(false);
    expect(matches({ a: [{ exists: true }] }, { a: [] })).toBe(false);
    expect(matches({ a: [{ exists: false }] }, { a: [] })).toBe(true);
    expect(matches({ a: [{ exists: false }] }, { a: { b: 1 } })).toBe(true);
    expect(matches({ a: { b: [{ exists: true }] } }, { a: [{ c: 1 }, { b: 'x' }] })).toBe(true);
  });

  it('exists: false matches when the field or any parent is missing', () => {
    expect(matches({ a: [{ exists: false }] }, {})).toBe(true);
    expect(matches({ a: [{ exists: false }] }, { a: 'x' })).toBe(false);
    expect(matches({ a: [{ exists: false }] }, { a: null })).toBe(false);
    expect(matches({ p: { q: { r: [{ exists: false }] } } }, { p: 'leaf' })).toBe(true);
    expect(matches({ p: { q: { r: [{ exists: false }] } } }, {})).toBe(true);
    expect(matches({ p: { q: { r: [{ exists: false }] } } }, { p: { q: { r: 1 } } })).toBe(false);
    expect(matches({ p: { q: [{ exists: false }] }, s: ['x'] }, { s: 'x' })).toBe(true);
  });

  it('combines with other matchers in a list as an OR', () => {
    const p = compilePattern({ s: [{ 'anything-but': ['roses'] }, { exists: false }] });
    expect(p.matches({ s: 'tulips' })).toBe(true);
    expect(p.matches({})).toBe(true);
    expect(p.matches({ s: 'roses' })).toBe(false);
  });

  it('takes only true or false', () => {
    expect(rejection({ a: [{ exists: 'yes' }] }).path).toBe('a[0].exists');
  });
});

describe('cidr', () => {
  const ip = (cidr: string, value: unknown): boolean => matches({ ip: [{ cidr }] }, { ip: value });

  it('matches IPv4 addresses in the block', () => {
    expect(ip('10.0.0.0/24', '10.0.0.255')).toBe(true);
    expect(ip('10.0.0.0/24', '10.0.1.0')).toBe(false);
    expect(ip('10.0.0.0/24', '10.0.0.256')).toBe(false);
    expect(ip('10.0.0.0/24', '10.0.0')).toBe(false);
    expect(ip('10.0.0.0/24', 'x10.0.0.1')).toBe(false);
    expect(ip('10.0.0.9/8', '10.200.3.4')).toBe(true); // host bits are ignored
    expect(ip('0.0.0.0/0', '255.255.255.255')).toBe(true);
    expect(ip('192.168.1.128/25', '192.168.1.127')).toBe(false);
    expect(ip('192.168.1.128/25', '192.168.1.200')).toBe(true);
  });

  it('matches IPv6 addresses in the block, in full or compressed form', () => {
    expect(ip('2001:db8:1234:1a00::/64', '2001:0db8:1234:1a00:0000:0000:0000:0000')).toBe(true);
    expect(ip('2001:db8:1234:1a00::/64', '2001:db8:1234:1a00:ffff::1')).toBe(true);
    expect(ip('2001:db8:1234:1a00::/64', '2001:0db8:123f:1a01::')).toBe(false);
    expect(ip('2001:DB8::/32', '2001:db8:ffff::')).toBe(true);
    expect(ip('::/0', '::1')).toBe(true);
    expect(ip('2001:db8::/33', '2001:db8:8000::')).toBe(false);
    expect(ip('2001:db8::/33', '2001:db8:7fff::')).toBe(true);
    expect(ip('2001:db8::/32', '2001:db8::1::2')).toBe(false);
    expect(ip('2001:db8::/32', '10.0.0.1')).toBe(false);
    expect(ip('10.0.0.0/8', '2001:db8::1')).toBe(false);
  });

  it('does not match values that are not strings', () => {
    expect(ip('10.0.0.0/24', 123)).toBe(false);
    expect(ip('10.0.0.0/24', null)).toBe(false);
    expect(ip('10.0.0.0/24', ['1.1.1.1', '10.0.0.7'])).toBe(true);
  });

  it('rejects bad blocks the way EventBridge does', () => {
    expect(rejection({ ip: [{ cidr: 'bad-filter' }] }).path).toBe('ip[0].cidr');
    expect(rejection({ ip: [{ cidr: '10.0.0.0' }] }).message).toContain("one '/'");
    expect(rejection({ ip: [{ cidr: '10.0.0.0/x' }] }).message).toContain('whole number');
    expect(rejection({ ip: [{ cidr: '10.0.0.300/8' }] }).message).toContain('not an IPv4 or IPv6 address');
    expect(rejection({ ip: [{ cidr: 'xxxx:db8::/64' }] }).message).toContain('not an IPv4 or IPv6 address');
    expect(rejection({ ip: [{ cidr: '10.0.0.1/32' }] }).message).toContain('at most 31');
    expect(rejection({ ip: [{ cidr: '::1/128' }] }).message).toContain('at most 127');
    expect(rejection({ ip: [{ cidr: ['10.0.0.0/8'] }] }).message).toContain('takes a string');
  });
});

describe('wildcard', () => {
  const wc = (wildcard: string, value: unknown): boolean => matches({ f: [{ wildcard }] }, { f: value });

  it('matches any run of characters for each *', () => {
    expect(wc('*.png', 'a.png')).toBe(true);
    expect(wc('*.png', '.png')).toBe(true);
    expect(wc('*.png', 'a.png.bak')).toBe(false);
    expect(wc('/Users/*/doc.txt', '/Users/me/dir/dir/doc.txt')).toBe(true);
    expect(wc('/Users/*/doc.txt', '/Users/me/notdoc.txt2')).toBe(false);
    expect(wc('a*b*c', 'abc')).toBe(true);
    expect(wc('a*b*c', 'aXbYbZc')).toBe(true);
    expect(wc('a*b*c', 'acb')).toBe(false);
    expect(wc('ab*ba', 'aba')).toBe(false); // the prefix and suffix may not overlap
    expect(wc('arn:aws:events:us-east-1:*:event-bus/*', 'arn:aws:events:us-east-1:123:event-bus/bus')).toBe(true);
    expect(wc('*', '')).toBe(true);
    expect(wc('', '')).toBe(true);
    expect(wc('', 'x')).toBe(false);
    expect(wc('*', 5)).toBe(false);
  });

  it('escapes a star or a backslash with a backslash', () => {
    expect(wc('a\\*b', 'a*b')).toBe(true);
    expect(wc('a\\*b', 'aXb')).toBe(false);
    expect(wc('a\\\\*', 'a\\anything')).toBe(true);
    expect(wc('*\\*', 'note*')).toBe(true);
    expect(rejection({ f: [{ wildcard: 'a\\b' }] }).message).toContain('escapes neither');
  });

  it('rejects ** and patterns EventBridge finds too complex', () => {
    const double = rejection({ f: [{ wildcard: 'a**b' }] });
    expect(double.path).toBe('f[0].wildcard');
    expect(double.message).toContain('two "*" in a row');
    const complex = rejection({ f: [{ wildcard: '*:*:*:*:*:event-bus/*' }] });
    expect(complex.path).toBe('f[0].wildcard');
    expect(complex.message).toContain('too complex');
    expect(() => compilePattern({ f: [{ wildcard: '/Users/*/dir/dir/dir/dir/dir/doc.txt' }] })).not.toThrow();
    // The limit applies to all wildcards of one field together.
    expect(rejection({ f: [{ wildcard: 'a*aaaa' }, { wildcard: 'aa*aaa' }, { wildcard: 'aaa*aa' }] }).path).toBe('f');
  });

  it('takes only a string', () => {
    expect(rejection({ f: [{ wildcard: ['*'] }] }).path).toBe('f[0].wildcard');
    expect(rejection({ f: [{ wildcard: 1 }] }).path).toBe('f[0].wildcard');
  });
});

describe('$or', () => {
  it('matches when any branch matches, alongside the other fields', () => {
    const p = compilePattern({
      source: ['shop'],
      detail: {
        $or: [{ 'c-count': [{ numeric: ['>', 0, '<=', 5] }] }, { 'd-count': [{ numeric: ['<', 10] }] }],
      },
    });
    expect(p.matches({ source: 'shop', detail: { 'c-count': 0, 'd-count': 3 } })).toBe(true);
    expect(p.matches({ source: 'shop', detail: { 'c-count': 0, 'd-count': 30 } })).toBe(false);
    expect(p.matches({ source: 'bank', detail: { 'c-count': 1 } })).toBe(false);
  });

  it('works at the top level and nested in another $or', () => {
    const p = compilePattern({
      $or: [{ type: ['a'] }, { $or: [{ type: ['b'] }, { data: { level: [{ numeric: ['>=', 3] }] } }] }],
    });
    expect(p.matches({ type: 'a' })).toBe(true);
    expect(p.matches({ type: 'b' })).toBe(true);
    expect(p.matches({ type: 'c', data: { level: 4 } })).toBe(true);
    expect(p.matches({ type: 'c', data: { level: 2 } })).toBe(false);
  });

  it('matches a missing object when a branch only asks for absence', () => {
    expect(matches({ d: { $or: [{ a: ['x'] }, { b: [{ exists: false }] }] } }, {})).toBe(true);
  });

  it('needs a list of at least two objects and no operator names as fields', () => {
    expect(rejection({ $or: [{ a: ['x'] }] }).path).toBe('$or');
    expect(rejection({ d: { $or: { a: ['x'] } } }).path).toBe('d.$or');
    expect(rejection({ $or: [{ a: ['x'] }, 'b'] }).path).toBe('$or[1]');
    expect(rejection({ $or: [{ a: ['x'] }, {}] }).path).toBe('$or[1]');
    expect(rejection({ $or: [{ a: ['x'] }, { prefix: ['y'] }] }).path).toBe('$or[1].prefix');
  });
});

describe('PatternError', () => {
  it('names the place and the problem', () => {
    const e = rejection({ detail: { state: 'running' } });
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('PatternError');
    expect(e.path).toBe('detail.state');
    expect(e.message).toBe(
      'Invalid event pattern at detail.state: expected a list of values to match, like "state": ["running"], or a nested object; got the string "running"',
    );
  });

  it('rejects what is not a pattern object', () => {
    for (const bad of [null, 42, [], ['a'], true, undefined]) expect(rejection(bad).path).toBe('');
    expect(rejection('{"a": [').message).toContain('not valid JSON');
    expect(rejection('[1]').message).toContain('must be a JSON object');
    expect(rejection({}).message).toContain('the pattern is empty');
  });

  it('rejects empty objects and lists, nested lists and odd values', () => {
    expect(rejection({ detail: {} }).path).toBe('detail');
    expect(rejection({ a: [] }).path).toBe('a');
    expect(rejection({ a: [['x']] }).path).toBe('a[0]');
    expect(rejection({ a: [undefined] }).path).toBe('a[0]');
    expect(rejection({ a: 42 }).path).toBe('a');
    expect(rejection({ a: null }).path).toBe('a');
  });

  it('rejects operator objects with no operator, several operators, or an unknown one', () => {
    expect(rejection({ a: [{}] }).message).toContain('needs one operator');
    expect(rejection({ a: [{ prefix: 'x', suffix: 'y' }] }).message).toContain('exactly one operator');
    const unknown = rejection({ a: [{ contains: 'x' }] });
    expect(unknown.path).toBe('a[0].contains');
    expect(unknown.message).toContain('known operators');
    expect(rejection({ a: [{ EXISTS: true }] }).message).toContain('write "exists"');
  });
});

describe('matches() on odd events', () => {
  const patterns = [
    { type: ['x'] },
    { a: { b: [{ exists: false }] } },
    { a: [{ 'anything-but': 'x' }] },
    { a: { b: { c: [{ numeric: ['>', 0] }] } } },
    { $or: [{ a: [{ cidr: '10.0.0.0/8' }] }, { b: [{ wildcard: '*x*' }] }] },
  ].map((p) => compilePattern(p));

  it('never throws, whatever the event is', () => {
    const cyclic: unknown[] = [];
    cyclic.push(cyclic);
    let deep: unknown = 'bottom';
    for (let i = 0; i < 10_000; i++) deep = { a: deep, b: [deep] };
    const events: unknown[] = [
      null, undefined, 0, 42, 'string', true, [], [null], [[[]]], {}, { a: null }, { a: [] }, { a: { b: null } },
      { a: cyclic }, deep, { a: [[[[['x']]]]] }, Object.create(null), new Date(), () => 1, Symbol('s'), 10n,
      { a: 10n }, { a: Symbol('s') }, { a: () => 1 }, { 'a.b': 1 }, { a: { 'b.c': 1 } }, { __proto__: { type: 'x' } },
    ];
    for (const p of patterns) for (const event of events) expect(typeof p.matches(event)).toBe('boolean');
  });

  it('treats an event that is not an object as having no fields', () => {
    expect(patterns[0].matches('x')).toBe(false);
    expect(patterns[1].matches(null)).toBe(true); // only absence is asked for
    expect(patterns[1].matches([])).toBe(true);
  });

  it('finds values through deep nesting in both event and pattern', () => {
    let pattern: Record<string, unknown> = { leaf: ['x'] };
    let event: Record<string, unknown> = { leaf: 'x' };
    for (let i = 0; i < 200; i++) {
      pattern = { n: pattern };
      event = { n: event };
    }
    expect(matches(pattern, event)).toBe(true);
  });
});
