/** The delivery conformance suite on the embedded runtime (SQLite log, in-process). */
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { LocalRuntime } from '../adapters/local/index.js';
import { describeDeliveryConformance } from './delivery.js';

const root = mkdtempSync(join(tmpdir(), 'petrel-conformance-'));

describeDeliveryConformance('embedded', {
  async start(app) {
    const runtime = await LocalRuntime.start(app, { dataDir: join(root, app.name), logger: pino({ level: 'silent' }) });
    const server = await runtime.listen(0);
    return {
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      publish: (events) => runtime.publish(events),
      idle: (timeoutMs) => runtime.idle(timeoutMs),
      deadLetters: runtime.deadLetters,
      stop: () => runtime.stop(),
      // In-process there is no abrupt stop of SQLite; adapters/local/crash.test.ts kills a process with SIGKILL.
      crash: () => runtime.stop(),
    };
  },
  async cleanup() {
    rmSync(root, { recursive: true, force: true });
  },
});
