/**
 * What a function's container keeps its state in: completion records on PostgreSQL (with the
 * function's tables, in one transaction), on NATS KV (the same bucket and keys as the NATS
 * runtime's workers use), or, with neither configured, in memory; buckets on the NATS Object Store.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { AppFunction, App } from '../../core/app.js';
import { IDEMPOTENCY_TTL_MS } from '../../core/delivery.js';
import type { CloudEvent } from '../../core/event.js';
import type { Logger } from '../../core/ports.js';
import type { TableSession } from '../../core/session.js';
import { OutboxMarks } from '../nats/context.js';
import { clientAuth } from '../nats/permissions.js';
import { NatsRecords } from '../nats/records.js';
import { names, recordKey } from '../nats/subjects.js';
import { hasEffects } from '../nats/worker.js';
import { redactUrl } from '../../core/redact.js';
import { PgStore } from '../postgres/store.js';
import type { CompletionStore, FunctionStores } from './types.js';

export interface NatsSettings {
  servers: string[];
  /** CA certificate that signed the server's TLS certificate (PETREL_NATS_CA_FILE). */
  caFile?: string;
  /** The nkey seed file of this container's NATS user (PETREL_NATS_SEED_FILE), from adapters/nats/permissions.ts. */
  seedFile?: string;
  /** That user's id; default `fn-<function>`. */
  user?: string;
}

export interface StoreSettings {
  nats?: NatsSettings;
  pgUrl?: string;
  logger: Logger;
}

/** Records kept in memory at most; past it the oldest are forgotten first. */
const MAX_IN_MEMORY = 100_000;

class PgCompletions implements CompletionStore {
  readonly kind = 'postgres';

  constructor(private readonly pg: PgStore, private readonly app: string, private readonly fn: string, private readonly marks: OutboxMarks) {}

  async completion(key: string): Promise<CloudEvent[] | undefined> {
    const found = await this.pg.completion(this.app, this.fn, key);
    return found && (found.outbox ?? []);
  }

  async commit(key: string, session: TableSession | undefined, outbox: CloudEvent[]): Promise<CloudEvent[]> {
    const result = await this.pg.commit(this.app, session, { fn: this.fn, key, outbox });
    return result.committed ? outbox : (result.duplicate.outbox ?? []);
  }

  delivered(key: string): void {
    this.marks.clear(this.fn, key);
  }
}

class KvCompletions implements CompletionStore {
  readonly kind = 'nats-kv';

  constructor(private readonly records: NatsRecords, private readonly fn: string) {}

  completion(key: string): Promise<CloudEvent[] | undefined> {
    return this.records.completion(recordKey(this.fn, key));
  }

  async commit(key: string, session: TableSession | undefined, outbox: CloudEvent[]): Promise<CloudEvent[]> {
    if (session?.size) throw new Error('table writes need PostgreSQL completions');
    const result = await this.records.complete(recordKey(this.fn, key), outbox);
    return result.created ? outbox : result.outbox;
  }

  delivered(): void {
    // KV records keep their outbox until the TTL; sending it again is deduplicated downstream.
  }
}

/** Completion records in this process only: lost on restart, not shared between replicas. */
export class MemoryCompletions implements CompletionStore {
  readonly kind = 'memory';
  private readonly records = new Map<string, { outbox: CloudEvent[]; expires: number }>();

  async completion(key: string): Promise<CloudEvent[] | undefined> {
    const record = this.records.get(key);
    if (!record || record.expires <= Date.now()) return undefined;
    return record.outbox;
  }

  async commit(key: string, _session: TableSession | undefined, outbox: CloudEvent[]): Promise<CloudEvent[]> {
    const existing = await this.completion(key);
    if (existing) return existing;
    this.records.set(key, { outbox, expires: Date.now() + IDEMPOTENCY_TTL_MS });
    if (this.records.size > MAX_IN_MEMORY) this.records.delete(this.records.keys().next().value!);
    return outbox;
  }

  delivered(): void {
    // nothing to clear: the record goes with the process
  }
}

/** Connects to NATS with the settings' TLS CA and nkey user, if given. */
export async function connectNats(settings: NatsSettings, name: string, fnName?: string): Promise<NatsConnection> {
  const auth = settings.seedFile ? clientAuth(settings.seedFile, settings.user ?? `fn-${fnName}`) : {};
  try {
    return await connect({
      servers: settings.servers,
      name,
      timeout: 5000,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      ...(settings.caFile ? { tls: { caFile: settings.caFile } } : {}),
      ...auth,
    });
  } catch (error) {
    throw new Error(`NATS at ${settings.servers.map(redactUrl).join(', ')} is not reachable: ${(error as Error).message}`);
  }
}

/** Opens what `fn` needs, with clear errors for what is missing; warns when records stay in memory. */
export async function openStores(app: App, fn: AppFunction, settings: StoreSettings): Promise<FunctionStores> {
  const used = (kind: 'table' | 'bucket') => Object.keys(fn.spec.uses).filter((name) => app.resources[name]?.kind === kind);
  const tables = used('table');
  const bucketNames = used('bucket');
  if (tables.length && !settings.pgUrl) {
    throw new Error(`function "${fn.name}" uses the tables ${tables.join(', ')}, which live in PostgreSQL on this target: set PETREL_PG_URL`);
  }
  if (bucketNames.length && !settings.nats) {
    throw new Error(`function "${fn.name}" uses the buckets ${bucketNames.join(', ')}, which live in the NATS Object Store on this target: set PETREL_NATS_URL`);
  }
  const effects = hasEffects(fn);
  const appNames = names(app.name);
  let pg: PgStore | undefined;
  let nc: NatsConnection | undefined;
  let marks: OutboxMarks | undefined;
  try {
    if (settings.pgUrl && (tables.length || (effects && !settings.nats))) pg = await PgStore.connect(settings.pgUrl, { max: Math.min(10, fn.spec.concurrency + 1) });
    if (settings.nats && (bucketNames.length || (effects && !tables.length))) nc = await connectNats(settings.nats, `petrel-${app.name}-${fn.name}`, fn.name);
    const js = nc && jetstream(nc);
    const buckets = new Map<string, ObjectStore>();
    if (js) {
      const objm = new Objm(js);
      for (const name of bucketNames) buckets.set(name, await objm.create(appNames.objectStore(name)));
    }
    let completions: CompletionStore | undefined;
    if (!effects) completions = undefined;
    else if (pg) {
      marks = new OutboxMarks(() => pg, app.name, settings.logger);
      completions = new PgCompletions(pg, app.name, fn.name, marks);
    } else if (js) {
      const kvm = new Kvm(js);
      const done = await kvm.create(appNames.completions, { ttl: IDEMPOTENCY_TTL_MS, history: 1 });
      // Bound, not created: these records never use the attempts bucket.
      const attempts = await kvm.open(appNames.attempts);
      completions = new KvCompletions(new NatsRecords(app.name, js, await jetstreamManager(nc!, { checkAPI: false }), done, attempts), fn.name);
    } else {
      settings.logger.warn(
        { fn: fn.name },
        'completion records are kept in memory only: an event delivered again after a restart, or to another replica, runs again. Set PETREL_NATS_URL (or PETREL_PG_URL) to keep them',
      );
      completions = new MemoryCompletions();
    }
    return {
      completions,
      pg: tables.length ? pg : undefined,
      buckets,
      close: async () => {
        await marks?.drain();
        await pg?.close();
        await nc?.drain().catch(() => undefined);
      },
    };
  } catch (error) {
    await pg?.close().catch(() => undefined);
    await nc?.close().catch(() => undefined);
    throw error;
  }
}
