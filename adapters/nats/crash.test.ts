/**
 * What survives failures on the NATS target: a node of a 3-node JetStream cluster killed under
 * load, and a worker process killed with SIGKILL mid-batch. In both, every accepted event is
 * handled, and no effect (a row, an emitted event) happens twice.
 */
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import type { App } from '../../core/app.js';
import { eventKey, newEventId, type CloudEvent } from '../../core/event.js';
import { NATS_URL, PG_URL, servicesAvailable } from '../../conformance/services.js';
import { PgStore } from '../postgres/store.js';
import { NatsRuntime } from './runtime.js';
import { names } from './subjects.js';
import { countingApp } from './testdata/app.js';
import { deleteAppState, freePort, NatsCluster } from './testing.js';

const available = await servicesAvailable('adapters/nats crash', 'nats', 'postgres');

const countEvent = (): CloudEvent => ({ specversion: '1.0', id: newEventId(), source: 'crash-test', type: 'test.count', data: {} });

/** Rows per partition of the testdata app: key -> n. */
async function rows(app: string, pk: string): Promise<Map<string, number>> {
  const client = new pg.Client(PG_URL);
  await client.connect();
  try {
    const { rows: found } = await client.query<{ item: { sk: string; n: number } }>("SELECT item FROM petrel_items WHERE app = $1 AND tbl = 'counts' AND pk = $2", [app, `s${pk}`]);
    return new Map(found.map((r) => [r.item.sk, r.item.n]));
  } finally {
    await client.end();
  }
}

/** Every accepted event counted once, every counted event tallied once, each emitted event stored once. */
async function expectExactlyOnce(jsm: JetStreamManager, app: string, accepted: CloudEvent[]): Promise<void> {
  const counted = await rows(app, 'event');
  const missing = accepted.filter((e) => !counted.has(e.id));
  expect(missing.length).toBe(0);
  expect([...counted.values()].filter((n) => n !== 1)).toEqual([]);
  const tallied = await rows(app, 'counted');
  expect(tallied.size).toBe(counted.size);
  expect([...tallied.values()].filter((n) => n !== 1)).toEqual([]);
  const stream = await jsm.streams.info(names(app).stream, { subjects_filter: names(app).eventSubject('test.counted') });
  expect(stream.state.subjects?.[names(app).eventSubject('test.counted')]).toBe(counted.size);
}

async function waitSettled(jsm: JetStreamManager, app: string, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const lags = await Promise.all(['count', 'tally'].map((fn) => jsm.consumers.info(names(app).stream, fn).then((i) => i.num_pending + i.num_ack_pending))).catch(() => [-1]);
    if (lags.every((n) => n === 0)) return;
    if (Date.now() > until) throw new Error(`not settled after ${timeoutMs} ms: ${JSON.stringify(lags)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe.skipIf(!available)('NATS target under failures', () => {
  const apps: App[] = [];
  let nc: NatsConnection;
  let cluster: NatsCluster | undefined;
  const children: ChildProcess[] = [];

  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL');
    await cluster?.stop();
    if (nc) {
      await deleteAppState(await jetstreamManager(nc), apps.filter((a) => !a.name.startsWith('cluster-')), PG_URL);
      await nc.close();
    }
    const store = await PgStore.connect(PG_URL, { max: 1 });
    for (const app of apps) await store.dropApp(app.name);
    await store.close();
  });

  it('a 3-node cluster loses one node under load: zero events lost, zero effects doubled', async () => {
    cluster = await NatsCluster.start(3);
    const app = countingApp(`cluster-${randomUUID().slice(0, 8)}`);
    apps.push(app);
    const options = { servers: cluster.urls, pgUrl: PG_URL, replicas: 3, logger: pino({ level: 'silent' }), drainTimeoutMs: 2000 };
    // Two processes' worth of runtimes share the durable consumers.
    const runtimes = [await NatsRuntime.start(app, options), await NatsRuntime.start(app, options)];
    const clusterNc = await connect({ servers: cluster.urls });
    const jsm = await jetstreamManager(clusterNc);
    const accepted: CloudEvent[] = [];
    let killed = false;
    const publisher = async (runtime: NatsRuntime) => {
      for (let batch = 0; batch < 6; batch++) {
        const events = Array.from({ length: 100 }, countEvent);
        // A publish cut by the failover is retried with the same ids: the stream keeps one copy.
        for (let tries = 0; ; tries++) {
          try {
            await runtime.publish(events);
            break;
          } catch (error) {
            if (tries > 100) throw error;
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
        }
        accepted.push(...events);
        if (batch === 2 && !killed) {
          killed = true;
          const leader = (await jsm.streams.info(names(app.name).stream)).cluster?.leader ?? 'n1';
          cluster!.kill(leader);
        }
      }
    };
    await Promise.all(runtimes.map(publisher));
    expect(killed).toBe(true);
    await runtimes[0].idle(60_000);
    await expectExactlyOnce(jsm, app.name, accepted);
    expect(accepted.length).toBe(1200);
    await Promise.all(runtimes.map((r) => r.stop()));
    await clusterNc.close();
  }, 120_000);

  it('a worker killed with SIGKILL mid-batch, then restarted: zero events lost, zero effects doubled', async () => {
    nc = await connect({ servers: NATS_URL });
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    const app = countingApp(`kill-${randomUUID().slice(0, 8)}`);
    apps.push(app);
    const port = await freePort();
    const worker = async () => {
      const child = spawn(process.execPath, ['bin/petrel.js', 'run', '--nats', NATS_URL, '--pg', PG_URL, '--port', String(port), 'adapters/nats/testdata/app.ts'], {
        env: { ...process.env, PETREL_TEST_APP: app.name, PETREL_LOG_LEVEL: 'error' },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      children.push(child);
      let stderr = '';
      child.stderr!.on('data', (chunk) => (stderr += chunk));
      for (let i = 0; !(await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false)); i++) {
        if (child.exitCode !== null || i > 300) throw new Error(`worker did not start: ${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      return child;
    };
    const exited = (child: ChildProcess) => new Promise<number | null>((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.once('exit', (code) => resolve(code))));

    let child = await worker();
    const accepted = Array.from({ length: 1000 }, countEvent);
    await Promise.all(accepted.map((e) => js.publish(names(app.name).eventSubject(e.type), JSON.stringify(e), { msgID: eventKey(e) })));
    for (let i = 0; (await rows(app.name, 'event')).size < 100; i++) {
      if (i > 400) throw new Error('the worker handled too few events before the kill');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    child.kill('SIGKILL');
    await exited(child);
    expect((await rows(app.name, 'event')).size).toBeLessThan(accepted.length);

    child = await worker();
    await waitSettled(jsm, app.name, 60_000);
    child.kill('SIGTERM');
    expect(await exited(child)).toBe(0);
    await expectExactlyOnce(jsm, app.name, accepted);
  }, 120_000);
});
