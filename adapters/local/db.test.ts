import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase } from './db.js';
import { SqliteTables } from './tables.js';

describe('the embedded database', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('moves items from a data dir made with the earlier WITHOUT ROWID table, keeping every item', () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'petrel-db-'));
    dirs.push(dataDir);
    const old = new Database(join(dataDir, 'petrel.db'));
    old.exec(`CREATE TABLE items (tbl TEXT NOT NULL, pk NOT NULL, sk NOT NULL, item TEXT NOT NULL, expires INTEGER, PRIMARY KEY (tbl, pk, sk)) WITHOUT ROWID;
      CREATE INDEX items_expires ON items (expires) WHERE expires IS NOT NULL;`);
    const insert = old.prepare('INSERT INTO items VALUES (?, ?, ?, ?, ?)');
    insert.run('sensors', 'harbour', 's-1', JSON.stringify({ location: 'harbour', deviceId: 's-1', big: 'x'.repeat(3000) }), null);
    insert.run('readings', 'harbour', 7, JSON.stringify({ location: 'harbour', key: 7 }), 1);
    old.close();

    const db = openDatabase({ dataDir });
    const tables = new SqliteTables(db);
    expect(db.prepare("SELECT sql FROM sqlite_master WHERE name = 'items'").pluck().get()).not.toMatch(/WITHOUT ROWID/i);
    expect(tables.get('sensors', 'harbour', 's-1')).toMatchObject({ deviceId: 's-1', big: 'x'.repeat(3000) });
    // The expired item stays hidden from reads, and is swept by its index.
    expect(tables.query('readings', 'harbour', { sortKey: { eq: 7 } })).toHaveLength(0);
    expect(tables.sweep(10)).toBe(1);
    tables.write('sensors', 'harbour', 's-1', JSON.stringify({ location: 'harbour', deviceId: 's-1', v: 2 }), null);
    expect(tables.get('sensors', 'harbour', 's-1')).toEqual({ location: 'harbour', deviceId: 's-1', v: 2 });
    expect(db.prepare('SELECT count(*) FROM items').pluck().get()).toBe(1);
    db.close();
    // Opening again leaves it as it is.
    const again = openDatabase({ dataDir });
    expect(new SqliteTables(again).get('sensors', 'harbour', 's-1')).toEqual({ location: 'harbour', deviceId: 's-1', v: 2 });
    again.close();
  });
});
