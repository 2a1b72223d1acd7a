// EventBridge pattern conformance: cases checked against the real service (LocalStack's test data),
// read in place from ../shared/conformance/eventbridge-patterns (see its README.md).
// File name ending: _NEG = valid but no match, _EXC = compiling must fail, otherwise a match.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import JSON5 from 'json5';
import { describe, expect, it } from 'vitest';
import { compilePattern, PatternError } from './index.js';

const dir = path.resolve(process.cwd(), '../shared/conformance/eventbridge-patterns');
const found = existsSync(dir);
const inCI = process.env.CI === 'true';

if (!found && !inCI) {
  console.warn(`EventBridge pattern conformance data not found at ${dir}; skipping the conformance suite`);
}

interface Case {
  name: string;
  event: unknown;
  pattern: unknown;
}

function loadCases(): Case[] {
  const cases: Case[] = [];
  for (const file of readdirSync(dir).sort()) {
    if (!file.endsWith('.json5')) continue;
    const { Event, EventPattern } = JSON5.parse(readFileSync(path.join(dir, file), 'utf8')) as { Event: unknown; EventPattern: unknown };
    cases.push({ name: file, event: Event, pattern: EventPattern });
  }
  // One extra pair, kept as two plain JSON files. Its pattern repeats a key: it is passed as text so
  // that JSON parsing (last key wins, as in EventBridge) happens inside compilePattern.
  const pairEvent = path.join(dir, 'complex_multi_key_event.json');
  const pairPattern = path.join(dir, 'complex_multi_key_event_pattern.json');
  if (existsSync(pairEvent) && existsSync(pairPattern)) {
    cases.push({
      name: 'complex_multi_key_event.json + complex_multi_key_event_pattern.json',
      event: JSON.parse(readFileSync(pairEvent, 'utf8')),
      pattern: readFileSync(pairPattern, 'utf8'),
    });
  }
  return cases;
}

describe.skipIf(!found && !inCI)('EventBridge pattern conformance', () => {
  if (!found) {
    it('finds the conformance data (required under CI)', () => {
      expect.fail(`EventBridge pattern conformance data not found at ${dir}`);
    });
    return;
  }

  const cases = loadCases();

  it('finds every case', () => {
    // The folder holds 155 .json5 cases plus one JSON pair (its README says 157).
    expect(cases.length).toBeGreaterThanOrEqual(156);
  });

  for (const { name, event, pattern } of cases) {
    it(name, () => {
      if (name.endsWith('_EXC.json5')) {
        expect(() => compilePattern(pattern)).toThrow(PatternError);
        return;
      }
      const compiled = compilePattern(pattern);
      expect(compiled.matches(event)).toBe(!name.endsWith('_NEG.json5'));
    });
  }
});
