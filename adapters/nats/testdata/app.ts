/**
 * A tiny app for the NATS crash tests: `count` stores one row per event, then emits
 * `test.counted`; `tally` stores one row per counted event. Each row counts how often its effect
 * was applied, so a doubled effect shows as n > 1. `petrel run` takes the name from
 * PETREL_TEST_APP, so every test run has its own stream and rows.
 */
import { defineApp, fn, http, on, table, type App } from '../../../core/app.js';
import type { Table } from '../../../core/ports.js';

async function increment(t: Table, pk: string, sk: string): Promise<void> {
  const current = await t.get({ pk, sk });
  await t.put({ pk, sk, n: Number(current?.n ?? 0) + 1 }, current ? { ifMatch: { n: current.n } } : { ifNotExists: true });
}

export function countingApp(name: string): App {
  return defineApp({
    name,
    resources: { counts: table({ partitionKey: 'pk', sortKey: 'sk' }) },
    functions: {
      count: fn({
        trigger: on({ type: ['test.count'] }),
        uses: { counts: 'write' },
        emits: ['test.counted'],
        concurrency: 32,
        timeoutMs: 1000,
        handler: async (e, ctx) => {
          await increment(ctx.tables.counts, 'event', e.id);
          ctx.emit('test.counted', { from: e.id });
        },
      }),
      tally: fn({
        trigger: on({ type: ['test.counted'] }),
        uses: { counts: 'write' },
        concurrency: 32,
        timeoutMs: 1000,
        handler: async (e, ctx) => increment(ctx.tables.counts, 'counted', e.id),
      }),
      read: fn({ trigger: http('GET', '/counts/:pk'), uses: { counts: 'read' }, handler: async (e, ctx) => ({ body: await ctx.tables.counts.query((e.data as { params: { pk: string } }).params.pk) }) }),
    },
  });
}

export default countingApp(process.env.PETREL_TEST_APP ?? 'nats-testdata');
