/** The delivery conformance suite on NATS JetStream (tables on PostgreSQL). */
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { NatsRuntime } from '../adapters/nats/index.js';
import { deleteAppState } from '../adapters/nats/testing.js';
import { describeDeliveryConformance } from './delivery.js';
import { NATS_URL, PG_URL, servicesAvailable } from './services.js';

const available = await servicesAvailable('conformance/nats', 'nats', 'postgres');

describeDeliveryConformance(
  'nats',
  {
    async start(app) {
      const runtime = await NatsRuntime.start(app, { servers: NATS_URL, pgUrl: PG_URL, logger: pino({ level: 'silent' }), drainTimeoutMs: 2000 });
      const server = await runtime.listen(0);
      return {
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        publish: (events) => runtime.publish(events),
        idle: (timeoutMs) => runtime.idle(timeoutMs),
        deadLetters: runtime.deadLetters,
        stop: () => runtime.stop(),
        crash: () => runtime.crash(),
      };
    },
    async cleanup(apps) {
      const nc = await connect({ servers: NATS_URL });
      await deleteAppState(await jetstreamManager(nc), apps, PG_URL);
      await nc.close();
    },
  },
  { skip: !available },
);
