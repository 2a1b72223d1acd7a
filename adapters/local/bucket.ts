/**
 * `bucket` on the file system: one folder per bucket under the data directory. Writes go to a
 * temporary file renamed into place, so a reader never sees half an object. A put is keyed by
 * its object key, so repeating it after a crash changes nothing.
 */
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import type { Bucket, ObjectInfo } from '../../core/ports.js';

export class FileBucket implements Bucket {
  constructor(private readonly root: string, private readonly name: string, private readonly onPut?: (info: ObjectInfo) => void) {}

  private path(key: string): string {
    if (key === '' || key.startsWith('/') || key.split('/').some((part) => part === '..' || part === '.' || part === '') || key.includes('\0')) {
      throw new TypeError(`bucket "${this.name}": invalid object key ${JSON.stringify(key)} (no empty, "." or ".." segments, no leading "/")`);
    }
    return join(this.root, ...key.split('/'));
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    try {
      return await readFile(this.path(key));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  async put(key: string, body: Uint8Array | string, options: { contentType?: string } = {}): Promise<void> {
    const path = this.path(key);
    await mkdir(dirname(path), { recursive: true });
    const temp = `${path}.${process.pid}.${Date.now()}.tmp`;
    await writeFile(temp, body);
    await rename(temp, path);
    const size = typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
    this.onPut?.({ key, size, contentType: options.contentType });
  }

  async delete(key: string): Promise<void> {
    await rm(this.path(key), { force: true });
  }

  async list(prefix = ''): Promise<ObjectInfo[]> {
    const out: ObjectInfo[] = [];
    const walk = async (dir: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw error;
      }
      for (const entry of entries) {
        const full = join(dir, entry.name);
        if (entry.isDirectory()) await walk(full);
        else if (!entry.name.endsWith('.tmp')) {
          const key = relative(this.root, full).split(sep).join('/');
          if (key.startsWith(prefix)) out.push({ key, size: (await stat(full)).size });
        }
      }
    };
    await walk(this.root);
    return out.sort((a, b) => (a.key < b.key ? -1 : 1));
  }
}
