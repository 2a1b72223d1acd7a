import { statSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { Db, GroupCommit } from './db.js';
import { SqliteTables } from './tables.js';
import { openScratchDatabase } from './testing.js';

describe('embedded tables read through recent items', () => {
  const cleanups: Array<() => void> = [];
  afterEach(() => {
    for (const cleanup of cleanups.splice(0)) cleanup();
  });

  function open(): { db: Db; commit: GroupCommit; tables: SqliteTables } {
    const { db, commit, close } = openScratchDatabase('tables');
    cleanups.push(close);
    return { db, commit, tables: new SqliteTables(db, commit) };
  }

  it('see every committed write, inside a transaction its earlier units, and never a write that was rolled back', async () => {
    const { commit, tables } = open();
    const put = (v: number) => () => tables.write('state', 'harbour', 's-1', JSON.stringify({ location: 'harbour', deviceId: 's-1', v }), null);
    await commit.submit(put(1));
    expect(tables.get('state', 'harbour', 's-1')).toEqual({ location: 'harbour', deviceId: 's-1', v: 1 });

    // A committed write replaces what was read before.
    await commit.submit(put(2));
    expect(tables.get('state', 'harbour', 's-1')?.v).toBe(2);

    // A later unit of the same transaction reads the earlier unit's write.
    let seenInside: unknown;
    await Promise.all([commit.submit(put(3)), commit.submit(() => (seenInside = tables.get('state', 'harbour', 's-1')?.v))]);
    expect(seenInside).toBe(3);
    expect(tables.get('state', 'harbour', 's-1')?.v).toBe(3);

    // A unit that writes and then fails is rolled back alone; its write is not seen afterwards.
    const failing = commit.submit(() => {
      put(4)();
      throw new Error('this unit fails');
    });
    const other = commit.submit(() => tables.write('state', 'harbour', 's-2', JSON.stringify({ location: 'harbour', deviceId: 's-2', v: 1 }), null));
    await expect(failing).rejects.toThrow('this unit fails');
    await other;
    expect(tables.get('state', 'harbour', 's-1')?.v).toBe(3);
    expect(tables.get('state', 'harbour', 's-2')?.v).toBe(1);

    // A delete is seen too, and each read is a copy the reader may change.
    await commit.submit(() => tables.write('state', 'harbour', 's-2', undefined, null));
    expect(tables.get('state', 'harbour', 's-2')).toBeUndefined();
    tables.get('state', 'harbour', 's-1')!.v = 99;
    expect(tables.get('state', 'harbour', 's-1')?.v).toBe(3);
  });

  it('update an item in place without touching its expiry\'s index entry unless the expiry changes, and store it again when it went behind their back', async () => {
    const { db, commit, tables } = open();
    const hour = Math.floor(Date.now() / 1000) + 3600;
    const put = (v: number, expires: number) => () => tables.write('windows', 'harbour', '1m#0', JSON.stringify({ location: 'harbour', key: '1m#0', v, expires }), expires);
    const stored = () => db.prepare("SELECT item, expires FROM items WHERE tbl = 'windows'").all() as Array<{ item: string; expires: number }>;
    // Pages the WAL takes for one commit of `work`, from an empty WAL.
    const pagesFor = async (work: () => void) => {
      db.pragma('wal_checkpoint(TRUNCATE)');
      await commit.submit(work);
      return (statSync(`${db.name}-wal`).size - 32) / ((db.pragma('page_size', { simple: true }) as number) + 24);
    };
    await commit.submit(put(1, hour));
    expect(tables.get('windows', 'harbour', '1m#0')?.v).toBe(1);

    const sameExpiry = await pagesFor(put(2, hour));
    expect(stored()).toEqual([{ item: expect.stringContaining('"v":2'), expires: hour }]);
    const newExpiry = await pagesFor(put(3, hour + 60));
    expect(stored()).toEqual([{ item: expect.stringContaining('"v":3'), expires: hour + 60 }]);
    // The item's page alone, against that and the expiry index's.
    expect(sameExpiry).toBeLessThan(newExpiry);

    // Swept from SQLite (as `sweep` does) while recent items still hold it: written again, not lost.
    db.prepare("DELETE FROM items WHERE tbl = 'windows'").run();
    await commit.submit(put(4, hour + 60));
    expect(stored()).toEqual([{ item: expect.stringContaining('"v":4'), expires: hour + 60 }]);
  });
});
