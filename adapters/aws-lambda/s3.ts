/**
 * `bucket` on S3: one S3 bucket per bucket resource. A put is keyed by its object key, so
 * repeating it changes nothing; S3 itself announces created objects (event notifications ->
 * `petrel.object.created`, see sources.ts), so puts emit nothing here.
 */
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, NoSuchKey, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { App } from '../../core/app.js';
import type { Bucket, ObjectInfo } from '../../core/ports.js';
import { awsNames } from './names.js';
import type { AwsNames } from './types.js';

export interface S3BucketsOptions {
  client?: Pick<S3Client, 'send'>;
  names?: AwsNames;
}

export class S3Buckets {
  private readonly client: Pick<S3Client, 'send'>;
  private readonly names: AwsNames;
  private readonly physical: Map<string, string>;

  constructor(app: App, options: S3BucketsOptions = {}) {
    this.client = options.client ?? new S3Client({});
    this.names = options.names ?? awsNames(app);
    this.physical = new Map(Object.entries(app.resources).filter(([, spec]) => spec.kind === 'bucket').map(([name]) => [this.names.bucket(name), name]));
  }

  /** The app's name for a physical bucket name (S3 notifications name the physical one). */
  resourceOf(physicalName: string): string | undefined {
    return this.physical.get(physicalName);
  }

  bucket(name: string): Bucket {
    const Bucket = this.names.bucket(name);
    const client = this.client;
    const checked = (key: string) => {
      if (key === '' || Buffer.byteLength(key, 'utf8') > 1024) throw new TypeError(`bucket "${name}": object keys are 1 to 1024 bytes of UTF-8, got ${JSON.stringify(key.slice(0, 40))}`);
      return key;
    };
    return {
      async get(key) {
        try {
          const object = await client.send(new GetObjectCommand({ Bucket, Key: checked(key) }));
          return await object.Body!.transformToByteArray();
        } catch (error) {
          if (error instanceof NoSuchKey || (error as { name?: string }).name === 'NoSuchKey') return undefined;
          throw error;
        }
      },
      async put(key, body, options = {}) {
        await client.send(new PutObjectCommand({ Bucket, Key: checked(key), Body: body, ContentType: options.contentType }));
      },
      async delete(key) {
        await client.send(new DeleteObjectCommand({ Bucket, Key: checked(key) }));
      },
      async list(prefix = '') {
        const out: ObjectInfo[] = [];
        let ContinuationToken: string | undefined;
        do {
          const page = await client.send(new ListObjectsV2Command({ Bucket, Prefix: prefix || undefined, ContinuationToken }));
          for (const object of page.Contents ?? []) out.push({ key: object.Key!, size: object.Size ?? 0 });
          ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
        } while (ContinuationToken);
        return out;
      },
    };
  }
}
