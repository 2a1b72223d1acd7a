/**
 * Scenario 3: HTTP ingest into a handler. The same small JSON POST answered by petrel's
 * http-triggered echo, by bare express 5 (what a user would write by hand; petrel serves these
 * routes on node:http) and by the same handler as a Lambda under serverless-offline (default,
 * and --useInProcess); and POST /events (one structured CloudEvent,
 * accepted durably, then handled) against bare express parsing the same request and answering
 * 202. One client for all: a worker thread, keep-alive, 16 requests in flight, closed loop.
 */
import type { BodySpec, LoadTarget } from '../http-worker.js';
import { ECHO_BODY, ECHO_PATH, probe } from '../app.js';
import { bareExpress, expectHandled, HTTP_CONCURRENCY, IDLE_TIMEOUT_MS, portOf, startRuntime, withLoad, type HttpLoad } from '../harness.js';
import { ServerlessOffline, type OfflineMode } from '../peers/serverless-offline.js';
import { log } from '../stats.js';
import { repeat, type BenchOptions, type MetricSpec, type Scenario } from './types.js';

const C = `c=${HTTP_CONCURRENCY}`;
const PETREL_ECHO = `petrel http trigger, small JSON POST, ${C}`;
const PETREL_EVENTS = `petrel POST /events, 1 structured event per request, ${C}`;
const EXPRESS_ECHO = 'bare express 5: same POST';
const EXPRESS_EVENTS = 'bare express 5: same POST /events';
const OFFLINE: Record<OfflineMode, string> = { default: 'serverless-offline 13', 'in-process': 'serverless-offline 13 --useInProcess' };
const offlineFigure = (mode: OfflineMode) => `${OFFLINE[mode]}: same POST`;

const EXPRESS_TARGET = { ratio: 0.8, text: '>= 80% of bare express' };
const OFFLINE_TARGET = { ratio: 3, text: '>= 3x serverless-offline' };

const metrics: MetricSpec[] = [
  { figure: PETREL_ECHO, unit: 'requests/s', higherIsBetter: true, baseline: { figure: EXPRESS_ECHO, name: 'bare express 5, same handler' }, target: EXPRESS_TARGET },
  ...(['default', 'in-process'] as const).map((mode) => ({
    figure: PETREL_ECHO,
    unit: 'requests/s',
    higherIsBetter: true,
    baseline: { figure: offlineFigure(mode), name: `${OFFLINE[mode]} + serverless 3, same handler as a Lambda` },
    target: OFFLINE_TARGET,
  })),
  { figure: PETREL_EVENTS, unit: 'requests/s', higherIsBetter: true, baseline: { figure: EXPRESS_EVENTS, name: 'bare express 5: parse, 202 (nothing durable)' }, target: EXPRESS_TARGET },
];

export const httpIngestScenario: Scenario = {
  name: '3. HTTP ingest into a handler (vs express, serverless-offline)',
  metrics,
  async measure(o, runs) {
    const offline = new Map<OfflineMode, ServerlessOffline>();
    const missing: Record<string, string> = {};
    log(`scenario 3: starting ${Object.values(OFFLINE).join(' and ')}`);
    await Promise.all(
      (['default', 'in-process'] as const).map(async (mode) => {
        try {
          offline.set(mode, await ServerlessOffline.start(mode));
        } catch (error) {
          missing[offlineFigure(mode)] = (error as Error).message;
          log(`scenario 3: ${OFFLINE[mode]} could not run: ${(error as Error).message}`);
        }
      }),
    );
    try {
      return {
        missing,
        runs: await repeat('scenario 3', runs, () =>
          withLoad(async (load) => {
            const figures = await petrel(load, o);
            const express = await bareExpress();
            try {
              figures[EXPRESS_ECHO] = await requestsPerSecond(load, o, { port: express.port, path: ECHO_PATH, status: 200 }, 'echo');
              figures[EXPRESS_EVENTS] = await requestsPerSecond(load, o, { port: express.port, path: '/events', status: 202 }, 'event');
            } finally {
              await express.close();
            }
            for (const [mode, server] of offline) figures[offlineFigure(mode)] = await requestsPerSecond(load, o, { port: server.port, path: ECHO_PATH, status: 200 }, 'echo');
            return figures;
          }),
        ),
      };
    } finally {
      for (const server of offline.values()) await server.stop();
    }
  },
};

async function petrel(load: HttpLoad, o: BenchOptions): Promise<Record<string, number>> {
  const { runtime, stop } = await startRuntime('noop');
  try {
    const port = portOf(await runtime.listen(0));
    const echo = await requestsPerSecond(load, o, { port, path: ECHO_PATH, status: 200 }, 'echo');
    const before = probe.handled;
    const { rate, answered } = await measureClosedLoop(load, o, { port, path: '/events', status: 202 }, 'event');
    await runtime.idle(IDLE_TIMEOUT_MS);
    expectHandled(probe.handled - before, answered);
    return { [PETREL_ECHO]: echo, [PETREL_EVENTS]: rate };
  } finally {
    await stop();
  }
}

async function requestsPerSecond(load: HttpLoad, o: BenchOptions, target: LoadTarget, body: 'echo' | 'event'): Promise<number> {
  return (await measureClosedLoop(load, o, target, body)).rate;
}

/** Warms up for a quarter of the window (at most 1 s, counted in `answered`), then measures `httpSeconds`. */
async function measureClosedLoop(load: HttpLoad, o: BenchOptions, target: LoadTarget, body: 'echo' | 'event') {
  const spec: BodySpec = body === 'echo' ? { kind: 'fixed', body: ECHO_BODY, contentType: 'application/json' } : { kind: 'bench-event' };
  const job = { kind: 'closed', target, body: spec, concurrency: HTTP_CONCURRENCY } as const;
  const warm = await load.run({ ...job, seconds: Math.min(1, o.httpSeconds / 4) });
  const { answered, elapsedMs } = await load.run({ ...job, seconds: o.httpSeconds });
  return { rate: (answered * 1000) / elapsedMs, answered: warm.answered + answered };
}
