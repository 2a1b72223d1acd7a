/** `petrel serve <function> [app]`, as a process: clear errors, serving, and a SIGTERM drain. */
import { execFile, spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { newEventId } from '../../core/event.js';
import { freePort } from '../nats/testing.js';
import { toBinaryHttp } from './encode.js';

const testApp = 'adapters/knative/testdata/app.ts';
const env = (extra: Record<string, string> = {}) => {
  const base: NodeJS.ProcessEnv = { ...process.env, PETREL_LOG_LEVEL: 'warn', ...extra };
  for (const name of ['PETREL_NATS_URL', 'PETREL_PG_URL', 'K_SINK', 'PORT']) if (!(name in extra)) delete base[name];
  return base;
};

function petrel(args: string[], extra: Record<string, string> = {}): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['bin/petrel.js', ...args], { env: env(extra), timeout: 30_000 }, (error, _stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stderr });
    });
  });
}

describe('petrel serve', () => {
  it('names the functions it can serve when the name is unknown or http-triggered, and checks K_SINK', async () => {
    const [unknown, http, badSink] = await Promise.all([
      petrel(['serve', 'nope', testApp]),
      petrel(['serve', 'hello', testApp]),
      petrel(['serve', 'greet', testApp], { K_SINK: 'ftp://user:secret@sink' }),
    ]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr.trim()).toBe('petrel: no function "nope" in app "kn-serve"; its functions: greet, hello (http)');
    expect(http.code).toBe(2);
    expect(http.stderr.trim()).toBe('petrel: function "hello" is http-triggered: the ingress serves it (petrel run). petrel serve runs: greet');
    expect(badSink.code).toBe(2);
    expect(badSink.stderr).toMatch(/K_SINK must be an http\(s\) URL/);
    expect(badSink.stderr).not.toContain('secret');
  });

  it('serves on PORT, warns that records stay in memory, and drains on SIGTERM: in-flight events finish, exit 0', async () => {
    const port = await freePort();
    const child = spawn(process.execPath, ['bin/petrel.js', 'serve', 'greet', testApp, '--host', '127.0.0.1'], { env: env({ PORT: String(port) }), stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const base = `http://127.0.0.1:${port}`;
      for (let i = 0; !output.includes('petrel: function greet'); i++) {
        if (i > 300) throw new Error(`petrel serve did not start: ${output}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(output).toContain(`petrel: function greet of kn-serve at http://127.0.0.1:${port} (completion records in memory; K_SINK not set)`);
      expect(output).toMatch(/completion records are kept in memory only/);
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
      const { headers, body } = toBinaryHttp({ specversion: '1.0', id: newEventId(), source: 'test', type: 'greet.requested', data: { name: 'ada', waitMs: 300 } });
      const inFlight = fetch(base, { method: 'POST', headers: { ...headers, prefer: 'reply' }, body: new Uint8Array(body) });
      await new Promise((resolve) => setTimeout(resolve, 100));
      child.kill('SIGTERM');
      const response = await inFlight;
      expect(response.status).toBe(200);
      expect(response.headers.get('ce-type')).toBe('greet.sent');
      expect(await response.json()).toEqual({ to: 'ada' });
      expect(await exited).toBe(0);
      expect(output).toContain('petrel: SIGTERM: finishing in-flight work');
    } finally {
      child.kill('SIGKILL');
    }
  });
});
