import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Checkpointer } from './checkpointer.js';
import { openScratchDatabase } from './testing.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

describe('WAL checkpoints from a worker thread', () => {
  it('keep the WAL from growing with the runtime connection\'s automatic checkpoints off', async () => {
    const { dataDir, db, close } = openScratchDatabase('checkpoint');
    cleanups.push(close);
    const checkpointer = Checkpointer.start(db, pino({ level: 'silent' }), 50);
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(0);
    const put = db.prepare('INSERT OR REPLACE INTO items (tbl, pk, sk, item) VALUES (?, ?, ?, ?)');
    const blob = 'x'.repeat(4000);
    // 16 MB of pages in 16 rounds, with time for the worker between them.
    for (let round = 0; round < 16; round++) {
      db.transaction(() => {
        for (let i = 0; i < 250; i++) put.run('t', round, i, blob);
      })();
      await new Promise((resolve) => setTimeout(resolve, 120));
    }
    const wal = statSync(join(dataDir, 'petrel.db-wal')).size;
    expect(wal).toBeLessThan(6 * 1024 * 1024);
    await checkpointer.stop();
    expect(db.prepare('SELECT count(*) AS n FROM items').get()).toEqual({ n: 16 * 250 });
  });

  it('start the WAL over while the writer never pauses', async () => {
    const { dataDir, db, close } = openScratchDatabase('checkpoint');
    cleanups.push(close);
    const checkpointer = Checkpointer.start(db, pino({ level: 'silent' }), 50);
    const put = db.prepare('INSERT OR REPLACE INTO items (tbl, pk, sk, item) VALUES (?, ?, ?, ?)');
    const blob = 'x'.repeat(4000);
    // A small transaction at every turn of the event loop for a second, as the runtime commits
    // under load: the worker's checkpoints never see a moment without new frames.
    let transactions = 0;
    for (const until = performance.now() + 1000; performance.now() < until; transactions++) {
      put.run('t', 'pk', transactions % 100, blob);
      await new Promise((resolve) => setImmediate(resolve));
    }
    // The WAL header's checkpoint sequence number counts the restarts (sqlite.org/fileformat.html).
    const restarts = readFileSync(join(dataDir, 'petrel.db-wal')).readUInt32BE(12);
    expect(restarts).toBeGreaterThanOrEqual(5);
    await checkpointer.stop();
    expect(db.prepare('SELECT count(*) AS n FROM items').get()).toEqual({ n: 100 });
  });
});
