/**
 * An app for each target's own test of lost write races: its function `later` loses a
 * conditional write `losses` times (25 by default; Infinity: always), then wins. An attempt runs
 * again on fresh state up to 20 times (core/invoke.ts WriteRaces), so with 25 losses it needs a
 * second attempt with runs of its own: 26 runs in all, and no dead letter. (Not in the delivery
 * suite: it counts runs in the handler's closure, which only a target running the handler in this
 * process can share.)
 */
import { defineApp, fn, on, table, type App } from '../core/app.js';

export const LOST_RACES = 25;

export interface LosingRaces {
  /** Conditional writes lost before one wins (default LOST_RACES). */
  losses?: number;
  /** Attempts before a dead letter (default 2). */
  maxAttempts?: number;
  /** Default true. */
  ordered?: boolean;
}

export function losingRacesApp(name: string, { losses = LOST_RACES, maxAttempts = 2, ordered = true }: LosingRaces = {}): { app: App; runs(): number } {
  let runs = 0;
  const app = defineApp({
    name,
    resources: { state: table({ partitionKey: 'id' }) },
    functions: {
      seed: fn({ trigger: on({ type: ['seed'] }), uses: { state: 'write' }, handler: (_e, ctx) => ctx.tables.state.put({ id: 'x', v: 1 }) }),
      later: fn({
        trigger: on({ type: ['t'] }),
        uses: { state: 'write' },
        ordered,
        retry: { maxAttempts, baseDelayMs: 1, maxDelayMs: 5 },
        handler: async (_e, ctx) => {
          runs++;
          await ctx.tables.state.put({ id: 'x', v: 2 }, runs <= losses ? { ifMatch: { v: 'never' } } : undefined);
        },
      }),
    },
  });
  return { app, runs: () => runs };
}
