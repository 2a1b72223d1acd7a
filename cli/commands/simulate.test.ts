/** `petrel dev` with its dev key and in-process simulator, and `petrel simulate` against it. */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'petrel-simulate-'));
const env: NodeJS.ProcessEnv = { ...process.env, PETREL_LOG_LEVEL: 'silent', PETREL_SIMULATE_RATE: '50', PETREL_MQTT_URL: 'mqtt://127.0.0.1:9' };
delete env.PETREL_API_KEYS;
delete env.PETREL_API_KEYS_FILE;
delete env.PETREL_SIMULATE;

function petrel(args: string[], extra: NodeJS.ProcessEnv = {}): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['bin/petrel.js', ...args], { env: { ...env, ...extra }, timeout: 30_000 }, (error, _stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stderr });
    });
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function until<T>(probe: () => Promise<T | undefined>, what: string): Promise<T> {
  for (let i = 0; i < 150; i++) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('petrel dev and petrel simulate', () => {
  let dev: ChildProcess;
  let stderr = '';
  let base: string;

  beforeAll(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    dev = spawn(process.execPath, ['bin/petrel.js', 'dev', '--port', String(port), '--data-dir', join(dir, 'data')], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    dev.stderr!.on('data', (chunk) => (stderr += chunk));
    await until(() => fetch(`${base}/healthz`).then((r) => (r.ok ? true : undefined)), 'petrel dev to start');
  }, 30_000);

  afterAll(() => {
    dev.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints a dev key once when none is configured, and requires it for POST /readings', async () => {
    const key = /device key \(PETREL_API_KEYS is not set; the key is kept in .*dev-api-key\): (\S+)/.exec(stderr)?.[1];
    expect(key).toMatch(/^dev_/);
    expect(stderr.split(key!).length - 1).toBe(1);
    const reading = JSON.stringify({ deviceId: 'x-1', location: 'test-site', time: new Date().toISOString(), pm25: 3 });
    const post = (headers: Record<string, string>) => fetch(`${base}/readings`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: reading }).then((r) => r.status);
    expect(await post({})).toBe(401);
    expect(await post({ authorization: `Bearer ${key}` })).toBe(202);
  });

  it('runs the simulator in-process, feeding five locations', async () => {
    const locations = await until(async () => {
      const list = (await (await fetch(`${base}/locations`)).json()) as Array<{ location: string }>;
      return list.filter((l) => l.location !== 'test-site').length === 5 ? list : undefined;
    }, 'five simulated locations');
    expect(locations.map((l) => l.location)).toEqual(expect.arrayContaining(['harbour', 'downtown', 'old-town', 'university', 'airport']));
  });

  it('simulate sends signed readings with the dev key it finds in the data dir, reporting progress and the injected faults', async () => {
    const result = await petrel(['simulate', '--url', base, '--data-dir', join(dir, 'data'), '--signed', '--devices', '8', '--locations', '8', '--rate', '40', '--duration', '1.5', '--faulty', '1', '--seed', '3']);
    expect(result.stderr).toMatch(/simulate: sim-\S+ \(\S+\) turns stuck at \d{4}-/);
    expect(result.stderr).toMatch(/simulate: \d+ readings sent, [\d.]+\/s, 0 errors/);
    expect(result.code).toBe(0);
    const sent = Number(/simulate: (\d+) readings sent/.exec(result.stderr.trim().split('\n').at(-1)!)![1]);
    expect(sent).toBeGreaterThan(20);
    // Eight locations: the in-process simulator's five and three more.
    await until(async () => {
      const list = (await (await fetch(`${base}/locations`)).json()) as Array<{ location: string }>;
      return ['riverside', 'industrial-park', 'hillside'].every((name) => list.some((l) => l.location === name)) ? true : undefined;
    }, 'the locations of the simulate command');
  });

  it('simulate stops with a clear error when its key is refused', async () => {
    const result = await petrel(['simulate', '--url', base, '--rate', '20', '--duration', '5'], { PETREL_API_KEYS: 'wrong-key-0123456789abcdef' });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/POST \/readings answered 401: the API key is not valid: check PETREL_API_KEYS or --data-dir/);
    expect(result.stderr).not.toContain('wrong-key-0123456789abcdef');
  });
});
