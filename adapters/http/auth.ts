/**
 * Device authentication for http triggers marked `http(method, path, { auth: 'device' })`.
 *
 * A request proves it comes from a device holding a key in one of two ways:
 * - the key itself: `Authorization: Bearer <key>` or `X-API-Key: <key>`;
 * - a signature, so the key never travels: `X-Petrel-Timestamp: <Unix seconds>` and
 *   `X-Petrel-Signature: sha256=<hex HMAC-SHA256(SHA-256(key), "<timestamp>.<body>")>`. A timestamp
 *   more than REPLAY_WINDOW_S from the server clock is refused, and so is a signature already
 *   seen within that window (a replayed request).
 *
 * Keys are held only as SHA-256 hashes (the HMAC is keyed by the hash, so signatures need no
 * plain key either) and compared in constant time. They come from PETREL_API_KEYS
 * (comma-separated) or PETREL_API_KEYS_FILE (one per line, `#` comments); an entry may be a key
 * (16 characters or more) or `sha256:<64 hex digits>`, its hash. No key or hash ever appears in a
 * log line, an error message or a response.
 */
import { createHmac, hash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export const TIMESTAMP_HEADER = 'x-petrel-timestamp';
export const SIGNATURE_HEADER = 'x-petrel-signature';
/** How far a signed request's timestamp may be from the server clock, either way. */
export const REPLAY_WINDOW_S = 300;
export const MIN_KEY_LENGTH = 16;
/** Sent with a 401: how to authenticate. */
export const DEVICE_AUTH_CHALLENGE = { 'www-authenticate': 'Bearer realm="petrel devices"' };
/** The 401 of a route needing device authentication when no keys are configured. */
export const NO_DEVICE_KEYS = 'this endpoint needs device authentication, and no device keys are configured (PETREL_API_KEYS or PETREL_API_KEYS_FILE)';
/** Signatures remembered for replay checks; at this bound the oldest are forgotten first. */
const MAX_REMEMBERED = 1_000_000;

export type AuthResult = { ok: true } | { ok: false; reason: string };

export class AuthConfigError extends Error {
  override name = 'AuthConfigError';
}

type Headers = Record<string, string | string[] | undefined>;

export function hashKey(key: string): Buffer {
  return hash('sha256', key, 'buffer');
}

function hmac(keyHash: Buffer, timestamp: string, body: Uint8Array): Buffer {
  return createHmac('sha256', keyHash).update(`${timestamp}.`).update(body).digest();
}

/** The headers that sign `body` with `key` at `now`: what a device sends instead of its key. */
export function signRequest(key: string, body: string | Uint8Array, now = Date.now()): Record<string, string> {
  const timestamp = String(Math.floor(now / 1000));
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  return { [TIMESTAMP_HEADER]: timestamp, [SIGNATURE_HEADER]: `sha256=${hmac(hashKey(key), timestamp, bytes).toString('hex')}` };
}

function single(headers: Headers, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

export class DeviceAuth {
  private readonly hashes: Buffer[];
  /** Signatures accepted, with the epoch second after which their timestamp is out of the window anyway. */
  private readonly seen = new Map<string, number>();

  /** `entries`: keys, or `sha256:<hex>` hashes of keys. */
  constructor(entries: readonly string[], private readonly replayWindowS = REPLAY_WINDOW_S) {
    if (entries.length === 0) throw new AuthConfigError('device authentication needs at least one key');
    this.hashes = entries.map((entry, i) => {
      const hashed = /^sha256:([0-9a-f]{64})$/i.exec(entry);
      if (hashed) return Buffer.from(hashed[1], 'hex');
      if (entry.length < MIN_KEY_LENGTH) throw new AuthConfigError(`device key ${i + 1} is shorter than ${MIN_KEY_LENGTH} characters; use a long random key (or its sha256:<hex>)`);
      return hashKey(entry);
    });
  }

  get keyCount(): number {
    return this.hashes.length;
  }

  verify(headers: Headers, body: Uint8Array, now = Date.now()): AuthResult {
    const bearer = /^bearer\s+(.+)$/i.exec(single(headers, 'authorization') ?? '')?.[1]?.trim();
    const presented = bearer ?? single(headers, 'x-api-key');
    if (presented !== undefined) return this.anyKeyMatches((hash) => hash, hashKey(presented)) ? { ok: true } : { ok: false, reason: 'the API key is not valid' };
    const signature = single(headers, SIGNATURE_HEADER);
    if (signature !== undefined) return this.verifySignature(single(headers, TIMESTAMP_HEADER), signature, body, now);
    return { ok: false, reason: `missing credentials: send Authorization: Bearer <key>, X-API-Key: <key>, or ${TIMESTAMP_HEADER} and ${SIGNATURE_HEADER}` };
  }

  private verifySignature(timestamp: string | undefined, signature: string, body: Uint8Array, now: number): AuthResult {
    if (timestamp === undefined || !/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: `${TIMESTAMP_HEADER} must be the request time in Unix seconds` };
    const nowS = now / 1000;
    if (Math.abs(nowS - Number(timestamp)) > this.replayWindowS) return { ok: false, reason: `${TIMESTAMP_HEADER} is more than ${this.replayWindowS} s from the server clock` };
    const given = /^sha256=([0-9a-f]{64})$/i.exec(signature);
    if (!given) return { ok: false, reason: `${SIGNATURE_HEADER} must be sha256=<64 hex digits>` };
    const digest = Buffer.from(given[1], 'hex');
    if (!this.anyKeyMatches((hash) => hmac(hash, timestamp, body), digest)) return { ok: false, reason: 'the signature does not match the body and timestamp' };
    const id = given[1].toLowerCase();
    this.forgetExpired(nowS);
    if (this.seen.has(id)) return { ok: false, reason: 'this signature was already used: a replayed request' };
    this.seen.set(id, Number(timestamp) + this.replayWindowS);
    return { ok: true };
  }

  /** Compares against every key, without stopping at a match, so timing says nothing about which. */
  private anyKeyMatches(expectedFor: (hash: Buffer) => Buffer, given: Buffer): boolean {
    let matched = false;
    for (const hash of this.hashes) {
      const expected = expectedFor(hash);
      if (expected.length === given.length && timingSafeEqual(expected, given)) matched = true;
    }
    return matched;
  }

  private forgetExpired(nowS: number): void {
    for (const [id, expires] of this.seen) {
      if (expires >= nowS && this.seen.size < MAX_REMEMBERED) break;
      this.seen.delete(id);
    }
  }
}

/** Keys from PETREL_API_KEYS (comma-separated) or the file PETREL_API_KEYS_FILE; undefined if neither is set. */
export function deviceKeysFromEnv(env: NodeJS.ProcessEnv = process.env): { keys: string[]; source: string } | undefined {
  if (env.PETREL_API_KEYS_FILE) {
    let text: string;
    try {
      text = readFileSync(env.PETREL_API_KEYS_FILE, 'utf8');
    } catch (error) {
      throw new AuthConfigError(`cannot read PETREL_API_KEYS_FILE ${env.PETREL_API_KEYS_FILE}: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}`);
    }
    const keys = text.split(/\r?\n/).map((line) => line.trim()).filter((line) => line && !line.startsWith('#'));
    if (keys.length === 0) throw new AuthConfigError(`PETREL_API_KEYS_FILE ${env.PETREL_API_KEYS_FILE} holds no keys`);
    return { keys, source: 'PETREL_API_KEYS_FILE' };
  }
  const keys = (env.PETREL_API_KEYS ?? '').split(',').map((k) => k.trim()).filter(Boolean);
  return keys.length ? { keys, source: 'PETREL_API_KEYS' } : undefined;
}

/** The file in `petrel dev`'s data directory that holds its development key. */
export const DEV_KEY_FILE = 'dev-api-key';

/**
 * The development key kept in `path` (created with a new random key, readable by the owner only,
 * when absent): so `petrel dev` without configured keys still authenticates, and tools on the same
 * machine (`petrel simulate`) can read the key.
 */
export function devKey(path: string): { key: string; created: boolean } {
  if (existsSync(path)) {
    const key = readFileSync(path, 'utf8').trim();
    if (key.length >= MIN_KEY_LENGTH) return { key, created: false };
  }
  const key = `dev_${randomBytes(24).toString('base64url')}`;
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${key}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
  return { key, created: true };
}
