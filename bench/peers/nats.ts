/**
 * The NATS target in the bench: whether it can run here (adapters/nats and a server), the
 * runtime on a bench app, cleaning up its streams, and raw nats.js JetStream as the limit.
 */
import { AckPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { App } from '../../core/app.js';
import { SILENT } from '../harness.js';

export const NATS_URL = process.env.PETREL_NATS_URL ?? 'nats://127.0.0.1:4222';

type NatsModule = typeof import('../../adapters/nats/index.js');
export type NatsRuntime = Awaited<ReturnType<NatsModule['NatsRuntime']['start']>>;

let checked: Promise<{ module?: NatsModule; reason?: string }> | undefined;

/** The NATS adapter and a reachable server, or why not (checked once per bench run). */
export function natsTarget(): Promise<{ module?: NatsModule; reason?: string }> {
  checked ??= (async () => {
    let module: NatsModule;
    try {
      module = await import('../../adapters/nats/index.js');
    } catch (error) {
      return { reason: `the NATS target (adapters/nats) did not load: ${(error as Error).message.split('\n')[0]}` };
    }
    try {
      const nc = await connect({ servers: NATS_URL, timeout: 2000, maxReconnectAttempts: 0 });
      const jsm = await jetstreamManager(nc, { timeout: 2000 });
      await jsm.getAccountInfo();
      await nc.close();
    } catch (error) {
      return { reason: `no NATS JetStream server at ${NATS_URL} (${(error as Error).message})` };
    }
    return { module };
  })();
  return checked;
}

/** The app on the NATS target; its streams and KV buckets are deleted by `stop`. */
export async function startNats(module: NatsModule, app: App): Promise<{ runtime: NatsRuntime; stop(): Promise<void> }> {
  const runtime = await module.NatsRuntime.start(app, { servers: NATS_URL, logger: SILENT });
  return {
    runtime,
    stop: async () => {
      try {
        await runtime.stop();
      } finally {
        await deleteStreams(app.name);
      }
    },
  };
}

/** Deletes every stream (KV buckets are streams too) whose name holds `appName`, which is unique per bench run. */
export async function deleteStreams(appName: string): Promise<void> {
  const nc = await connect({ servers: NATS_URL });
  try {
    const jsm = await jetstreamManager(nc);
    for await (const name of jsm.streams.names()) {
      if (name.includes(`petrel-${appName}`) || name === rawStreamName(appName)) await jsm.streams.delete(name);
    }
  } finally {
    await nc.close();
  }
}

function rawStreamName(tag: string): string {
  return `bench-raw-${tag}`;
}

/**
 * The limit of the NATS transport: nats.js JetStream with nothing of petrel's. A durable pull
 * consumer (explicit ack, `window` unacknowledged at most) consumes while `bodies` are published
 * in lockstep windows of `window` (each with a message id, as petrel publishes), and acks each
 * message in its callback. Resolves with messages per second, first publish to last callback.
 */
export async function rawJetStream(tag: string, bodies: string[], window: number): Promise<number> {
  const nc: NatsConnection = await connect({ servers: NATS_URL });
  const stream = rawStreamName(tag);
  try {
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
    await jsm.consumers.add(stream, { durable_name: 'consumer', ack_policy: AckPolicy.Explicit, max_ack_pending: window });
    const consumer = await js.consumers.get(stream, 'consumer');
    let received = 0;
    let finished!: () => void;
    const done = new Promise<void>((resolve) => (finished = resolve));
    const messages = await consumer.consume({
      max_messages: window,
      callback: (msg) => {
        msg.ack();
        if (++received === bodies.length) finished();
      },
    });
    const start = performance.now();
    for (let i = 0; i < bodies.length; i += window) {
      await Promise.all(bodies.slice(i, i + window).map((body, j) => js.publish(`${stream}.event`, body, { msgID: `${tag}-${i + j}` })));
    }
    await done;
    const rate = (bodies.length * 1000) / (performance.now() - start);
    await messages.close();
    return rate;
  } finally {
    await jetstreamManager(nc)
      .then((jsm) => jsm.streams.delete(stream))
      .catch(() => undefined);
    await nc.close();
  }
}
