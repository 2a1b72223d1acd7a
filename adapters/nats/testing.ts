/** Test helpers for the NATS target: a throwaway JetStream cluster, and removing what an app left behind. */
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { App } from '../../core/app.js';
import { PgStore } from '../postgres/store.js';
import { names } from './subjects.js';

/** Deletes the apps' streams, KV buckets and object stores, and their PostgreSQL rows. */
export async function deleteAppState(jsm: JetStreamManager, apps: App[], pgUrl?: string): Promise<void> {
  for (const app of apps) {
    const n = names(app.name);
    const streams = [n.stream, n.deadLetterStream, `KV_${n.completions}`, `KV_${n.attempts}`];
    for (const [name, resource] of Object.entries(app.resources)) if (resource.kind === 'bucket') streams.push(`OBJ_${n.objectStore(name)}`);
    for (const stream of streams) await jsm.streams.delete(stream).catch(() => undefined);
  }
  if (!pgUrl || !apps.some((app) => Object.values(app.resources).some((r) => r.kind === 'table'))) return;
  const store = await PgStore.connect(pgUrl, { max: 1 });
  for (const app of apps) await store.dropApp(app.name);
  await store.close();
}

/** A free loopback TCP port. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
    server.once('error', reject);
  });
}

export interface ClusterNode {
  name: string;
  url: string;
  process: ChildProcess;
}

/** A JetStream cluster of `size` nats-server processes on loopback, each with its own store directory. */
export class NatsCluster {
  private constructor(readonly nodes: ClusterNode[], private readonly dir: string) {}

  static async start(size = 3): Promise<NatsCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'petrel-nats-cluster-'));
    const ports = await Promise.all(Array.from({ length: size * 2 }, freePort));
    const routes = ports.slice(size).map((p) => `nats://127.0.0.1:${p}`).join(',');
    const nodes = Array.from({ length: size }, (_, i): ClusterNode => {
      const name = `n${i + 1}`;
      const args = ['-a', '127.0.0.1', '-p', String(ports[i]), '-n', name, '-js', '-sd', join(dir, name), '--cluster_name', 'petrel-test', '--cluster', `nats://127.0.0.1:${ports[size + i]}`, '--routes', routes];
      const child = spawn('nats-server', args, { stdio: 'ignore' });
      return { name, url: `nats://127.0.0.1:${ports[i]}`, process: child };
    });
    const cluster = new NatsCluster(nodes, dir);
    await cluster.ready();
    return cluster;
  }

  get urls(): string[] {
    return this.nodes.map((n) => n.url);
  }

  /** Resolves once JetStream answers through every node (a meta leader is elected). */
  async ready(timeoutMs = 20_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (const node of this.nodes.filter((n) => n.process.exitCode === null && n.process.signalCode === null)) {
      for (;;) {
        const ok = await connect({ servers: node.url, timeout: 1000, maxReconnectAttempts: 0 })
          .then(async (nc) => {
            try {
              await (await jetstreamManager(nc, { timeout: 1000 })).getAccountInfo();
              return true;
            } finally {
              await nc.close();
            }
          })
          .catch(() => false);
        if (ok) break;
        if (Date.now() > until) throw new Error(`nats cluster node ${node.name} not ready after ${timeoutMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }

  kill(name: string): void {
    this.nodes.find((n) => n.name === name)?.process.kill('SIGKILL');
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.nodes.map((n) => {
        if (n.process.exitCode !== null || n.process.signalCode !== null) return undefined;
        return new Promise((resolve) => {
          n.process.once('exit', resolve);
          n.process.kill('SIGKILL');
        });
      }),
    );
    rmSync(this.dir, { recursive: true, force: true });
  }
}
