import { jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { defineApp, fn, on } from '../../core/app.js';
import { newEventId, type CloudEvent } from '../../core/event.js';
import { NATS_URL, servicesAvailable } from '../../conformance/services.js';
import { DurableConsumer, type DurableContext } from './durable.js';
import { names } from './subjects.js';
import { deleteAppState } from './testing.js';

const available = await servicesAvailable('adapters/nats durable consumer', 'nats');

describe.skipIf(!available)('durable consumer', () => {
  it('loses nothing on the wire when it stops: what arrived meanwhile goes to the next consumer at once, not after ack wait', async () => {
    const nc = await connect({ servers: NATS_URL });
    const jsm = await jetstreamManager(nc);
    const app = defineApp({ name: `durable-${randomUUID().slice(0, 8)}`, functions: { keep: fn({ trigger: on({ type: ['t.keep'] }), handler: async () => undefined }) } });
    const n = names(app.name);
    await jsm.streams.add({ name: n.stream, subjects: [n.subjects] });
    const context: DurableContext = { app, js: jetstream(nc), jsm, names: n, logger: pino({ level: 'silent' }) };
    const seen = new Set<string>();
    class Counting extends DurableConsumer {
      protected async deliver(msg: JsMsg, event: CloudEvent): Promise<void> {
        seen.add(event.id);
        msg.ack();
      }
    }
    const ackWaitMs = 30_000;
    const published: string[] = [];
    try {
      // The durable consumer sees events from its creation on.
      await jsm.consumers.add(n.stream, new Counting(context, app.functions[0], ackWaitMs).consumerConfig());
      // Events keep coming while consumers start and stop, so some are on the wire at each stop.
      let publishing = true;
      const publisher = (async () => {
        while (publishing) {
          const batch = Array.from({ length: 20 }, () => ({ specversion: '1.0', id: newEventId(), source: 'test', type: 't.keep' }));
          await Promise.all(batch.map((e) => context.js.publish(n.eventSubject(e.type), JSON.stringify(e))));
          published.push(...batch.map((e) => e.id));
        }
      })();
      const stops = 6;
      for (let cycle = 0; cycle < stops; cycle++) {
        const consumer = new Counting(context, app.functions[0], ackWaitMs);
        await consumer.start();
        await new Promise((resolve) => setTimeout(resolve, 40));
        await consumer.stop();
      }
      publishing = false;
      await publisher;
      const last = new Counting(context, app.functions[0], ackWaitMs);
      await last.start();
      // Well inside ack wait: anything the stopped consumers dropped is still invisible.
      for (let waited = 0; waited < 10_000 && published.some((id) => !seen.has(id)); waited += 20) await new Promise((resolve) => setTimeout(resolve, 20));
      await last.stop();
      expect(published.length).toBeGreaterThan(100);
      // JetStream's own window: the server can send one message as it processes the unsubscribe
      // (about 1 stop in 100 here). Closing without a drain lost up to max_ack_pending (16) per
      // stop, which stalled the function: hundreds missing.
      expect(published.filter((id) => !seen.has(id)).length).toBeLessThanOrEqual(stops);
    } finally {
      await deleteAppState(jsm, [app]);
      await nc.close();
    }
  }, 30_000);
});
