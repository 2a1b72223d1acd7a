import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineApp, fn, http, type HttpRequestData } from '../../core/app.js';
import { LocalRuntime } from '../local/index.js';
import { AuthConfigError, DeviceAuth, deviceKeysFromEnv, devKey, signRequest } from './auth.js';

const KEY = 'device-key-abcdefghijklmnop';
const OTHER = 'another-key-abcdefghijklmno';
const body = Buffer.from('{"pm25":12}');
const NOW = Date.parse('2026-11-28T10:00:00Z');

describe('DeviceAuth', () => {
  it('accepts a configured key as a bearer token or x-api-key, and no other', () => {
    const auth = new DeviceAuth([OTHER, KEY]);
    expect(auth.verify({ authorization: `Bearer ${KEY}` }, body)).toEqual({ ok: true });
    expect(auth.verify({ authorization: `bearer   ${KEY}` }, body)).toEqual({ ok: true });
    expect(auth.verify({ 'x-api-key': KEY }, body)).toEqual({ ok: true });
    expect(auth.verify({ authorization: `Bearer ${KEY}x` }, body)).toEqual({ ok: false, reason: 'the API key is not valid' });
    expect(auth.verify({ 'x-api-key': 'short' }, body)).toEqual({ ok: false, reason: 'the API key is not valid' });
    expect(auth.verify({}, body)).toMatchObject({ ok: false, reason: expect.stringMatching(/^missing credentials/) });
  });

  it('accepts a request signed with a key over its timestamp and body', () => {
    const auth = new DeviceAuth([KEY]);
    const headers = signRequest(KEY, body, NOW);
    expect(headers['x-petrel-timestamp']).toBe(String(NOW / 1000));
    expect(auth.verify(headers, body, NOW + 1000)).toEqual({ ok: true });
  });

  it('refuses a wrong signature, a changed body, a malformed header, and a stale or future timestamp', () => {
    const auth = new DeviceAuth([KEY]);
    const reason = (headers: Record<string, string>, b = body, now = NOW) => (auth.verify(headers, b, now) as { reason?: string }).reason;
    expect(reason(signRequest(OTHER, body, NOW))).toBe('the signature does not match the body and timestamp');
    expect(reason(signRequest(KEY, body, NOW), Buffer.from('{"pm25":13}'))).toBe('the signature does not match the body and timestamp');
    expect(reason({ ...signRequest(KEY, body, NOW), 'x-petrel-signature': 'md5=abc' })).toBe('x-petrel-signature must be sha256=<64 hex digits>');
    expect(reason({ 'x-petrel-signature': signRequest(KEY, body, NOW)['x-petrel-signature'] })).toBe('x-petrel-timestamp must be the request time in Unix seconds');
    expect(reason(signRequest(KEY, body, NOW - 301_000))).toBe('x-petrel-timestamp is more than 300 s from the server clock');
    expect(reason(signRequest(KEY, body, NOW + 301_000))).toBe('x-petrel-timestamp is more than 300 s from the server clock');
  });

  it('refuses a replayed signed request within the window', () => {
    const auth = new DeviceAuth([KEY]);
    const headers = signRequest(KEY, body, NOW);
    expect(auth.verify(headers, body, NOW)).toEqual({ ok: true });
    expect(auth.verify(headers, body, NOW + 5000)).toEqual({ ok: false, reason: 'this signature was already used: a replayed request' });
  });

  it('holds only hashes: a sha256:<hex> entry works for keys and signatures alike', () => {
    const auth = new DeviceAuth([`sha256:${createHash('sha256').update(KEY).digest('hex')}`]);
    expect(auth.verify({ 'x-api-key': KEY }, body)).toEqual({ ok: true });
    expect(auth.verify(signRequest(KEY, body, NOW), body, NOW)).toEqual({ ok: true });
    expect(JSON.stringify(auth)).not.toContain(KEY);
  });

  it('refuses weak keys without echoing them', () => {
    expect(() => new DeviceAuth(['tooshort'])).toThrow(AuthConfigError);
    expect(() => new DeviceAuth([KEY, 'tooshort'])).toThrow(/^device key 2 is shorter than 16 characters/);
    try {
      new DeviceAuth(['tooshort']);
    } catch (error) {
      expect((error as Error).message).not.toContain('tooshort');
    }
    expect(() => new DeviceAuth([])).toThrow(/at least one key/);
  });
});

describe('key configuration', () => {
  const dir = mkdtempSync(join(tmpdir(), 'petrel-auth-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads PETREL_API_KEYS, or PETREL_API_KEYS_FILE with comments and blank lines', () => {
    expect(deviceKeysFromEnv({ PETREL_API_KEYS: ` ${KEY}, ${OTHER} ,` })).toEqual({ keys: [KEY, OTHER], source: 'PETREL_API_KEYS' });
    const file = join(dir, 'keys');
    writeFileSync(file, `# devices\n${KEY}\n\n  ${OTHER}  \n`);
    expect(deviceKeysFromEnv({ PETREL_API_KEYS_FILE: file, PETREL_API_KEYS: 'ignored-when-a-file-is-set' })).toEqual({ keys: [KEY, OTHER], source: 'PETREL_API_KEYS_FILE' });
    expect(deviceKeysFromEnv({})).toBeUndefined();
    expect(() => deviceKeysFromEnv({ PETREL_API_KEYS_FILE: join(dir, 'nope') })).toThrow(/cannot read PETREL_API_KEYS_FILE .*nope: ENOENT/);
    writeFileSync(join(dir, 'empty'), '# none\n');
    expect(() => deviceKeysFromEnv({ PETREL_API_KEYS_FILE: join(dir, 'empty') })).toThrow(/holds no keys/);
  });

  it('creates a dev key readable by the owner only, and keeps it', () => {
    const path = join(dir, 'data', 'dev-api-key');
    const first = devKey(path);
    expect(first.created).toBe(true);
    expect(first.key.length).toBeGreaterThanOrEqual(32);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(devKey(path)).toEqual({ key: first.key, created: false });
    expect(readFileSync(path, 'utf8').trim()).toBe(first.key);
  });
});

describe('the ingress applies device auth to routes that ask for it', () => {
  const dataDirs: string[] = [];
  const logLines: string[] = [];
  const app = defineApp({
    name: 'auth-test',
    functions: {
      submit: fn({
        trigger: http('POST', '/in', { auth: 'device' }),
        handler: (event, ctx) => {
          // Logs the whole request event: a key that leaked into it would show in the log.
          ctx.log.info({ event }, 'received');
          return { status: 202, body: { headers: (event.data as HttpRequestData).headers } };
        },
      }),
      read: fn({ trigger: http('GET', '/open'), handler: () => ({ body: { open: true } }) }),
    },
  });
  let guarded: LocalRuntime;
  let unconfigured: LocalRuntime;
  let base: string;
  let bare: string;

  async function start(deviceAuth?: DeviceAuth): Promise<[LocalRuntime, string]> {
    const dataDir = mkdtempSync(join(tmpdir(), 'petrel-auth-rt-'));
    dataDirs.push(dataDir);
    const logger = pino({ level: 'debug' }, { write: (line: string) => void logLines.push(line) });
    const runtime = await LocalRuntime.start(app, { dataDir, logger });
    const server = await runtime.listen(0, '127.0.0.1', { deviceAuth });
    return [runtime, `http://127.0.0.1:${(server.address() as AddressInfo).port}`];
  }

  beforeAll(async () => {
    [guarded, base] = await start(new DeviceAuth([KEY]));
    [unconfigured, bare] = await start();
  });
  afterAll(async () => {
    await guarded.stop();
    await unconfigured.stop();
    for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
  });

  const send = (url: string, headers: Record<string, string>, payload = '{"pm25":12}') => fetch(`${url}/in`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: payload });

  it('401 with a JSON reason for a missing or wrong key, a bad signature or a replay; 202 with a right key or signature', async () => {
    const missing = await send(base, {});
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(await missing.json()).toEqual({ error: expect.stringMatching(/^missing credentials/) });
    expect(await send(base, { authorization: `Bearer ${OTHER}` }).then((r) => r.status)).toBe(401);
    expect(await send(base, signRequest(OTHER, '{"pm25":12}')).then((r) => r.status)).toBe(401);
    const stale = await send(base, signRequest(KEY, '{"pm25":12}', Date.now() - 10 * 60_000));
    expect(await stale.json()).toEqual({ error: 'x-petrel-timestamp is more than 300 s from the server clock' });

    expect(await send(base, { authorization: `Bearer ${KEY}` }).then((r) => r.status)).toBe(202);
    expect(await send(base, { 'x-api-key': KEY }).then((r) => r.status)).toBe(202);
    const signed = signRequest(KEY, '{"pm25":12}');
    expect(await send(base, signed).then((r) => r.status)).toBe(202);
    const replay = await send(base, signed);
    expect(replay.status).toBe(401);
    expect(await replay.json()).toEqual({ error: 'this signature was already used: a replayed request' });
  });

  it('leaves other routes open, and refuses guarded ones when no keys are configured', async () => {
    expect(await fetch(`${base}/open`).then((r) => r.json())).toEqual({ open: true });
    const refused = await send(bare, { authorization: `Bearer ${KEY}` });
    expect(refused.status).toBe(401);
    expect(await refused.json()).toEqual({ error: expect.stringMatching(/no device keys are configured/) });
  });

  it('never passes the key to the handler, nor writes it to the log', async () => {
    const response = await send(base, { authorization: `Bearer ${KEY}`, 'x-api-key': KEY });
    const { headers } = (await response.json()) as { headers: Record<string, string> };
    expect(headers.authorization).toBeUndefined();
    expect(headers['x-api-key']).toBeUndefined();
    expect(logLines.length).toBeGreaterThan(0);
    expect(logLines.join('\n')).not.toContain(KEY);
  });
});
