import { describe, expect, it } from 'vitest';
import { TableSession } from '../../core/session.js';
import { airQualityConfig } from './config.js';
import { tables } from './tables.js';
import { MINUTE } from './testing.js';
import { advanceWindows, WINDOW_USES } from './windows.js';

type WindowContext = Parameters<typeof advanceWindows>[0];

/** The windows' tables in memory: one attempt's session over nothing committed keeps every write. */
function memoryContext(): WindowContext {
  const session = new TableSession({ get: () => undefined, query: () => [] });
  const used = Object.keys(WINDOW_USES) as Array<keyof typeof WINDOW_USES>;
  return { tables: Object.fromEntries(used.map((name) => [name, session.table(name, tables[name])])), emit: () => undefined } as unknown as WindowContext;
}

describe('drift per sensor against its peers', () => {
  const T0 = Date.UTC(2025, 0, 15, 6, 0);
  // Event time in the past: a retention long enough that nothing has expired.
  const config = airQualityConfig({ allowedLatenessMs: 0, retentionMs: 100 * 365 * 86_400_000 });

  /** Three minutes of five sensors at one location; with `corrected`, sensor d0's readings first come wrong, then corrected. */
  async function run(corrected: boolean): Promise<WindowContext> {
    const ctx = memoryContext();
    for (let m = 0; m < 3; m++) {
      for (let d = 0; d < 5; d++) {
        const time = T0 + m * MINUTE + d * 1000;
        const reading = { kind: 'reading' as const, deviceId: `d${d}`, time, ingested: time };
        const values = { pm25: 10 + d + m };
        if (corrected && d === 0) {
          await advanceWindows(ctx, 'x', { ...reading, values: { pm25: 90 } }, config);
          await advanceWindows(ctx, 'x', { ...reading, values, previous: { pm25: 90 } }, config);
        } else await advanceWindows(ctx, 'x', { ...reading, values }, config);
      }
    }
    return ctx;
  }

  it('counts a corrected reading with its new values only, as if it had come right the first time', async () => {
    const clean = await run(false);
    const messy = await run(true);
    // Minutes 0 and 1 are final (the watermark is in minute 2): drift ran over both, for all five.
    const drift = await clean.tables.drift.query('x');
    expect(drift.map((item) => item.deviceId)).toEqual(['d0', 'd1', 'd2', 'd3', 'd4']);
    expect(await messy.tables.drift.query('x')).toEqual(drift);
  });

  it('keeps a sensor minute only until its minute is final', async () => {
    const ctx = await run(false);
    const open = await ctx.tables.deviceMinutes.query('x');
    expect(open.map((item) => item.key)).toEqual([0, 1, 2, 3, 4].map((d) => `${new Date(T0 + 2 * MINUTE).toISOString()}#d${d}`));
  });
});
