// Leaf-value helpers for the pattern compiler: wildcard, CIDR and numeric matching.
// Everything here runs once per pattern (parse*) or once per event value (the returned tests);
// the tests do not allocate.

import { PatternError } from './errors.js';

/** A test on one leaf value of the event: a string, number, boolean or null. */
export type ValueTest = (value: unknown) => boolean;

// ---------------------------------------------------------------------------------------------
// Wildcard

/** One wildcard character: a literal character, or null for an unescaped `*`. */
export type WildcardToken = string | null;

export interface ParsedWildcard {
  /** Literal runs between the stars; one element when there is no star. */
  readonly segments: readonly string[];
  /** The pattern as characters and stars, for the complexity check. */
  readonly tokens: readonly WildcardToken[];
}

/** Parses a wildcard the way EventBridge does: `\*` is a literal star, `\\` a backslash, `**` is an error. */
export function parseWildcard(text: string, path: string): ParsedWildcard {
  const tokens: WildcardToken[] = [];
  const segments: string[] = [];
  let literal = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '*') {
      if (text[i + 1] === '*') {
        throw new PatternError(
          path,
          `wildcard ${JSON.stringify(text)} has two "*" in a row at position ${i}; one "*" already matches any run of characters`,
        );
      }
      tokens.push(null);
      segments.push(literal);
      literal = '';
    } else if (c === '\\') {
      const next = text[i + 1];
      if (next !== '*' && next !== '\\') {
        throw new PatternError(
          path,
          `wildcard ${JSON.stringify(text)} has a backslash at position ${i} that escapes neither "*" nor a backslash; ` +
            'write \\* for a literal star and \\\\ for a literal backslash',
        );
      }
      tokens.push(next);
      literal += next;
      i++;
    } else {
      tokens.push(c);
      literal += c;
    }
  }
  segments.push(literal);
  return { segments, tokens };
}

/** Builds the matcher for a parsed wildcard; only strings can match. */
export function wildcardTest(segments: readonly string[]): (value: string) => boolean {
  if (segments.length === 1) {
    const exact = segments[0];
    return (value) => value === exact;
  }
  const first = segments[0];
  const last = segments[segments.length - 1];
  const middle = segments.slice(1, -1);
  const minLength = segments.reduce((n, s) => n + s.length, 0);
  return (value) => {
    if (value.length < minLength || !value.startsWith(first) || !value.endsWith(last)) return false;
    // With only `*` wildcards, taking each middle run at its leftmost place is always safe.
    let from = first.length;
    const end = value.length - last.length;
    for (let i = 0; i < middle.length; i++) {
      const at = value.indexOf(middle[i], from);
      if (at < 0 || at + middle[i].length > end) return false;
      from = at + middle[i].length;
    }
    return true;
  };
}

/**
 * EventBridge rejects wildcard patterns that are too non-deterministic ("Rule is too complex").
 * Its measure (event-ruler's MachineComplexityEvaluator) is the largest number of pattern prefixes
 * ending in a literal or a `*` that one input string can match at once, summed over the wildcard
 * patterns of a field. For example `a*bb` scores 3 (the input "abb" matches "a*", "a*b", "a*bb"),
 * a path with one star followed by five "dir/" runs scores 7, and the six stars of
 * "*:*:*:*:*:event-bus/*" score 11.
 * AWS does not publish its limit; event-ruler suggests 10 per rule, which fits every case we know.
 */
export const MAX_WILDCARD_COMPLEXITY = 10;

/** How many subsets to explore before calling a pattern too complex regardless of its score. */
const MAX_STATES_EXPLORED = 20_000;

/**
 * Returns the complexity (see MAX_WILDCARD_COMPLEXITY) of a set of wildcard patterns, or a number
 * above `limit` as soon as it is known to exceed it. Runs a subset construction over the
 * patterns' positions; a position is "prefix i of pattern p matched the input so far".
 */
export function wildcardComplexity(patterns: readonly (readonly WildcardToken[])[], limit: number): number {
  const owner: number[] = []; // position -> pattern index
  const index: number[] = []; // position -> tokens consumed
  patterns.forEach((tokens, p) => {
    for (let i = 0; i <= tokens.length; i++) {
      owner.push(p);
      index.push(i);
    }
  });
  const alphabet = new Set<string>();
  for (const tokens of patterns) for (const t of tokens) if (t !== null) alphabet.add(t);
  // One character outside the patterns stands for every other character.
  let other = 0;
  while (alphabet.has(String.fromCharCode(other))) other++;
  const letters = [...alphabet, String.fromCharCode(other)];

  const tokenAt = (pos: number, i: number): WildcardToken | undefined => patterns[owner[pos]][i];
  // A `*` may match nothing: being before it means being after it too.
  const close = (set: Set<number>): Set<number> => {
    for (const pos of [...set]) {
      if (tokenAt(pos, index[pos]) === null) set.add(pos + 1);
    }
    return set;
  };
  const score = (set: Set<number>): number => {
    let n = 0;
    for (const pos of set) if (index[pos] > 0) n++;
    return n;
  };
  const keyOf = (set: Set<number>): string => [...set].sort((a, b) => a - b).join(',');

  const start = new Set<number>();
  owner.forEach((_, pos) => {
    if (index[pos] === 0) start.add(pos);
  });
  close(start);
  const seen = new Set<string>([keyOf(start)]);
  const queue = [start];
  let max = 0;
  while (queue.length > 0) {
    const set = queue.shift() as Set<number>;
    max = Math.max(max, score(set));
    if (max > limit || seen.size > MAX_STATES_EXPLORED) return Math.max(max, limit + 1);
    for (const letter of letters) {
      const next = new Set<number>();
      for (const pos of set) {
        const i = index[pos];
        if (i > 0 && tokenAt(pos, i - 1) === null) next.add(pos); // a `*` absorbs any character
        if (tokenAt(pos, i) === letter) next.add(pos + 1);
      }
      if (next.size === 0) continue;
      close(next);
      const key = keyOf(next);
      if (!seen.has(key)) {
        seen.add(key);
        queue.push(next);
      }
    }
  }
  return max;
}

// ---------------------------------------------------------------------------------------------
// CIDR

const COLON = 58;
const DOT = 46;

/** Parses dotted-quad IPv4 into 0..2^32-1, or -1. */
function parseIPv4(s: string): number {
  let value = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (++digits > 3) return -1;
      part = part * 10 + (c - 48);
      if (part > 255) return -1;
    } else if (c === DOT) {
      if (digits === 0 || ++dots > 3) return -1;
      value = value * 256 + part;
      part = 0;
      digits = 0;
    } else {
      return -1;
    }
  }
  if (digits === 0 || dots !== 3) return -1;
  return value * 256 + part;
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** Parses IPv6 (hex groups, at most one `::`) into eight 16-bit groups; false when it is not one. */
function parseIPv6(s: string, out: Uint16Array): boolean {
  const n = s.length;
  let groups = 0;
  let gap = -1; // group index where `::` stands
  let i = 0;
  if (n >= 2 && s.charCodeAt(0) === COLON && s.charCodeAt(1) === COLON) {
    gap = 0;
    i = 2;
  }
  while (i < n) {
    let group = 0;
    let digits = 0;
    while (i < n) {
      const h = hexDigit(s.charCodeAt(i));
      if (h < 0) break;
      if (++digits > 4) return false;
      group = group * 16 + h;
      i++;
    }
    if (digits === 0 || groups === 8) return false;
    out[groups++] = group;
    if (i === n) break;
    if (s.charCodeAt(i) !== COLON) return false;
    i++;
    if (i < n && s.charCodeAt(i) === COLON) {
      if (gap >= 0) return false;
      gap = groups;
      i++;
    } else if (i === n) {
      return false; // a single trailing colon
    }
  }
  if (gap < 0) return groups === 8;
  if (groups > 7) return false;
  // Move the groups after `::` to the end and zero the gap.
  const tail = groups - gap;
  for (let k = 0; k < tail; k++) out[7 - k] = out[groups - 1 - k];
  for (let k = gap; k < 8 - tail; k++) out[k] = 0;
  return true;
}

// Reused by every IPv6 test; matching is synchronous, so one buffer is enough.
const scratch = new Uint16Array(8);

/**
 * Parses a CIDR block the way EventBridge (event-ruler) does and returns the test for event values.
 * Like EventBridge, the mask must be below the address width (/0../31, /0../127).
 */
export function parseCidr(text: string, path: string): ValueTest {
  const parts = text.split('/');
  const fail = (why: string): never => {
    throw new PatternError(path, `${JSON.stringify(text)} is not a CIDR block (${why}); write it like "10.0.0.0/24" or "2001:db8::/32"`);
  };
  if (parts.length !== 2) fail("it needs exactly one '/'");
  const [address, maskText] = parts;
  if (!/^\d+$/.test(maskText)) fail('the mask after the slash must be a whole number');
  const bits = Number(maskText);

  const v4 = parseIPv4(address);
  if (v4 >= 0) {
    if (bits > 31) fail('an IPv4 mask must be at most 31; to match one address, list it as an exact value instead');
    const size = 2 ** (32 - bits);
    const block = Math.floor(v4 / size);
    return (value) => {
      if (typeof value !== 'string') return false;
      const ip = parseIPv4(value);
      return ip >= 0 && Math.floor(ip / size) === block;
    };
  }

  const net = new Uint16Array(8);
  if (!parseIPv6(address, net)) fail(`${JSON.stringify(address)} is not an IPv4 or IPv6 address`);
  if (bits > 127) fail('an IPv6 mask must be at most 127; to match one address, list it as an exact value instead');
  const mask = new Uint16Array(8);
  for (let k = 0; k < 8; k++) {
    const groupBits = Math.max(0, Math.min(16, bits - k * 16));
    mask[k] = groupBits === 0 ? 0 : (0xffff << (16 - groupBits)) & 0xffff;
    net[k] &= mask[k];
  }
  return (value) => {
    if (typeof value !== 'string' || !parseIPv6(value, scratch)) return false;
    for (let k = 0; k < 8; k++) if ((scratch[k] & mask[k]) !== net[k]) return false;
    return true;
  };
}

// ---------------------------------------------------------------------------------------------
// Numeric

/** EventBridge compares numbers only within ±5e9 ... */
export const NUMERIC_LIMIT = 5e9;
/** ... and to six digits after the decimal point. */
const SCALE = 1e6;

/** A number as an integer count of millionths, the precision EventBridge compares at. */
export function toMillionths(n: number): number {
  return Math.round(n * SCALE);
}

/** True when n has at most six digits after the decimal point. */
export function hasSupportedPrecision(n: number): boolean {
  return Number(n.toFixed(6)) === n;
}

/**
 * Test for a numeric range in millionths; a missing bound is ±Infinity.
 * Event values that are not numbers, or are outside ±5e9, never match.
 */
export function numericRangeTest(low: number, lowOpen: boolean, high: number, highOpen: boolean): ValueTest {
  return (value) => {
    if (typeof value !== 'number' || !(value >= -NUMERIC_LIMIT && value <= NUMERIC_LIMIT)) return false;
    const x = toMillionths(value);
    return (lowOpen ? x > low : x >= low) && (highOpen ? x < high : x <= high);
  };
}
