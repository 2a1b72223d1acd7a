import { afterEach, describe, expect, it } from 'vitest';
import type { CloudEvent } from '../../core/event.js';
import { EventLog } from './log.js';
import { openScratchDatabase } from './testing.js';

describe('embedded event log', () => {
  const cleanups: Array<() => void> = [];
  afterEach(() => {
    for (const cleanup of cleanups.splice(0)) cleanup();
  });

  const event = (id: string): CloudEvent => ({ specversion: '1.0', id, source: 'test', type: 'test.appended' });

  it('shows readers what committed, with its sequence numbers, also when a unit that appended was rolled back', async () => {
    const { db, commit, close } = openScratchDatabase('log');
    cleanups.push(close);
    const log = new EventLog(db, commit);
    const stored = () => (db.prepare('SELECT seq, body FROM events ORDER BY seq').all() as Array<{ seq: number; body: string }>).map((row) => [row.seq, (JSON.parse(row.body) as CloudEvent).id]);
    const seen = () => log.entries(0, 100).map((entry) => [entry.seq, entry.shared.id]);

    // One transaction: the second unit appends and then fails, so it rolls back alone and the
    // third unit's event takes the sequence number the second one had.
    const units = await Promise.allSettled([
      commit.submit(() => log.appendInTransaction([event('a')])),
      commit.submit(() => {
        log.appendInTransaction([event('b')]);
        throw new Error('this unit fails');
      }),
      commit.submit(() => log.appendInTransaction([event('c'), event('d')])),
    ]);
    expect(units.map((u) => u.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(stored()).toEqual([[1, 'a'], [2, 'c'], [3, 'd']]);
    expect(seen()).toEqual(stored());

    // Then a transaction where every unit commits.
    await Promise.all([commit.submit(() => log.appendInTransaction([event('e')])), commit.submit(() => log.appendInTransaction([event('f')]))]);
    expect(seen()).toEqual([[1, 'a'], [2, 'c'], [3, 'd'], [4, 'e'], [5, 'f']]);
    expect(seen()).toEqual(stored());
    expect(log.head).toBe(5);
  });
});
