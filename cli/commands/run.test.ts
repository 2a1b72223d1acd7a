import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';

function petrel(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { ...process.env };
  delete env.PETREL_NATS_URL;
  return new Promise((resolve) => {
    execFile(process.execPath, ['bin/petrel.js', ...args], { env, timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

const testApp = 'adapters/nats/testdata/app.ts';

describe('petrel run', () => {
  it('is listed, and has its own help', async () => {
    expect((await petrel(['--help'])).stdout).toMatch(/run \[options\] \[app\]/);
    const help = await petrel(['run', '--help']);
    expect(help.code).toBe(0);
    for (const option of ['--nats', '--pg', '--port', '--host', '--replicas']) expect(help.stdout).toContain(option);
  });

  it('says in one line, without a stack, when NATS is missing or unreachable', async () => {
    const missing = await petrel(['run', testApp]);
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim()).toBe('petrel: give the NATS server: --nats nats://host:4222 (or set PETREL_NATS_URL)');
    const unreachable = await petrel(['run', '--nats', 'nats://127.0.0.1:9', '--pg', 'postgres://u:secret@127.0.0.1:9/x', testApp]);
    expect(unreachable.code).toBe(2);
    expect(unreachable.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^petrel: NATS at nats:\/\/127\.0\.0\.1:9 is not reachable: /)]);
    expect(unreachable.stderr).not.toContain('secret');
    const badReplicas = await petrel(['run', '--nats', 'nats://127.0.0.1:9', '--replicas', '2', testApp]);
    expect(badReplicas.stderr).toMatch(/replicas is 1, 3 or 5/);
  });
});

describe('petrel run --dispatch http', async () => {
  const { servicesAvailable, NATS_URL, PG_URL } = await import('../../conformance/services.js');
  const { freePort } = await import('../../adapters/nats/testing.js');
  const { spawn } = await import('node:child_process');
  const available = await servicesAvailable('petrel run --dispatch http', 'nats', 'postgres');

  it.skipIf(!available)('delivers events to `petrel serve` endpoints over HTTP; their emitted events come back through K_SINK', async () => {
    const appName = `dispatch-${Date.now().toString(36)}`;
    const [ingressPort, countPort, tallyPort] = await Promise.all([freePort(), freePort(), freePort()]);
    const ingress = `http://127.0.0.1:${ingressPort}`;
    const env = { ...process.env, PETREL_TEST_APP: appName, PETREL_LOG_LEVEL: 'warn', PETREL_NATS_URL: NATS_URL, PETREL_PG_URL: PG_URL };
    const children = [
      spawn(process.execPath, ['bin/petrel.js', 'run', testApp, '--port', String(ingressPort), '--dispatch', 'http', '--function-url', `count=http://127.0.0.1:${countPort}`, '--function-url', `tally=http://127.0.0.1:${tallyPort}`], { env, stdio: 'inherit' }),
    ];
    const until = async (probe: () => Promise<boolean>, what: string) => {
      for (let i = 0; i < 300; i++) {
        if (await probe().catch(() => false)) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`timed out waiting for ${what}`);
    };
    try {
      await until(async () => (await fetch(`${ingress}/healthz`)).ok, 'the ingress');
      for (const [fn, port] of [['count', countPort], ['tally', tallyPort]] as const) {
        children.push(spawn(process.execPath, ['bin/petrel.js', 'serve', fn, testApp], { env: { ...env, PORT: String(port), K_SINK: `${ingress}/events` }, stdio: 'inherit' }));
      }
      for (const port of [countPort, tallyPort]) await until(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok, `the function on port ${port}`);
      const ids = Array.from({ length: 5 }, (_, i) => `e-${i}`);
      for (const id of ids) {
        const response = await fetch(`${ingress}/events`, { method: 'POST', headers: { 'content-type': 'application/cloudevents+json' }, body: JSON.stringify({ specversion: '1.0', id, source: 'test', type: 'test.count' }) });
        expect(response.status).toBe(202);
      }
      const rows = async (pk: string) => (await (await fetch(`${ingress}/counts/${pk}`)).json()) as Array<{ sk: string; n: number }>;
      await until(async () => (await rows('counted')).length === ids.length, 'the emitted events to be tallied');
      expect((await rows('event')).map((r) => [r.sk, r.n]).sort()).toEqual(ids.map((id) => [id, 1]));
      expect((await rows('counted')).every((r) => r.n === 1)).toBe(true);
    } finally {
      for (const child of children) child.kill('SIGTERM');
    }
  }, 90_000);

  it.skipIf(!available)('says which functions lack a URL', async () => {
    const result = await petrel(['run', '--nats', NATS_URL, '--pg', PG_URL, '--port', '0', '--dispatch', 'http', '--function-url', 'count=http://127.0.0.1:1', testApp]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/dispatching needs a URL for each function with an event trigger \(count, tally\); missing: tally/);
  }, 30_000);
});
