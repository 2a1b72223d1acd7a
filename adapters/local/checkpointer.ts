/**
 * WAL checkpoints, mostly on a second thread. SQLite's automatic checkpoint runs inside whichever
 * COMMIT pushes the WAL past 1,000 pages, on the runtime's one thread: copying the pages into the
 * database and syncing it took about half of all COMMIT time under the air-quality bench
 * (measured: 250-430 ms of every 2 s with it, 110-190 ms without). Here a worker thread with its
 * own connection runs PASSIVE checkpoints (they never block the writer) every second, and the
 * runtime's connection turns its own off. (Every 100 ms was worse: a checkpoint syncs the files.)
 *
 * The worker cannot finish the job alone: SQLite starts the WAL over from its beginning only when
 * a write transaction begins with every frame already copied, and under steady writes the writer
 * always adds frames while the worker copies. So the worker repeats its pass until one copies
 * few frames, then the runtime thread checkpoints the rest itself (copying and the two syncs
 * took 0.7-2 ms here, up to about 5, once a second), and its next write restarts the WAL.
 * Without that last step the WAL grew by 60 MB a second at 2,000 readings/s, for as long as the
 * load lasted, and every write extended the file (a quarter of the runtime thread went to the
 * kernel zeroing new blocks).
 * Durability is unchanged: a commit is durable in the WAL; a checkpoint only moves pages on.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../../core/ports.js';
import type { Db } from './db.js';

/** Plain JavaScript, so the worker needs no TypeScript loader; better-sqlite3 comes by resolved path. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.sqlite);
const db = new Database(workerData.path);
db.pragma('busy_timeout = 5000');
// Each pass copies what the writer added during the one before; a few passes get close.
const checkpoint = () => {
  try {
    let frames = 0;
    for (let pass = 0; pass < 4; pass++) {
      const [result] = db.pragma('wal_checkpoint(PASSIVE)');
      const added = result.log - frames;
      frames = result.log;
      if (result.busy || added < workerData.fewFrames) break;
    }
    parentPort.postMessage({ frames });
  } catch (error) {
    parentPort.postMessage({ error: String(error && error.message) });
  }
};
const timer = setInterval(checkpoint, workerData.intervalMs);
parentPort.on('message', () => {
  clearInterval(timer);
  checkpoint();
  db.close();
  parentPort.close();
});
`;

/** A worker's pass that copied fewer frames than this (about 400 KB) leaves the rest to the runtime thread. */
const FEW_FRAMES = 100;
/** The runtime thread finishes a checkpoint once the WAL holds this many frames (SQLite's own threshold). */
const RESTART_FRAMES = 1000;

export class Checkpointer {
  private readonly exited: Promise<void>;

  private constructor(private readonly worker: Worker) {
    this.exited = new Promise((resolve) => worker.once('exit', () => resolve()));
  }

  /** Starts checkpointing `db` from a worker; `db` stops checkpointing itself. */
  static start(db: Db, logger: Logger, intervalMs = 1000): Checkpointer {
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { path: db.name, sqlite: createRequire(import.meta.url).resolve('better-sqlite3'), intervalMs, fewFrames: FEW_FRAMES } });
    // The runtime must not wait on the worker to exit (tests, CLI): it is stopped explicitly.
    worker.unref();
    let failed = false;
    const fallBack = (reason: string) => {
      if (failed || !db.open) return;
      failed = true;
      logger.warn({ reason }, 'WAL checkpoints fall back to the runtime thread');
      db.pragma('wal_autocheckpoint = 1000');
    };
    worker.on('message', (message: { error?: string; frames?: number }) => {
      if (message.error) return fallBack(message.error);
      if (failed || !db.open || (message.frames ?? 0) < RESTART_FRAMES) return;
      try {
        // Copies the frames written since the worker's last pass, so the next write restarts the WAL.
        db.pragma('wal_checkpoint(PASSIVE)');
      } catch (error) {
        fallBack((error as Error).message);
      }
    });
    worker.on('error', (error) => fallBack(error.message));
    db.pragma('wal_autocheckpoint = 0');
    return new Checkpointer(worker);
  }

  /** One last checkpoint, then the worker's connection closes (before the runtime's, which is last). */
  stop(): Promise<void> {
    // Held while it finishes: with nothing else left, the process would exit before the wait ends.
    this.worker.ref();
    this.worker.postMessage('stop');
    return this.exited;
  }
}
