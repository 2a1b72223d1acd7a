/** Every scenario, in the order `npm run bench` runs them. */
import { airQualityScenario } from './air-quality.js';
import { coldStartScenario } from './cold-start.js';
import { embeddedScenarios } from './embedded.js';
import { httpIngestScenario } from './http-ingest.js';
import { memoryScenario } from './memory.js';
import { natsTransportScenario } from './nats-transport.js';
import { queueScenario } from './queue.js';
import type { Scenario } from './types.js';

export const scenarios: Scenario[] = [queueScenario, natsTransportScenario, httpIngestScenario, airQualityScenario, coldStartScenario, ...embeddedScenarios, memoryScenario];
