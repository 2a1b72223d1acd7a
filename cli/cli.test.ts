import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'petrel-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function petrel(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['bin/petrel.js', ...args], { env: { ...process.env, ...env }, timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

function listen(): Promise<Server> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => resolve(server));
  });
}

describe('petrel CLI', () => {
  it('--help lists the commands, and each command has its own help', async () => {
    const top = await petrel(['--help']);
    expect(top.code).toBe(0);
    for (const command of ['dev', 'send', 'dlq']) expect(top.stdout).toContain(command);
    const dev = await petrel(['dev', '--help']);
    expect(dev.stdout).toMatch(/--port/);
    expect(dev.stdout).toMatch(/--data-dir/);
    const dlq = await petrel(['dlq', '--help']);
    for (const sub of ['list', 'show', 'redrive']) expect(dlq.stdout).toContain(sub);
  });

  it('says clearly when the app path is wrong or not an app', async () => {
    const missing = await petrel(['dev', join(dir, 'nope.ts')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/no app at .*nope\.ts/);
    const notApp = join(dir, 'not-app.ts');
    writeFileSync(join(dir, 'package.json'), '{"type":"module"}\n');
    writeFileSync(notApp, 'export default 42;\n');
    const bad = await petrel(['dev', notApp]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/does not export an app/);
  });

  it('says clearly when the port is in use', async () => {
    const server = await listen();
    const port = (server.address() as { port: number }).port;
    const result = await petrel(['dev', '--port', String(port), '--data-dir', join(dir, 'busy')]);
    server.close();
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`port ${port} on 127.0.0.1 is already in use`);
  });

  it('send rejects bad JSON and unreadable files, and says when no runtime answers', async () => {
    const badJson = await petrel(['send', 't', '{oops']);
    expect(badJson.code).toBe(2);
    expect(badJson.stderr).toMatch(/the data is not valid JSON/);
    const noFile = await petrel(['send', 't', `@${join(dir, 'missing.json')}`]);
    expect(noFile.stderr).toMatch(/cannot read .*missing\.json: ENOENT/);
    const noServer = await petrel(['send', 't', '{}', '--url', 'http://127.0.0.1:9']);
    expect(noServer.stderr).toMatch(/no petrel runtime answers at http:\/\/127.0.0.1:9/);
    const noId = await petrel(['dlq', 'redrive']);
    expect(noId.stderr).toMatch(/name a dead letter id, or pass --all/);
  });

  it('dev serves an app; send, dlq list, show and redrive work against it', async () => {
    const server = await listen();
    const port = (server.address() as { port: number }).port;
    server.close();
    const child = spawn(process.execPath, ['bin/petrel.js', 'dev', '--port', String(port), '--data-dir', join(dir, 'live')], { env: { ...process.env, PETREL_LOG_LEVEL: 'silent' }, stdio: 'pipe' });
    try {
      const url = `http://127.0.0.1:${port}`;
      for (let i = 0; i < 100 && !(await fetch(`${url}/healthz`).then((r) => r.ok, () => false)); i++) await new Promise((r) => setTimeout(r, 100));
      const env = { PETREL_URL: url };
      expect((await petrel(['dlq', 'list'], env)).stdout).toMatch(/no dead letters/);
      // No pollutant: assess dead-letters it at once (a permanent error).
      const sent = await petrel(['send', 'aq.reading.accepted', '{"deviceId":"d-1","location":"x","time":"2026-11-28T10:00:00Z"}'], env);
      expect(sent.code).toBe(0);
      expect(JSON.parse(sent.stdout)).toMatchObject({ accepted: 1 });
      let list = '';
      for (let i = 0; i < 50 && !/assess/.test(list); i++) {
        await new Promise((r) => setTimeout(r, 100));
        list = (await petrel(['dlq', 'list'], env)).stdout;
      }
      expect(list).toMatch(/assess\s+aq\.reading\.accepted\s+1 attempt\(s\)\s+not a valid reading/);
      const id = list.split(/\s+/)[0];
      const shown = JSON.parse((await petrel(['dlq', 'show', id], env)).stdout) as { fn: string };
      expect(shown.fn).toBe('assess');
      expect((await petrel(['dlq', 'redrive', id], env)).stdout).toMatch(/redriven: 1/);
      expect((await petrel(['dlq', 'redrive', '--all'], env)).code).toBe(0);
      const missing = await petrel(['dlq', 'show', 'nope'], env);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toMatch(/404: no dead letter with id "nope"/);
    } finally {
      child.kill('SIGTERM');
    }
  }, 60_000);
});
