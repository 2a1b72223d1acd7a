/**
 * Scenario 5: cold start, from spawning the process to the first event handled. `petrel dev` (the
 * embedded runtime) and `petrel run --nats` (a NATS worker with the ingress) load the bench app
 * module; as soon as /healthz answers, one event is POSTed to /events, and the clock stops when
 * the process prints that its handler ran. Against `node -e 0`, the floor of any Node process.
 * Each target starts once unmeasured first (disk cache, tsx's compile cache, NATS streams created).
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { STRUCTURED } from '../../adapters/http/binding.js';
import { HANDLED_MARK, REPORT_SUBJECT } from '../app.js';
import { benchEvent } from '../events.js';
import { freePort, spawnPetrel, tempDir, waitHealthy } from '../harness.js';
import { deleteStreams, NATS_URL, natsTarget } from '../peers/nats.js';
import { log } from '../stats.js';
import { repeat, type MetricSpec, type Scenario } from './types.js';

const NODE = '`node -e 0`: spawn -> exit';
const FIRST = (who: string) => `${who}: spawn -> first event handled`;
const READY = (who: string) => `${who}: spawn -> /healthz answers`;
const EMBEDDED = '`petrel dev` (embedded)';
const NATS = '`petrel run --nats` (NATS worker)';

const versusNode = { figure: NODE, name: '`node -e 0` (the floor)' };
const metrics: MetricSpec[] = [EMBEDDED, NATS].flatMap((who) => [
  { figure: FIRST(who), unit: 'ms', higherIsBetter: false, baseline: versusNode },
  { figure: READY(who), unit: 'ms', higherIsBetter: false },
]);

export const coldStartScenario: Scenario = {
  name: '5. cold start (vs node -e 0)',
  metrics: [...metrics, { figure: NODE, unit: 'ms', higherIsBetter: false }],
  async measure(o, runs) {
    const nats = await natsTarget();
    if (!nats.module) log(`scenario 5: NATS worker rows skipped: ${nats.reason}`);
    const appName = `cold-${process.pid}`;
    const once = async () => {
      const figures: Record<string, number> = { [NODE]: await nodeStartup() };
      Object.assign(figures, await petrelColdStart(EMBEDDED));
      if (nats.module) Object.assign(figures, await petrelColdStart(NATS, appName));
      return figures;
    };
    try {
      await once();
      return { runs: await repeat('scenario 5', Math.max(runs, o.coldStarts), once) };
    } finally {
      if (nats.module) await deleteStreams(appName);
    }
  },
};

async function nodeStartup(): Promise<number> {
  const start = performance.now();
  const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('exit', resolve));
  return performance.now() - start;
}

/** One cold start of `petrel dev` (no appName) or `petrel run --nats`. */
async function petrelColdStart(who: string, natsAppName?: string): Promise<Record<string, number>> {
  const dataDir = tempDir('cold');
  const port = await freePort();
  const args = natsAppName ? ['run', '--nats', NATS_URL] : ['dev', '--data-dir', dataDir];
  const petrel = spawnPetrel(args, port, { BENCH_HANDLER: 'noop', BENCH_APP_NAME: natsAppName ?? 'bench' });
  const exited = new Promise((resolve) => petrel.child.once('exit', resolve));
  try {
    const healthy = await waitHealthy(port, exited);
    const event = { ...benchEvent(-1), subject: REPORT_SUBJECT };
    const handled = petrel.lineWith(`${HANDLED_MARK} ${event.id}`);
    handled.catch(() => undefined); // awaited below; a failed POST must not leave it unhandled
    const res = await fetch(`http://127.0.0.1:${port}/events`, { method: 'POST', headers: { 'content-type': STRUCTURED }, body: JSON.stringify(event) });
    if (res.status !== 202) throw new Error(`${who}: POST /events answered ${res.status}: ${await res.text()}`);
    const first = await handled;
    return { [FIRST(who)]: first - petrel.spawnedAt, [READY(who)]: healthy - petrel.spawnedAt };
  } finally {
    await petrel.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
