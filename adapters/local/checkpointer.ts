/**
 * WAL checkpoints on a second thread. SQLite's automatic checkpoint runs inside whichever COMMIT
 * pushes the WAL past 1,000 pages, on the runtime's one thread: copying the pages into the
 * database and syncing it took about half of all COMMIT time under the air-quality bench
 * (measured: 250-430 ms of every 2 s with it, 110-190 ms without). Here a worker thread with its
 * own connection runs a PASSIVE checkpoint (it never blocks the writer) every second, and the
 * runtime's connection turns its own off. (Every 100 ms was worse than none: a checkpoint syncs
 * the files, and that often it got in the way.) Durability is unchanged: a commit is durable in
 * the WAL; a checkpoint only moves pages on.
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
const checkpoint = () => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
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

export class Checkpointer {
  private readonly exited: Promise<void>;

  private constructor(private readonly worker: Worker) {
    this.exited = new Promise((resolve) => worker.once('exit', () => resolve()));
  }

  /** Starts checkpointing `db` from a worker; `db` stops checkpointing itself. */
  static start(db: Db, logger: Logger, intervalMs = 1000): Checkpointer {
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { path: db.name, sqlite: createRequire(import.meta.url).resolve('better-sqlite3'), intervalMs } });
    // The runtime must not wait on the worker to exit (tests, CLI): it is stopped explicitly.
    worker.unref();
    let failed = false;
    const fallBack = (reason: string) => {
      if (failed || !db.open) return;
      failed = true;
      logger.warn({ reason }, 'WAL checkpoints fall back to the runtime thread');
      db.pragma('wal_autocheckpoint = 1000');
    };
    worker.on('message', (message: { error?: string }) => message.error && fallBack(message.error));
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
