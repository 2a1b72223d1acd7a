/** For tests of the embedded runtime's parts: a database of its own in a temp dir. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GroupCommit, openDatabase, type Db } from './db.js';

export interface ScratchDatabase {
  dataDir: string;
  db: Db;
  /** Its group commit; a failed transaction throws out of the test. */
  commit: GroupCommit;
  /** Closes the database and removes its directory. */
  close(): void;
}

export function openScratchDatabase(name: string): ScratchDatabase {
  const dataDir = mkdtempSync(join(tmpdir(), `petrel-${name}-`));
  const db = openDatabase({ dataDir });
  const commit = new GroupCommit(db, (error) => {
    throw error;
  });
  return {
    dataDir,
    db,
    commit,
    close: () => {
      db.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
