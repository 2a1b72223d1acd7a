/**
 * The delivery conformance suite on NATS -> HTTP -> Knative adapter: the NATS runtime serves the
 * ingress and the http functions, the dispatcher delivers every other function's events over HTTP
 * to a Knative function server of its own (completion records on NATS KV, tables on PostgreSQL),
 * whose replies the dispatcher publishes and whose other emitted events go to K_SINK, the ingress.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { HttpDispatcher, ingressApp, KnativeFunction, openStores } from '../adapters/knative/index.js';
import { NatsRuntime } from '../adapters/nats/index.js';
import { deleteAppState } from '../adapters/nats/testing.js';
import { describeDeliveryConformance } from './delivery.js';
import { NATS_URL, PG_URL, servicesAvailable } from './services.js';

const available = await servicesAvailable('conformance/knative', 'nats', 'postgres');
const logger = pino({ level: 'silent' });
const urlOf = (server: Server) => `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

describeDeliveryConformance(
  'knative (NATS -> HTTP dispatcher -> Knative function servers)',
  {
    async start(app) {
      const ingress = await NatsRuntime.start(ingressApp(app), { servers: NATS_URL, pgUrl: PG_URL, logger, drainTimeoutMs: 2000 });
      const url = urlOf(await ingress.listen(0));
      const functions = await Promise.all(
        app.functions
          .filter((fn) => fn.pattern)
          .map(async (fn) => {
            const stores = await openStores(app, fn, { nats: { servers: [NATS_URL] }, pgUrl: PG_URL, logger });
            const served = new KnativeFunction(app, fn, { stores, logger, sink: `${url}/events`, drainTimeoutMs: 2000 });
            return { served, server: await served.listen(0, '127.0.0.1') };
          }),
      );
      const urls = Object.fromEntries(functions.map((f) => [f.served.fn.name, urlOf(f.server)]));
      const dispatcher = await HttpDispatcher.start(app, { nats: { servers: [NATS_URL] }, urls, logger });
      return {
        url,
        publish: (events) => ingress.publish(events),
        idle: async (timeoutMs) => {
          await ingress.idle(timeoutMs);
          await dispatcher.idle(timeoutMs);
        },
        deadLetters: ingress.deadLetters,
        stop: async () => {
          await dispatcher.stop();
          await Promise.all(functions.map((f) => f.served.stop()));
          await ingress.stop();
        },
        crash: async () => {
          await dispatcher.crash();
          // Answers in flight are lost with their connections; the handlers finish and record completion.
          for (const f of functions) f.server.closeAllConnections();
          await Promise.all(functions.map((f) => f.served.stop()));
          await ingress.crash();
        },
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
