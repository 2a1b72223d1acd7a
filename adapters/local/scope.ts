/**
 * What one attempt on the embedded runtime sees: buffered table writes, file-system buckets whose
 * puts announce `petrel.object.created`, and the completion record lookup.
 */
import { join } from 'node:path';
import type { App, AppFunction, BucketSpec, TableSpec } from '../../core/app.js';
import { eventKey, type CloudEvent } from '../../core/event.js';
import { objectCreatedEvent, type InvocationScope } from '../../core/invoke.js';
import type { Bucket, Logger, Metrics, Table } from '../../core/ports.js';
import type { CommittedTables } from '../../core/session.js';
import { FileBucket } from './bucket.js';
import type { GroupCommit } from './db.js';
import type { Invocation } from './journal.js';
import type { EventLog } from './log.js';
import type { DeliveryRecords } from './records.js';
import { TableSession, type SqliteTables } from './tables.js';

/** The embedded runtime's shared parts, as consumers and scopes need them. */
export interface LocalContext {
  app: App;
  commit: GroupCommit;
  log: EventLog;
  records: DeliveryRecords;
  tables: SqliteTables;
  bucketsDir: string;
  logger: Logger;
  metrics: Metrics;
  /** Aborted when the runtime stops waiting for in-flight work. */
  signal: AbortSignal;
  /** Told of every handler attempt (LocalRuntimeOptions.onInvoked). */
  onInvoked?: (invocation: Invocation) => void;
}

export class LocalScope implements InvocationScope {
  readonly session: TableSession;
  /** `petrel.object.created` events for this attempt's bucket puts, committed with its outcome. */
  readonly objectEvents: CloudEvent[] = [];

  /**
   * @param completedKnown whether the function already completed this event, when the caller
   * knows (a batch lookup, or `false` for http requests, which are not deduplicated); undefined
   * looks it up.
   * @param base what the tables read under this attempt's writes when not the committed store:
   * an earlier attempt's session that commits in the same transaction (ordered batches).
   */
  constructor(
    private readonly ctx: LocalContext,
    private readonly fn: AppFunction,
    private readonly event: CloudEvent,
    private readonly completedKnown?: boolean,
    base: CommittedTables = ctx.tables,
  ) {
    this.session = new TableSession(ctx.tables, base);
  }

  table(name: string, spec: TableSpec): Table {
    return this.session.table(name, spec);
  }

  bucket(name: string, _spec: BucketSpec): Bucket {
    return new FileBucket(join(this.ctx.bucketsDir, name), name, (info) => {
      this.objectEvents.push(objectCreatedEvent(this.ctx.app, this.fn.name, this.event, name, info));
    });
  }

  completed(): boolean {
    return this.completedKnown ?? this.ctx.records.isCompleted(this.fn.name, eventKey(this.event));
  }
}
