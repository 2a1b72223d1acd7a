/**
 * Scenario 6: memory over a steady run. `petrel dev` (the embedded runtime, in its own process,
 * table-write handler) takes 2,000 events/s, one structured CloudEvent per POST /events, for
 * `memorySeconds` after a warm-up at the same rate; its RSS is read from /proc every second.
 * Growth is the mean of the last quarter's samples against the first quarter's: under 10%.
 * One long run rather than three short ones: the samples of each quarter are its repetitions.
 * The WAL file's size is sampled with it: under steady writes it must start over, not grow
 * (it grew by tens of MB a second before the checkpointer made it, adapters/local/checkpointer.ts).
 */
import { readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, lagOf, spawnPetrel, tempDir, waitHealthy, withLoad } from '../harness.js';
import { log, mean, sleep } from '../stats.js';
import type { Scenario } from './types.js';

const RATE = 2_000;
const FIRST = 'RSS, mean of the first quarter';
const LAST = 'RSS, mean of the last quarter';
const PEAK = 'RSS, peak';
const ACCEPTED = 'events/s accepted during the sampled run';
const WAL = 'WAL file, largest sampled';

export const memoryScenario: Scenario = {
  name: '6. memory, `petrel dev` at 2,000 events/s',
  metrics: [
    {
      figure: LAST,
      unit: 'MB',
      higherIsBetter: false,
      baseline: { figure: FIRST, name: 'the same run\'s first quarter' },
      target: { ratio: 1 / 1.1, text: 'growth < 10%' },
      detail: (last, first) => `growth ${last >= first ? '+' : ''}${((last / first - 1) * 100).toFixed(1)}%`,
    },
    { figure: PEAK, unit: 'MB', higherIsBetter: false },
    { figure: ACCEPTED, unit: 'events/s', higherIsBetter: true, baseline: { value: RATE, name: 'offered rate' } },
    { figure: WAL, unit: 'MB', higherIsBetter: false },
  ],
  async measure(o) {
    const dataDir = tempDir('memory');
    const port = await freePort();
    const petrel = spawnPetrel(['dev', '--data-dir', dataDir], port, { BENCH_HANDLER: 'table' });
    try {
      await waitHealthy(port, new Promise((resolve) => petrel.child.once('exit', resolve)));
      const figures = await withLoad(async (load) => {
        const job = { kind: 'paced', target: { port, path: '/events', status: 202 }, body: { kind: 'bench-event' }, rate: RATE } as const;
        await load.run({ ...job, count: RATE * Math.max(2, o.memorySeconds / 12) });
        const samples: number[] = [];
        const walSamples: number[] = [];
        const sampler = setInterval(() => {
          samples.push(rssMb(petrel.child.pid!));
          walSamples.push(fileMb(join(dataDir, 'petrel.db-wal')));
        }, 1000);
        const sent = await load.run({ ...job, count: RATE * o.memorySeconds });
        clearInterval(sampler);
        const quarter = Math.max(1, Math.floor(samples.length / 4));
        log(`  RSS every second (MB): ${samples.map((s) => s.toFixed(0)).join(' ')}`);
        log(`  WAL file every second (MB): ${walSamples.map((s) => s.toFixed(0)).join(' ')}`);
        const accepted = (sent.answered * 1000) / sent.elapsedMs;
        log(`  sent ${Math.round(sent.sendRate ?? 0).toLocaleString('en')} events/s, accepted ${Math.round(accepted).toLocaleString('en')}/s; backlog at the end: ${await backlog(port)}`);
        return { [FIRST]: mean(samples.slice(0, quarter)), [LAST]: mean(samples.slice(-quarter)), [PEAK]: Math.max(...samples), [ACCEPTED]: accepted, [WAL]: Math.max(...walSamples) };
      });
      return { runs: [figures] };
    } finally {
      await petrel.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  },
};

function rssMb(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  if (kb === undefined) throw new Error(`no VmRSS for process ${pid}`);
  return Number(kb) / 1024;
}

/** A file's size in MB; 0 when it is not there (SQLite removes the WAL when it closes cleanly). */
function fileMb(path: string): number {
  try {
    return statSync(path).size / 1024 / 1024;
  } catch {
    return 0;
  }
}

/** Unsettled events per function, from /healthz, once the runtime has had a moment to catch up. */
async function backlog(port: number): Promise<string> {
  await sleep(500);
  return JSON.stringify(await lagOf(port));
}
