/**
 * A minimal Redis client (RESP2 over one TCP connection) implementing BullMQ's IRedisClient, for
 * one reason: BullMQ 6 talks to Redis through ioredis, an optional peer dependency that is not
 * installed here, and the bench may not install packages. bullmq.ts uses it only when ioredis
 * cannot be resolved; with ioredis installed BullMQ runs as shipped.
 *
 * It behaves as ioredis does by default where it matters for throughput: every command is written
 * to the socket at once (no batching beyond what the caller pipelines), replies are matched in
 * order, Lua scripts run with EVALSHA (EVAL on NOSCRIPT), bulk replies are UTF-8 strings. It does
 * not reconnect: a lost connection fails the bench, which is what a bench should do.
 */
import type { IRedisClient, IRedisTransaction } from 'bullmq';
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { connect, type Socket } from 'node:net';
import { Readable } from 'node:stream';

type Arg = string | number | Buffer;
export type Reply = string | number | null | Error | Reply[];

/** ioredis's message for commands on a closed connection; BullMQ recognizes it. */
const CLOSED = 'Connection is closed.';
const CRLF = Buffer.from('\r\n');

export class ReplyError extends Error {
  override name = 'ReplyError';
}

interface Script {
  sha: string;
  lua: string;
  keys: number;
}

export interface RespOptions {
  host?: string;
  port?: number;
  connectionName?: string;
  [option: string]: unknown;
}

export class RespClient extends EventEmitter implements IRedisClient {
  status = 'connecting';
  readonly isCluster = false;
  private socket: Socket;
  private readonly waiting: Array<{ resolve: (reply: Reply) => void; reject: (error: Error) => void }> = [];
  private rest: Buffer | undefined;
  [command: string]: unknown;

  constructor(public options: RespOptions, private readonly scripts = new Map<string, Script>()) {
    super();
    this.socket = this.open();
    for (const name of scripts.keys()) this[name] = (...args: Arg[]) => this.runCommand(name, args);
  }

  private open(): Socket {
    const socket = connect({ host: this.options.host ?? '127.0.0.1', port: this.options.port ?? 6379, noDelay: true });
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (error) => this.listenerCount('error') > 0 && this.emit('error', error));
    socket.on('close', () => this.closed());
    socket.once('connect', () => {
      const named = this.options.connectionName ? this.call(['CLIENT', 'SETNAME', this.options.connectionName]) : Promise.resolve();
      void named.then(
        () => {
          this.status = 'ready';
          this.emit('ready');
        },
        (error: Error) => this.emit('error', error),
      );
    });
    return socket;
  }

  // ---- connection ----------------------------------------------------------------------------------

  async connect(): Promise<void> {
    if (this.status === 'ready') return;
    if (this.status === 'end') {
      this.status = 'connecting';
      this.socket = this.open();
    }
    await new Promise<void>((resolve, reject) => {
      this.once('ready', resolve);
      this.once('end', () => reject(new Error(CLOSED)));
    });
  }

  disconnect(): void {
    this.socket.destroy();
    this.closed();
  }

  async quit(): Promise<string> {
    if (this.status === 'end') return 'OK';
    const reply = await this.call(['QUIT']).catch(() => 'OK');
    this.socket.end();
    this.closed();
    return String(reply);
  }

  duplicate(overrides?: RespOptions): RespClient {
    return new RespClient({ ...this.options, ...overrides }, this.scripts);
  }

  private closed(): void {
    if (this.status === 'end') return;
    this.status = 'end';
    for (const waiter of this.waiting.splice(0)) waiter.reject(new Error(CLOSED));
    this.emit('close');
    this.emit('end');
  }

  // ---- protocol ------------------------------------------------------------------------------------

  /** Sends one command; resolves with its reply, rejects with an error reply. */
  call(args: Arg[]): Promise<Reply> {
    if (this.status === 'end') return Promise.reject(new Error(CLOSED));
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.socket.write(encode(args));
    });
  }

  private receive(chunk: Buffer): void {
    let buffer = this.rest ? Buffer.concat([this.rest, chunk]) : chunk;
    let offset = 0;
    for (;;) {
      const parsed = parse(buffer, offset);
      if (!parsed) break;
      offset = parsed.next;
      const waiter = this.waiting.shift();
      if (!waiter) continue;
      if (parsed.value instanceof Error) waiter.reject(parsed.value);
      else waiter.resolve(parsed.value);
    }
    buffer = buffer.subarray(offset);
    this.rest = buffer.length > 0 ? buffer : undefined;
  }

  // ---- scripts and batches -------------------------------------------------------------------------

  defineCommand(name: string, definition: { numberOfKeys: number; lua: string }): void {
    const script = { sha: createHash('sha1').update(definition.lua).digest('hex'), lua: definition.lua, keys: definition.numberOfKeys };
    this.scripts.set(name, script);
    this[name] = (...args: Arg[]) => this.runCommand(name, args);
    // Loaded now, on this connection, so an EVALSHA queued in a MULTI after it finds it.
    this.call(['SCRIPT', 'LOAD', definition.lua]).catch(() => undefined);
  }

  async runCommand(name: string, args: unknown[]): Promise<Reply> {
    const [sha, lua] = this.scriptArgs(name, args);
    try {
      return await this.call(sha);
    } catch (error) {
      if (!(error instanceof ReplyError) || !error.message.startsWith('NOSCRIPT')) throw error;
      return this.call(lua);
    }
  }

  /** EVALSHA and EVAL command lines for script `name` with `args` (keys first). */
  scriptArgs(name: string, args: unknown[]): [Arg[], Arg[]] {
    const script = this.scripts.get(name);
    if (!script) throw new Error(`unknown script command "${name}"`);
    const all = (args.length === 1 && Array.isArray(args[0]) ? args[0] : args) as unknown[];
    const rest = all.map((a): Arg => (Buffer.isBuffer(a) ? a : a === undefined || a === null ? '' : String(a)));
    return [
      ['EVALSHA', script.sha, script.keys, ...rest],
      ['EVAL', script.lua, script.keys, ...rest],
    ];
  }

  multi(): IRedisTransaction {
    return new Batch(this, true);
  }

  pipeline(): IRedisTransaction {
    return new Batch(this, false);
  }

  // ---- commands ------------------------------------------------------------------------------------

  async hgetall(key: string): Promise<Record<string, string>> {
    return pairs((await this.call(['HGETALL', key])) as string[]);
  }
  async hget(key: string, field: string) {
    return (await this.call(['HGET', key, field])) as string | null;
  }
  async hmget(key: string, ...fields: string[]) {
    return (await this.call(['HMGET', key, ...fields])) as Array<string | null>;
  }
  async hset(key: string, data: Record<string, string | number>) {
    return (await this.call(['HSET', key, ...Object.entries(data).flat()])) as number;
  }
  async hdel(key: string, ...fields: string[]) {
    return (await this.call(['HDEL', key, ...fields])) as number;
  }
  async hexists(key: string, field: string) {
    return (await this.call(['HEXISTS', key, field])) as number;
  }
  async get(key: string) {
    return (await this.call(['GET', key])) as string | null;
  }
  async set(key: string, value: string | number, options?: { PX?: number; EX?: number }) {
    const expiry = options?.PX !== undefined ? ['PX', options.PX] : options?.EX !== undefined ? ['EX', options.EX] : [];
    return (await this.call(['SET', key, value, ...expiry])) as string | null;
  }
  async del(...keys: string[]) {
    return keys.length === 0 ? 0 : ((await this.call(['DEL', ...keys])) as number);
  }
  async zrange(key: string, start: number, end: number, options?: { WITHSCORES?: boolean }) {
    return (await this.call(['ZRANGE', key, start, end, ...(options?.WITHSCORES ? ['WITHSCORES'] : [])])) as string[];
  }
  async zrevrange(key: string, start: number, end: number, options?: { WITHSCORES?: boolean }) {
    return (await this.call(['ZREVRANGE', key, start, end, ...(options?.WITHSCORES ? ['WITHSCORES'] : [])])) as string[];
  }
  async zcard(key: string) {
    return (await this.call(['ZCARD', key])) as number;
  }
  async zscore(key: string, member: string) {
    return (await this.call(['ZSCORE', key, member])) as string | null;
  }
  async lrange(key: string, start: number, end: number) {
    return (await this.call(['LRANGE', key, start, end])) as string[];
  }
  async llen(key: string) {
    return (await this.call(['LLEN', key])) as number;
  }
  async ltrim(key: string, start: number, end: number) {
    return (await this.call(['LTRIM', key, start, end])) as string;
  }
  async lpos(key: string, value: string) {
    return (await this.call(['LPOS', key, value])) as number | null;
  }
  async smembers(key: string) {
    return (await this.call(['SMEMBERS', key])) as string[];
  }
  async xadd(key: string, id: string, fields: Record<string, string | number>, options?: { MAXLEN?: number; approximate?: boolean }) {
    const trim = options?.MAXLEN !== undefined ? ['MAXLEN', ...(options.approximate === false ? [] : ['~']), options.MAXLEN] : [];
    return (await this.call(['XADD', key, ...trim, id, ...Object.entries(fields).flat()])) as string;
  }
  async xread(streams: Array<{ key: string; id: string }>, options?: { BLOCK?: number; COUNT?: number }) {
    const block = options?.BLOCK !== undefined ? ['BLOCK', options.BLOCK] : [];
    const count = options?.COUNT !== undefined ? ['COUNT', options.COUNT] : [];
    return this.call(['XREAD', ...block, ...count, 'STREAMS', ...streams.map((s) => s.key), ...streams.map((s) => s.id)]);
  }
  async xtrim(key: string, strategy: 'MAXLEN', threshold: number, options?: { approximate?: boolean }) {
    return (await this.call(['XTRIM', key, strategy, ...(options?.approximate === false ? [] : ['~']), threshold])) as number;
  }
  async bzpopmin(key: string, timeout: number) {
    return (await this.call(['BZPOPMIN', key, timeout])) as [string, string, string] | null;
  }
  async info() {
    return (await this.call(['INFO'])) as string;
  }
  async clientSetName(name: string) {
    return this.call(['CLIENT', 'SETNAME', name]);
  }
  async clientList() {
    return (await this.call(['CLIENT', 'LIST'])) as string;
  }
  async clientInfo() {
    return (await this.call(['CLIENT', 'INFO'])) as string;
  }
  async scan(cursor: string | number, options: { MATCH?: string; COUNT?: number }): Promise<[string, string[]]> {
    const match = options.MATCH !== undefined ? ['MATCH', options.MATCH] : [];
    const count = options.COUNT !== undefined ? ['COUNT', options.COUNT] : [];
    return (await this.call(['SCAN', cursor, ...match, ...count])) as [string, string[]];
  }
  scanStream(options: { match: string; count?: number }): Readable {
    let cursor: string | undefined;
    const stream = new Readable({
      objectMode: true,
      read: () => {
        if (cursor === '0') return void stream.push(null);
        this.scan(cursor ?? '0', { MATCH: options.match, COUNT: options.count }).then(
          ([next, keys]) => {
            cursor = next;
            stream.push(keys);
          },
          (error: Error) => stream.destroy(error),
        );
      },
    });
    return stream;
  }
}

/** MULTI/EXEC (`atomic`) or a plain pipeline: commands queued, sent together on exec. */
class Batch implements IRedisTransaction {
  private readonly commands: Arg[][] = [];

  constructor(private readonly client: RespClient, private readonly atomic: boolean) {}

  private add(args: Arg[]): this {
    this.commands.push(args);
    return this;
  }
  hgetall(key: string) {
    return this.add(['HGETALL', key]);
  }
  hset(key: string, data: Record<string, string | number>) {
    return this.add(['HSET', key, ...Object.entries(data).flat()]);
  }
  hscan(key: string, cursor: string | number, options?: { COUNT?: number }) {
    return this.add(['HSCAN', key, cursor, ...(options?.COUNT !== undefined ? ['COUNT', options.COUNT] : [])]);
  }
  smembers(key: string) {
    return this.add(['SMEMBERS', key]);
  }
  sscan(key: string, cursor: string | number, options?: { COUNT?: number }) {
    return this.add(['SSCAN', key, cursor, ...(options?.COUNT !== undefined ? ['COUNT', options.COUNT] : [])]);
  }
  zrange(key: string, start: number, end: number) {
    return this.add(['ZRANGE', key, start, end]);
  }
  lrange(key: string, start: number, end: number) {
    return this.add(['LRANGE', key, start, end]);
  }
  llen(key: string) {
    return this.add(['LLEN', key]);
  }
  del(...keys: string[]) {
    return keys.length === 0 ? this : this.add(['DEL', ...keys]);
  }
  runCommand(name: string, args: unknown[]) {
    return this.add(this.client.scriptArgs(name, args)[0]);
  }

  async exec(): Promise<Array<[Error | null, unknown]> | null> {
    const send = (args: Arg[]) => this.client.call(args);
    // The hgetall of a batch answers an object, as ioredis's does.
    const shape = (args: Arg[], value: Reply): unknown => (args[0] === 'HGETALL' && Array.isArray(value) ? pairs(value as string[]) : value);
    if (!this.atomic) {
      const settled = await Promise.allSettled(this.commands.map(send));
      return settled.map((s, i) => (s.status === 'fulfilled' ? [null, shape(this.commands[i], s.value)] : [s.reason as Error, null]));
    }
    const queued = [send(['MULTI']), ...this.commands.map(send)];
    // Queueing errors (QUEUED refused) surface as EXECABORT from EXEC.
    for (const reply of queued) reply.catch(() => undefined);
    const results = (await send(['EXEC'])) as Reply[] | null;
    if (results === null) return null;
    return results.map((value, i) => (value instanceof Error ? [value, null] : [null, shape(this.commands[i], value)]));
  }
}

function pairs(flat: string[]): Record<string, string> {
  const record: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) record[flat[i]] = flat[i + 1];
  return record;
}

function encode(args: Arg[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    const bytes = Buffer.isBuffer(arg) ? arg : Buffer.from(String(arg), 'utf8');
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, CRLF);
  }
  return Buffer.concat(parts);
}

/** One reply from `buffer` at `offset`, or undefined when it has not fully arrived yet. */
function parse(buffer: Buffer, offset: number): { value: Reply; next: number } | undefined {
  if (offset >= buffer.length) return undefined;
  const end = buffer.indexOf(CRLF, offset);
  if (end < 0) return undefined;
  const line = buffer.toString('utf8', offset + 1, end);
  const next = end + 2;
  switch (buffer[offset]) {
    case 0x2b: // +
      return { value: line, next };
    case 0x2d: // -
      return { value: new ReplyError(line), next };
    case 0x3a: // :
      return { value: Number(line), next };
    case 0x24: {
      // $
      const length = Number(line);
      if (length < 0) return { value: null, next };
      if (next + length + 2 > buffer.length) return undefined;
      return { value: buffer.toString('utf8', next, next + length), next: next + length + 2 };
    }
    case 0x2a: {
      // *
      const count = Number(line);
      if (count < 0) return { value: null, next };
      const items: Reply[] = [];
      let at = next;
      for (let i = 0; i < count; i++) {
        const item = parse(buffer, at);
        if (!item) return undefined;
        items.push(item.value);
        at = item.next;
      }
      return { value: items, next: at };
    }
    default:
      throw new Error(`unexpected reply from Redis: ${JSON.stringify(buffer.toString('utf8', offset, Math.min(buffer.length, offset + 40)))}`);
  }
}
