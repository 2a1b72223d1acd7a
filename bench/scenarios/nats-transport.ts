/**
 * Scenario 2: what petrel costs on top of NATS JetStream. A one-function app (no-op handler) on
 * the NATS target against raw nats.js publish + consume + ack of the same CloudEvent bodies,
 * with the same in-flight window: publishes in lockstep windows of WINDOW, and the function's
 * concurrency (its consumer's max_ack_pending) equal to the raw consumer's.
 */
import { benchApp, probe } from '../app.js';
import { benchEvent } from '../events.js';
import { IDLE_TIMEOUT_MS } from '../harness.js';
import { natsTarget, rawJetStream, startNats, type NatsRuntime } from '../peers/nats.js';
import { log, sleep } from '../stats.js';
import { repeat, type Scenario } from './types.js';

const WINDOW = 256;
const PETREL = 'petrel on NATS, no-op function: published -> all handled';
const RAW = 'raw nats.js JetStream: published -> all consumed and acked';

export const natsTransportScenario: Scenario = {
  name: '2. NATS transport (vs raw nats.js JetStream)',
  metrics: [
    {
      figure: PETREL,
      unit: 'events/s',
      higherIsBetter: true,
      baseline: { figure: RAW, name: `raw nats.js JetStream, ${WINDOW} in flight (the limit)` },
      target: { ratio: 0.7, text: '>= 70% of raw' },
    },
  ],
  async measure(o, runs) {
    const nats = await natsTarget();
    if (!nats.module) {
      log(`scenario 2 skipped: ${nats.reason}`);
      return { runs: [] };
    }
    const module = nats.module;
    const tag = `t${process.pid}`;
    return {
      runs: await repeat('scenario 2', runs, async (run) => {
        const events = Array.from({ length: o.natsEvents }, (_, i) => benchEvent(i));
        const bodies = events.map((e) => JSON.stringify(e));
        await rawJetStream(`${tag}-${run}-warm`, bodies.slice(0, Math.min(bodies.length, 2_000)), WINDOW);
        const raw = await rawJetStream(`${tag}-${run}`, bodies, WINDOW);
        probe.handled = 0;
        const { runtime, stop } = await startNats(module, benchApp('noop', { name: `bench-${tag}-${run}`, concurrency: WINDOW }));
        try {
          await publishInWindows(runtime, events.slice(0, 2_000).map((e) => ({ ...e, id: `${e.id}-warm` })));
          await runtime.idle(IDLE_TIMEOUT_MS);
          const before = probe.handled;
          const start = performance.now();
          await publishInWindows(runtime, events);
          while (probe.handled - before < events.length) await sleep(1);
          const petrel = (events.length * 1000) / (performance.now() - start);
          await runtime.idle(IDLE_TIMEOUT_MS);
          return { [PETREL]: petrel, [RAW]: raw };
        } finally {
          await stop();
        }
      }),
    };
  },
};

async function publishInWindows(runtime: NatsRuntime, events: ReturnType<typeof benchEvent>[]): Promise<void> {
  for (let i = 0; i < events.length; i += WINDOW) await runtime.publish(events.slice(i, i + WINDOW));
}
