// Compiles an Amazon EventBridge event pattern into a tree of precomputed tests.
//
// Semantics follow EventBridge (event-ruler, the engine behind it):
// - a pattern and an event are both seen as flattened paths, so `{"a.b": [1]}` and `{"a": {"b": [1]}}`
//   are the same pattern, and an event key written as "a.b" is the same as a nested one;
// - only leaf values (strings, numbers, booleans, null) exist: objects are paths, arrays are sets of
//   values, and an empty array holds no value at all;
// - a list of matchers is an OR: some event value must match some matcher;
// - within an array of objects, all fields of a sub-pattern must match in the same element;
// - a field that is absent only matches `{"exists": false}`.
// Validation follows EventBridge too; every error names the place in the pattern (PatternError.path).

import { PatternError } from './errors.js';
import {
  MAX_WILDCARD_COMPLEXITY,
  NUMERIC_LIMIT,
  hasSupportedPrecision,
  numericRangeTest,
  parseCidr,
  parseWildcard,
  toMillionths,
  wildcardComplexity,
  wildcardTest,
  type ValueTest,
  type WildcardToken,
} from './matchers.js';

export interface CompiledPattern {
  /** The pattern that was compiled (parsed, when given as JSON text). Changing it later changes nothing. */
  readonly pattern: Readonly<Record<string, unknown>>;
  /** Whether the event matches. Never throws; events that are not objects match almost nothing. */
  matches(event: unknown): boolean;
  /**
   * True when an event of this `type` cannot match, whatever else it holds: a router that knows
   * an event's type before it has the event (a log entry still as JSON) skips parsing it.
   */
  rejectsType(type: string): boolean;
}

/** Compiles a pattern, given as an object or as JSON text. Throws PatternError when EventBridge would reject it. */
export function compilePattern(pattern: unknown): CompiledPattern {
  let source = pattern;
  if (typeof pattern === 'string') {
    try {
      source = JSON.parse(pattern);
    } catch (e) {
      throw new PatternError('', `the pattern is not valid JSON (${(e as Error).message})`);
    }
  }
  if (!isObject(source)) {
    throw new PatternError('', `a pattern must be a JSON object like {"type": ["com.example.created"]}, got ${describe(source)}`);
  }
  const root = finish(compileObject(source, '', false));
  const rejects = typeRejecter(source);
  if (!rejects) return Object.freeze({ pattern: source, matches: (event: unknown) => matchObject(root, event, 0), rejectsType: () => false });
  return Object.freeze({
    pattern: source,
    matches: (event: unknown) => !(isObject(event) && typeof event.type === 'string' && rejects(event.type)) && matchObject(root, event, 0),
    rejectsType: rejects,
  });
}

/** Event types remembered per pattern by typeRejecter; past this many it starts over. */
const REMEMBERED_TYPES = 256;

/**
 * For a pattern with a list of values for `type`, whether that list rejects a type, remembered
 * per type: routing tests every event against every function's pattern, and the type alone
 * settles most of them. A pattern is a conjunction, so a rejected type rejects the event. (Only
 * the leaf test of `type` is asked, with the event's own `type`: what the full match asks of it.)
 */
function typeRejecter(source: Record<string, unknown>): ((type: string) => boolean) | undefined {
  if (!Array.isArray(source.type)) return undefined;
  const typeOnly = finish(compileObject({ type: source.type }, '', false));
  const known = new Map<string, boolean>();
  return (type) => {
    let rejected = known.get(type);
    if (rejected === undefined) {
      if (known.size >= REMEMBERED_TYPES) known.clear();
      known.set(type, (rejected = !matchObject(typeOnly, { type }, 0)));
    }
    return rejected;
  };
}

// ---------------------------------------------------------------------------------------------
// Compiled form, and matching

interface LeafTest {
  /** Tests one leaf value of the event against every matcher of the list except {"exists": false}. */
  readonly test: ValueTest;
  /** The list holds {"exists": false}: an absent field matches. */
  readonly matchesMissing: boolean;
}

interface FieldMatcher {
  readonly key: string;
  /** `key + "."`: to find event keys that spell the path with dots ("a.b": 1). */
  readonly dottedPrefix: string;
  /** The key is also an Object.prototype member ("constructor"...): only an own property counts. */
  readonly ownOnly: boolean;
  readonly matchesMissing: boolean;
  /** Matches the event's value at this key, which is present (not undefined). */
  readonly matchPresent: (value: unknown, depth: number) => boolean;
}

interface ObjectMatcher {
  readonly fields: readonly FieldMatcher[];
  /** Each `$or`: one of its branches must match the same object. */
  readonly anyOf: readonly (readonly ObjectMatcher[])[];
  /** The sub-pattern matches where the event has no object at all. */
  readonly matchesMissing: boolean;
}

/** Deeper array nesting than this is treated as holding no value (guards against hostile events). */
const MAX_ARRAY_DEPTH = 64;

const hasOwn = Object.prototype.hasOwnProperty;

function matchObject(node: ObjectMatcher, value: unknown, depth: number): boolean {
  if (typeof value !== 'object' || value === null) return node.matchesMissing;
  if (Array.isArray(value)) {
    // The whole sub-pattern must match within one element (EventBridge's array consistency).
    if (value.length === 0 || depth >= MAX_ARRAY_DEPTH) return node.matchesMissing;
    for (let i = 0; i < value.length; i++) if (matchObject(node, value[i], depth + 1)) return true;
    return false;
  }
  const obj = value as Record<string, unknown>;
  const fields = node.fields;
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i];
    const child = field.ownOnly && !hasOwn.call(obj, field.key) ? undefined : obj[field.key];
    if (child !== undefined) {
      if (!field.matchPresent(child, depth)) return false;
      continue;
    }
    const dotted = collectDotted(obj, field.dottedPrefix);
    if (dotted !== undefined ? !field.matchPresent(dotted, depth) : !field.matchesMissing) return false;
  }
  const anyOf = node.anyOf;
  for (let g = 0; g < anyOf.length; g++) {
    const branches = anyOf[g];
    let matched = false;
    for (let b = 0; b < branches.length && !matched; b++) matched = matchObject(branches[b], obj, depth);
    if (!matched) return false;
  }
  return true;
}

/**
 * The event spells a path with dots ("a.b": 1 where the pattern has a → b): gather those keys
 * into an object without the prefix. Only runs when the plain key is missing.
 */
function collectDotted(obj: Record<string, unknown>, prefix: string): Record<string, unknown> | undefined {
  let found: Record<string, unknown> | undefined;
  for (const key in obj) {
    if (key.startsWith(prefix) && hasOwn.call(obj, key)) {
      found ??= Object.create(null) as Record<string, unknown>;
      found[key.slice(prefix.length)] = obj[key];
    }
  }
  return found;
}

const NO_LEAF = 0;
const NO_MATCH = 1;
const MATCH = 2;

/** Scans the leaf values at one place in the event: a scalar, or every scalar inside (nested) arrays. */
function scanLeaves(test: ValueTest, value: unknown, depth: number): number {
  switch (typeof value) {
    case 'string':
    case 'number':
    case 'boolean':
      return test(value) ? MATCH : NO_MATCH;
    case 'object':
      if (value === null) return test(null) ? MATCH : NO_MATCH;
      if (!Array.isArray(value) || depth >= MAX_ARRAY_DEPTH) return NO_LEAF; // an object is a path, not a value
      break;
    default:
      return NO_LEAF;
  }
  let result = NO_LEAF;
  for (let i = 0; i < value.length; i++) {
    const r = scanLeaves(test, value[i], depth + 1);
    if (r === MATCH) return MATCH;
    if (r === NO_MATCH) result = NO_MATCH;
  }
  return result;
}

function leafField(key: string, leaf: LeafTest): FieldMatcher {
  const { test, matchesMissing } = leaf;
  return {
    ...fieldKey(key),
    matchesMissing,
    matchPresent: (value, depth) => {
      const r = scanLeaves(test, value, depth);
      return r === MATCH || (r === NO_LEAF && matchesMissing);
    },
  };
}

function objectField(key: string, node: ObjectMatcher): FieldMatcher {
  return {
    ...fieldKey(key),
    matchesMissing: node.matchesMissing,
    matchPresent: (value, depth) => matchObject(node, value, depth),
  };
}

function fieldKey(key: string): Pick<FieldMatcher, 'key' | 'dottedPrefix' | 'ownOnly'> {
  return { key, dottedPrefix: `${key}.`, ownOnly: key in Object.prototype };
}

// ---------------------------------------------------------------------------------------------
// Building: objects and `$or`

/** A pattern object while it is being built; dotted keys and repeated paths are merged here. */
interface Draft {
  readonly fields: Map<string, DraftField>;
  readonly anyOf: Draft[][];
}

interface DraftField {
  leaf?: LeafTest;
  object?: Draft;
}

/** Field names event-ruler reserves inside `$or`, so an operator is never mistaken for a field. */
const RESERVED_IN_OR = new Set([
  'exactly', 'equals-ignore-case', 'prefix', 'suffix', 'anything-but', 'exists', 'wildcard', 'numeric', 'cidr',
  '=', '<', '<=', '>', '>=', 'regex', 'not-wildcard', 'not-equals-ignore-case', 'date-after', 'date-on-or-after',
  'date-before', 'date-on-or-before', 'in-date-range', 'ip-address-in-range', 'ip-address-not-in-range',
]);

function compileObject(obj: Record<string, unknown>, path: string, inOr: boolean): Draft {
  const keys = Object.keys(obj);
  if (keys.length === 0) {
    throw new PatternError(
      path,
      path ? 'empty objects are not allowed; name at least one field inside, or leave this one out' : 'the pattern is empty; name at least one field to match',
    );
  }
  const draft: Draft = { fields: new Map(), anyOf: [] };
  for (const key of keys) {
    const value = obj[key];
    const keyPath = joinPath(path, key);
    if (key === '$or') {
      draft.anyOf.push(compileOr(value, keyPath));
      continue;
    }
    if (inOr && RESERVED_IN_OR.has(key)) {
      throw new PatternError(keyPath, `"${key}" is a matching keyword and cannot be used as a field name inside "$or"`);
    }
    // "a.b" is the path a → b, exactly as if it were nested.
    const segments = key.split('.');
    const field = fieldAt(draft, segments);
    if (Array.isArray(value)) {
      field.leaf = compileList(value, keyPath); // a repeated path: the last one wins, as in EventBridge
    } else if (isObject(value)) {
      const child = compileObject(value, keyPath, inOr);
      field.object = field.object ? merge(field.object, child) : child;
    } else {
      throw new PatternError(
        keyPath,
        `expected a list of values to match, like ${JSON.stringify(key)}: [${preview(value)}], or a nested object; got ${describe(value)}`,
      );
    }
  }
  return draft;
}

function compileOr(value: unknown, path: string): Draft[] {
  if (!Array.isArray(value) || value.length < 2) {
    throw new PatternError(path, `"$or" takes a list of at least two sub-patterns, like [{"a": ["x"]}, {"b": ["y"]}]; got ${describe(value)}`);
  }
  return value.map((branch, i) => {
    const branchPath = `${path}[${i}]`;
    if (!isObject(branch)) throw new PatternError(branchPath, `each "$or" branch must be an object, got ${describe(branch)}`);
    return compileObject(branch, branchPath, true);
  });
}

/** The field for a dotted path inside a draft, creating intermediate objects on the way. */
function fieldAt(draft: Draft, segments: readonly string[]): DraftField {
  let node = draft;
  for (let i = 0; ; i++) {
    let field = node.fields.get(segments[i]);
    if (!field) {
      field = {};
      node.fields.set(segments[i], field);
    }
    if (i === segments.length - 1) return field;
    field.object ??= { fields: new Map(), anyOf: [] };
    node = field.object;
  }
}

function merge(into: Draft, from: Draft): Draft {
  for (const [key, field] of from.fields) {
    const target = fieldAt(into, [key]);
    if (field.leaf) target.leaf = field.leaf;
    if (field.object) target.object = target.object ? merge(target.object, field.object) : field.object;
  }
  into.anyOf.push(...from.anyOf);
  return into;
}

function finish(draft: Draft): ObjectMatcher {
  const leaves: FieldMatcher[] = [];
  const objects: FieldMatcher[] = [];
  for (const [key, field] of draft.fields) {
    if (field.leaf) leaves.push(leafField(key, field.leaf));
    if (field.object) objects.push(objectField(key, finish(field.object)));
  }
  const fields = [...leaves, ...objects]; // cheap leaf tests first: most events fail on them
  const anyOf = draft.anyOf.map((branches) => branches.map(finish));
  const matchesMissing = fields.every((f) => f.matchesMissing) && anyOf.every((branches) => branches.some((b) => b.matchesMissing));
  return { fields, anyOf, matchesMissing };
}

// ---------------------------------------------------------------------------------------------
// Building: lists of values and operators

const OPERATORS = ['prefix', 'suffix', 'equals-ignore-case', 'anything-but', 'numeric', 'exists', 'cidr', 'wildcard'];

/** The wildcards of one list, for the complexity check. */
type Wildcards = { text: string; path: string; tokens: readonly WildcardToken[] }[];

/** Marks {"exists": false}, which is not a test on a value. */
const ABSENT = 'absent';

function compileList(list: readonly unknown[], path: string): LeafTest {
  if (list.length === 0) {
    throw new PatternError(path, 'empty lists are not allowed; list at least one value or operator');
  }
  const exact = new Set<unknown>();
  const tests: ValueTest[] = [];
  const wildcards: Wildcards = [];
  let matchesMissing = false;
  list.forEach((item, i) => {
    const itemPath = `${path}[${i}]`;
    if (item === null || typeof item === 'string' || typeof item === 'boolean') {
      exact.add(item);
    } else if (typeof item === 'number') {
      if (!Number.isFinite(item)) throw new PatternError(itemPath, `${item} is not a JSON number`);
      exact.add(item); // numbers compare by value: 3.018e2 and 301.8 are the same number
    } else if (isObject(item)) {
      const test = compileOperator(item, itemPath, wildcards);
      if (test === ABSENT) matchesMissing = true;
      else tests.push(test);
    } else {
      throw new PatternError(itemPath, `a value to match must be a string, number, true, false, null or an operator object like {"prefix": "a"}; got ${describe(item)}`);
    }
  });
  // EventBridge limits how many partial wildcard matches one value can keep alive (see matchers.ts).
  if (wildcards.length > 0 && wildcardComplexity(wildcards.map((w) => w.tokens), MAX_WILDCARD_COMPLEXITY) > MAX_WILDCARD_COMPLEXITY) {
    const [only] = wildcards;
    throw new PatternError(
      wildcards.length === 1 ? only.path : path,
      `${wildcards.length === 1 ? `wildcard ${JSON.stringify(only.text)} is` : 'these wildcards together are'} too complex for EventBridge ` +
        `(over ${MAX_WILDCARD_COMPLEXITY} partial matches at once); use fewer "*", or fewer repeated characters right after a "*"`,
    );
  }
  return { test: listTest(exact, tests), matchesMissing };
}

/** One test for a whole list: a Set lookup for the exact values, then each operator. */
function listTest(exact: ReadonlySet<unknown>, tests: readonly ValueTest[]): ValueTest {
  if (tests.length === 0) return (value) => exact.has(value);
  if (exact.size === 0 && tests.length === 1) return tests[0];
  return (value) => {
    if (exact.has(value)) return true;
    for (let i = 0; i < tests.length; i++) if (tests[i](value)) return true;
    return false;
  };
}

function compileOperator(item: Record<string, unknown>, path: string, wildcards: Wildcards): ValueTest | typeof ABSENT {
  const keys = Object.keys(item);
  if (keys.length !== 1) {
    throw new PatternError(
      path,
      keys.length === 0
        ? `an operator object needs one operator, one of: ${OPERATORS.join(', ')}`
        : `an operator object holds exactly one operator, got ${keys.map((k) => `"${k}"`).join(', ')}; put each in its own object in the list`,
    );
  }
  const op = keys[0];
  const value = item[op];
  const opPath = `${path}.${op}`;
  switch (op) {
    case 'prefix':
      return compileAffix(value, opPath, 'prefix');
    case 'suffix':
      return compileAffix(value, opPath, 'suffix');
    case 'equals-ignore-case': {
      const re = ignoreCase(requireString(value, opPath, '"equals-ignore-case" takes a string'), 'exact');
      return (v) => typeof v === 'string' && re.test(v);
    }
    case 'wildcard': {
      const text = requireString(value, opPath, '"wildcard" takes a string (for several, list several {"wildcard": ...} objects)');
      const parsed = parseWildcard(text, opPath);
      wildcards.push({ text, path: opPath, tokens: parsed.tokens });
      const test = wildcardTest(parsed.segments);
      return (v) => typeof v === 'string' && test(v);
    }
    case 'anything-but':
      return compileAnythingBut(value, opPath, wildcards);
    case 'numeric':
      return compileNumeric(value, opPath);
    case 'exists':
      if (typeof value !== 'boolean') throw new PatternError(opPath, `"exists" takes true or false, got ${describe(value)}`);
      return value ? () => true : ABSENT;
    case 'cidr':
      return parseCidr(requireString(value, opPath, '"cidr" takes a string like "10.0.0.0/24"'), opPath);
    default: {
      const lower = op.toLowerCase();
      const hint = OPERATORS.includes(lower) ? `operators are lower-case: write "${lower}"` : `known operators: ${OPERATORS.join(', ')}`;
      throw new PatternError(opPath, `unknown operator "${op}"; ${hint}`);
    }
  }
}

/** `prefix` / `suffix`: a string, or {"equals-ignore-case": string}. Only strings match. */
function compileAffix(value: unknown, path: string, kind: 'prefix' | 'suffix'): ValueTest {
  if (typeof value === 'string') {
    return kind === 'prefix'
      ? (v) => typeof v === 'string' && v.startsWith(value)
      : (v) => typeof v === 'string' && v.endsWith(value);
  }
  const usage = `"${kind}" takes a string or {"equals-ignore-case": string}`;
  if (!isObject(value)) throw new PatternError(path, `${usage}, got ${describe(value)}`);
  const keys = Object.keys(value);
  if (keys.length !== 1 || keys[0] !== 'equals-ignore-case') {
    throw new PatternError(path, `${usage}; ${keys.length === 1 ? `"${keys[0]}" is not supported here` : 'give exactly one key'}`);
  }
  const re = ignoreCase(requireString(value['equals-ignore-case'], `${path}.equals-ignore-case`, '"equals-ignore-case" takes a string'), kind);
  return (v) => typeof v === 'string' && re.test(v);
}

/**
 * `anything-but`: matches every present value (of any type, null included) except the ones listed.
 * Takes a string, a number, a list of only strings or only numbers, or one of
 * {prefix | suffix | equals-ignore-case | wildcard: string or list of strings}.
 */
function compileAnythingBut(value: unknown, path: string, wildcards: Wildcards): ValueTest {
  if (typeof value === 'string') return (v) => v !== value;
  if (typeof value === 'number') {
    checkAnythingButNumber(value, path);
    return (v) => v !== value;
  }
  if (Array.isArray(value)) {
    const strings = value.every((x) => typeof x === 'string');
    const numbers = value.every((x) => typeof x === 'number');
    if (value.length === 0 || (!strings && !numbers)) {
      throw new PatternError(
        path,
        value.length === 0
          ? '"anything-but" needs at least one value'
          : '"anything-but" takes a list of only strings or only numbers (no null, true/false, objects, or a mix)',
      );
    }
    if (numbers) value.forEach((n: number, i) => checkAnythingButNumber(n, `${path}[${i}]`));
    const excluded = new Set<unknown>(value);
    return (v) => !excluded.has(v);
  }
  if (!isObject(value)) {
    throw new PatternError(path, `"anything-but" takes a string, a number, a list of them, or an object like {"prefix": "a"}; got ${describe(value)}`);
  }
  const keys = Object.keys(value);
  const supported = ['prefix', 'suffix', 'equals-ignore-case', 'wildcard'];
  if (keys.length !== 1 || !supported.includes(keys[0])) {
    const got = keys.length === 0 ? 'an empty object' : keys.map((k) => `"${k}"`).join(', ');
    throw new PatternError(path, `"anything-but" as an object takes exactly one of ${supported.map((k) => `"${k}"`).join(', ')}; got ${got}`);
  }
  const op = keys[0];
  const opPath = `${path}.${op}`;
  if ((op === 'prefix' || op === 'suffix') && isObject(value[op])) {
    throw new PatternError(opPath, `"anything-but" with "${op}" takes a string or a list of strings; EventBridge does not support "equals-ignore-case" or other operators inside it`);
  }
  const texts = stringOrStrings(value[op], opPath, `"anything-but" with "${op}"`);
  switch (op) {
    case 'prefix':
    case 'suffix': {
      const empty = texts.indexOf('');
      if (empty >= 0) {
        throw new PatternError(
          Array.isArray(value[op]) ? `${opPath}[${empty}]` : opPath,
          `an empty ${op} would exclude every string; remove it or use a non-empty ${op}`,
        );
      }
      return op === 'prefix'
        ? (v) => typeof v !== 'string' || !texts.some((t) => v.startsWith(t))
        : (v) => typeof v !== 'string' || !texts.some((t) => v.endsWith(t));
    }
    case 'equals-ignore-case': {
      const re = ignoreCase(texts, 'exact');
      return (v) => typeof v !== 'string' || !re.test(v);
    }
    default: {
      const tests = texts.map((text, i) => {
        const textPath = Array.isArray(value[op]) ? `${opPath}[${i}]` : opPath;
        const parsed = parseWildcard(text, textPath);
        wildcards.push({ text, path: textPath, tokens: parsed.tokens });
        return wildcardTest(parsed.segments);
      });
      return (v) => typeof v !== 'string' || !tests.some((t) => t(v));
    }
  }
}

function checkAnythingButNumber(n: number, path: string): void {
  if (!Number.isFinite(n) || Math.abs(n) > NUMERIC_LIMIT || !hasSupportedPrecision(n)) {
    throw new PatternError(path, `${n} is outside what EventBridge compares: numbers from -5e9 to 5e9 with at most 6 decimal places`);
  }
}

const NUMERIC_OPERATORS = new Set(['=', '<', '<=', '>', '>=']);

/** `numeric`: ["=", n], ["<" | "<=" | ">" | ">=", n], or [">" | ">=", low, "<" | "<=", high]. */
function compileNumeric(value: unknown, path: string): ValueTest {
  const usage = 'like [">", 0, "<=", 5] or ["=", 3]';
  if (!Array.isArray(value) || value.length === 0) {
    throw new PatternError(path, `"numeric" takes a list of comparisons ${usage}; got ${describe(value)}`);
  }
  const comparison = (at: number): { op: string; bound: number } => {
    const op: unknown = value[at];
    if (typeof op !== 'string' || !NUMERIC_OPERATORS.has(op)) {
      throw new PatternError(path, `expected a comparison ("=", "<", "<=", ">" or ">=") at position ${at}, got ${describe(op)}`);
    }
    if (at + 1 >= value.length) throw new PatternError(path, `"${op}" at position ${at} needs a number after it`);
    const bound: unknown = value[at + 1];
    if (typeof bound !== 'number' || !Number.isFinite(bound)) {
      throw new PatternError(path, `"${op}" at position ${at} must be followed by a number, got ${describe(bound)}`);
    }
    if (Math.abs(bound) > NUMERIC_LIMIT) {
      throw new PatternError(path, `${bound} is out of range: EventBridge compares numbers from -5e9 to 5e9`);
    }
    if (!hasSupportedPrecision(bound)) {
      throw new PatternError(path, `${bound} has more than 6 decimal places, which EventBridge does not compare`);
    }
    return { op, bound: toMillionths(bound) };
  };

  const first = comparison(0);
  const isLowerBound = first.op === '>' || first.op === '>=';
  if (value.length > 2 && !isLowerBound) {
    throw new PatternError(path, `"${first.op}" cannot be combined with another comparison; a range starts with ">" or ">=", ${usage}`);
  }
  if (value.length > 4) throw new PatternError(path, `too many elements: at most two comparisons, ${usage}`);
  if (value.length === 2) {
    switch (first.op) {
      case '=':
        return numericRangeTest(first.bound, false, first.bound, false);
      case '<':
      case '<=':
        return numericRangeTest(-Infinity, false, first.bound, first.op === '<');
      default:
        return numericRangeTest(first.bound, first.op === '>', Infinity, false);
    }
  }
  const second = comparison(2);
  if (second.op !== '<' && second.op !== '<=') {
    throw new PatternError(path, `after a lower bound ("${first.op}") the second comparison must be an upper bound, "<" or "<=", got "${second.op}"`);
  }
  if (second.bound <= first.bound) {
    throw new PatternError(path, `the lower bound ${value[1]} must be below the upper bound ${value[3]}`);
  }
  return numericRangeTest(first.bound, first.op === '>', second.bound, second.op === '<');
}

// ---------------------------------------------------------------------------------------------
// Small helpers

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function requireString(value: unknown, path: string, usage: string): string {
  if (typeof value !== 'string') throw new PatternError(path, `${usage}, got ${describe(value)}`);
  return value;
}

function stringOrStrings(value: unknown, path: string, what: string): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value) && value.length > 0) {
    value.forEach((x, i) => {
      if (typeof x !== 'string') throw new PatternError(`${path}[${i}]`, `${what} takes only strings, got ${describe(x)}`);
    });
    return value as string[];
  }
  throw new PatternError(path, `${what} takes a string or a non-empty list of strings, got ${describe(value)}`);
}

/** A case-insensitive (Unicode case folding) regular expression for exact, prefix or suffix matching. */
function ignoreCase(texts: string | readonly string[], kind: 'exact' | 'prefix' | 'suffix'): RegExp {
  const alternatives = (typeof texts === 'string' ? [texts] : texts).map((t) => t.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&'));
  const body = `(?:${alternatives.join('|')})`;
  return new RegExp(kind === 'prefix' ? `^${body}` : kind === 'suffix' ? `${body}$` : `^${body}$`, 'iu');
}

function joinPath(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return `a list (${preview(value)})`;
  if (value === null || typeof value === 'boolean') return String(value);
  if (typeof value === 'object') return `an object (${preview(value)})`;
  if (typeof value === 'string') return `the string ${preview(value)}`;
  if (typeof value === 'number') return `the number ${value}`;
  return `a ${typeof value}`;
}

function preview(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
