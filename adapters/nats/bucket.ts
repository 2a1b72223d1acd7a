/**
 * `bucket` on the JetStream Object Store. A put is keyed by its object key, so repeating it after
 * a crash changes nothing; the runtime announces each put as `petrel.object.created` once the
 * attempt that made it succeeds.
 */
import type { ObjectStore } from '@nats-io/obj';
import { headers } from '@nats-io/transport-node';
import type { Bucket, ObjectInfo } from '../../core/ports.js';

const CONTENT_TYPE = 'Content-Type';

export class ObjectStoreBucket implements Bucket {
  constructor(private readonly store: ObjectStore, private readonly name: string, private readonly onPut?: (info: ObjectInfo) => void) {}

  private check(key: string): string {
    if (key === '' || key.includes('\0')) throw new TypeError(`bucket "${this.name}": invalid object key ${JSON.stringify(key)}`);
    return key;
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    return (await this.store.getBlob(this.check(key))) ?? undefined;
  }

  async put(key: string, body: Uint8Array | string, options: { contentType?: string } = {}): Promise<void> {
    const data = typeof body === 'string' ? Buffer.from(body) : body;
    let meta: { name: string; headers?: ReturnType<typeof headers> } = { name: this.check(key) };
    if (options.contentType) {
      const h = headers();
      h.set(CONTENT_TYPE, options.contentType);
      meta = { ...meta, headers: h };
    }
    await this.store.putBlob(meta, data);
    this.onPut?.({ key, size: data.byteLength, contentType: options.contentType });
  }

  async delete(key: string): Promise<void> {
    if (await this.store.info(this.check(key))) await this.store.delete(key);
  }

  async list(prefix = ''): Promise<ObjectInfo[]> {
    const objects = await this.store.list();
    return objects
      .filter((o) => !o.deleted && o.name.startsWith(prefix))
      .map((o) => {
        const contentType = contentTypeOf(o.headers);
        return contentType ? { key: o.name, size: o.size, contentType } : { key: o.name, size: o.size };
      })
      .sort((a, b) => (a.key < b.key ? -1 : 1));
  }
}

/** Object infos carry headers as MsgHdrs or, when listed, as the raw JSON map of the metadata. */
function contentTypeOf(h: unknown): string | undefined {
  if (!h) return undefined;
  if (typeof (h as { get?: unknown }).get === 'function') return (h as { get(name: string): string }).get(CONTENT_TYPE) || undefined;
  return (h as Record<string, string[] | undefined>)[CONTENT_TYPE]?.[0];
}
