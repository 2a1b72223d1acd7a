/**
 * TLS between clients and nats-server: a throwaway CA signs a server certificate (openssl CLI;
 * node:crypto cannot issue X.509 certificates), the server requires TLS, a client trusting the CA
 * connects, and neither a plaintext client nor one without the CA gets in.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from './testing.js';

const openssl = spawnSync('openssl', ['version']).status === 0;
if (!openssl) console.warn('adapters/nats/tls: the openssl CLI is not installed, so no certificates can be made; skipping');

describe.skipIf(!openssl)('NATS over TLS', () => {
  const dir = mkdtempSync(join(tmpdir(), 'petrel-tls-'));
  const file = (name: string) => join(dir, name);
  let server: ChildProcess;
  let port: number;
  const connections: NatsConnection[] = [];

  beforeAll(async () => {
    const run = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    run('req', '-x509', ...ec, '-keyout', file('ca.key'), '-out', file('ca.pem'), '-days', '1', '-subj', '/CN=petrel test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
    run('req', ...ec, '-keyout', file('server.key'), '-out', file('server.csr'), '-subj', '/CN=localhost');
    writeFileSync(file('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
    run('x509', '-req', '-in', file('server.csr'), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-CAcreateserial', '-out', file('server.pem'), '-days', '1', '-extfile', file('server.ext'));
    port = await freePort();
    writeFileSync(file('server.conf'), `listen: "127.0.0.1:${port}"\ntls {\n  cert_file: ${JSON.stringify(file('server.pem'))}\n  key_file: ${JSON.stringify(file('server.key'))}\n  timeout: 2\n}\n`);
    server = spawn('nats-server', ['-c', file('server.conf'), '-js', '-sd', file('store')], { stdio: 'ignore' });
    for (let i = 0; ; i++) {
      const up = await new Promise<boolean>((resolve) => {
        const socket = createConnection(port, '127.0.0.1', () => resolve(true)).once('error', () => resolve(false));
        socket.once('connect', () => socket.destroy());
      });
      if (up) break;
      if (i > 100) throw new Error('nats-server with TLS did not start');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  });

  afterAll(async () => {
    for (const nc of connections) await nc.close().catch(() => undefined);
    server?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves a client that trusts the CA, over TLS', async () => {
    const nc = await connect({ servers: `nats://127.0.0.1:${port}`, tls: { caFile: file('ca.pem') }, maxReconnectAttempts: 0 });
    connections.push(nc);
    expect(nc.info?.tls_required).toBe(true);
    const sub = nc.subscribe('tls.echo', { max: 1, callback: (_err, msg) => void msg.respond(`echo ${msg.string()}`) });
    expect((await nc.request('tls.echo', 'hello', { timeout: 2000 })).string()).toBe('echo hello');
    await sub.closed;
  });

  it('refuses a plaintext connection', async () => {
    const received = await new Promise<string>((resolve, reject) => {
      let text = '';
      const socket = createConnection(port, '127.0.0.1');
      socket.setTimeout(5000, () => reject(new Error('the server neither refused nor answered the plaintext client')));
      socket.on('data', (chunk) => {
        if (text === '') socket.write('CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n');
        text += chunk.toString('latin1');
      });
      socket.on('close', () => resolve(text));
      socket.on('error', () => undefined);
    });
    const [info, ...rest] = received.split('\r\n');
    expect(JSON.parse(info.replace(/^INFO /, ''))).toMatchObject({ tls_required: true });
    // Plaintext after the INFO fails the TLS handshake: the server closes without ever answering the PING.
    expect(rest.join('\n')).not.toContain('PONG');
  });

  it('refuses a client that does not trust the CA', async () => {
    await expect(connect({ servers: `nats://127.0.0.1:${port}`, maxReconnectAttempts: 0, timeout: 3000 })).rejects.toThrow(/verify the first certificate/);
  });
});
