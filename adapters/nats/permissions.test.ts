import { AckPolicy, jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, PermissionViolationError, type NatsConnection } from '@nats-io/transport-node';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineApp, fn, http, on, schedule } from '../../core/app.js';
import { accountsConfig, clientAuth, ingressSubjects, natsAuth, writeNatsAuth, type NatsAuth } from './permissions.js';
import { names, recordKey } from './subjects.js';
import { freePort } from './testing.js';

const app = defineApp({
  name: 'perm',
  functions: {
    check: fn({ trigger: on({ type: ['reading.in'] }), emits: ['reading.ok', 'alert raised'], handler: () => undefined }),
    notify: fn({ trigger: on({ type: ['reading.ok'] }), handler: () => undefined }),
    audit: fn({ trigger: on({ type: [{ prefix: 'reading.' }] }), handler: () => undefined }),
    tick: fn({ trigger: schedule('rate(1 minute)'), handler: () => undefined }),
    api: fn({ trigger: http('GET', '/x'), handler: () => ({ body: 1 }) }),
  },
});
const n = names(app.name);

describe('NATS permissions from the app description', () => {
  const auth = natsAuth(app);
  const user = (id: string) => auth.users.find((u) => u.id === id)!;

  it('has one user per event function, an ingress and an admin, each with its own nkey and inbox', () => {
    expect(auth.account).toBe('petrel-perm');
    expect(auth.users.map((u) => u.id)).toEqual(['fn-check', 'fn-notify', 'fn-audit', 'fn-tick', 'ingress', 'admin']);
    expect(new Set(auth.users.map((u) => u.nkey)).size).toBe(auth.users.length);
    for (const u of auth.users) expect(u.nkey).toMatch(/^U[A-Z2-7]{55}$/);
    expect(user('fn-check').inboxPrefix).toBe('_INBOX_fn-check');
    expect(user('fn-check').permissions.subscribe.allow).toEqual(['_INBOX_fn-check.>']);
  });

  it('lets a function publish exactly its declared types, and reach only its own consumer and records', () => {
    const publish = user('fn-check').permissions.publish.allow;
    expect(publish.filter((s) => s.startsWith('petrel.'))).toEqual(['petrel.perm.reading.ok', 'petrel.perm.alert%20raised']);
    expect(publish).toContain('$JS.API.CONSUMER.MSG.NEXT.petrel-perm.check');
    expect(publish).toContain('$JS.ACK.petrel-perm.check.>');
    expect(publish).toContain('$KV.petrel-perm-done.check.>');
    expect(publish.join(' ')).not.toMatch(/notify|audit|tick/);
    expect(user('fn-notify').permissions.publish.allow.filter((s) => s.startsWith('petrel.'))).toEqual([]);
  });

  it('lets the ingress publish the types triggers match or functions emit, narrowing prefixes to subjects', () => {
    expect(ingressSubjects(app)).toEqual(['petrel.perm.alert%20raised', 'petrel.perm.petrel.schedule.fired', 'petrel.perm.reading.>', 'petrel.perm.reading.in', 'petrel.perm.reading.ok']);
    const anyType = defineApp({ name: 'wide', functions: { all: fn({ trigger: on({ source: ['s'] }), handler: () => undefined }) } });
    expect(ingressSubjects(anyType)).toEqual(['petrel.wide.>']);
  });

  it('puts public keys only in the configuration, and each seed in a file only its owner can read', () => {
    const text = accountsConfig(auth);
    for (const u of auth.users) expect(text).toContain(`# ${u.id}\n      {\n        "nkey": "${u.nkey}"`);
    const seeds = [...auth.seeds.values()].map((s) => new TextDecoder().decode(s));
    for (const seed of seeds) {
      expect(seed).toMatch(/^SU/);
      expect(text).not.toContain(seed);
      expect(JSON.stringify(auth)).not.toContain(seed);
    }
    const dir = mkdtempSync(join(tmpdir(), 'petrel-perm-files-'));
    try {
      const written = writeNatsAuth(auth, join(dir, 'auth'));
      expect(statSync(join(dir, 'auth')).mode & 0o777).toBe(0o700);
      expect(Object.keys(written.seedFiles).sort()).toEqual(auth.users.map((u) => u.id).sort());
      for (const file of Object.values(written.seedFiles)) expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(readFileSync(written.seedFiles['fn-check'], 'utf8').trim()).toBe(new TextDecoder().decode(auth.seeds.get('fn-check')));
      writeFileSync(join(dir, 'not-a-seed'), 'hello\n');
      expect(() => clientAuth(join(dir, 'not-a-seed'), 'fn-check')).toThrow(/does not hold a NATS user seed/);
      expect(() => clientAuth(join(dir, 'missing'), 'fn-check')).toThrow(/cannot read the NATS seed file .*missing: ENOENT/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('NATS permissions enforced by nats-server', () => {
  const dir = mkdtempSync(join(tmpdir(), 'petrel-perm-'));
  let server: ChildProcess;
  let url: string;
  let auth: NatsAuth;
  let seedFiles: Record<string, string>;
  let admin: NatsConnection;
  let jsm: JetStreamManager;
  const connections: NatsConnection[] = [];

  const connectAs = async (id: string) => {
    const nc = await connect({ servers: url, ...clientAuth(seedFiles[id], id), maxReconnectAttempts: 0 });
    connections.push(nc);
    return nc;
  };
  /** The permission violations the server reports on a connection, as "<operation> <subject>". */
  const violations = (nc: NatsConnection) => {
    const seen: string[] = [];
    void (async () => {
      for await (const status of nc.status()) {
        if (status.type === 'error' && status.error instanceof PermissionViolationError) seen.push(`${status.error.operation} ${status.error.subject}`);
      }
    })();
    return seen;
  };
  const until = async (check: () => boolean) => {
    for (let i = 0; i < 200 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  };

  beforeAll(async () => {
    auth = natsAuth(app);
    ({ seedFiles } = writeNatsAuth(auth, join(dir, 'auth')));
    const port = await freePort();
    url = `nats://127.0.0.1:${port}`;
    const conf = join(dir, 'server.conf');
    writeFileSync(conf, `listen: "127.0.0.1:${port}"\ninclude "./auth/accounts.conf"\n`);
    server = spawn('nats-server', ['-c', conf, '-js', '-sd', join(dir, 'store')], { stdio: 'ignore' });
    for (let i = 0; ; i++) {
      try {
        admin = await connect({ servers: url, ...clientAuth(seedFiles.admin, 'admin'), maxReconnectAttempts: 0 });
        break;
      } catch (error) {
        if (i > 100) throw error;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    jsm = await jetstreamManager(admin);
    await jsm.streams.add({ name: n.stream, subjects: [n.subjects] });
    for (const [durable, type] of [['check', 'reading.in'], ['notify', 'reading.ok']]) {
      await jsm.consumers.add(n.stream, { durable_name: durable, ack_policy: AckPolicy.Explicit, filter_subject: n.eventSubject(type) });
    }
    await new Kvm(jetstream(admin)).create(n.completions, { history: 1 });
  });

  afterAll(async () => {
    for (const nc of connections) await nc.close().catch(() => undefined);
    await admin?.close().catch(() => undefined);
    server?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a function publishing a type it does not declare, and accepts its declared ones', async () => {
    const nc = await connectAs('fn-check');
    const seen = violations(nc);
    const js = jetstream(nc);
    nc.publish(n.eventSubject('reading.in'), '{}');
    await expect(js.publish(n.eventSubject('not.declared'), '{}', { timeout: 1000 })).rejects.toThrow();
    await until(() => seen.length >= 2);
    expect(seen).toEqual(expect.arrayContaining([`publish ${n.eventSubject('reading.in')}`, `publish ${n.eventSubject('not.declared')}`]));
    const ack = await js.publish(n.eventSubject('reading.ok'), '{"ok":1}');
    expect(ack.stream).toBe(n.stream);
    await js.publish(n.eventSubject('alert raised'), '{}');
    const { state } = await jsm.streams.info(n.stream, { subjects_filter: n.subjects });
    expect(state.subjects).toEqual({ [n.eventSubject('reading.ok')]: 1, [n.eventSubject('alert raised')]: 1 });
  });

  it('lets a function consume and ack its own consumer, and write only its own completion records', async () => {
    await jetstream(admin).publish(n.eventSubject('reading.in'), '{"n":1}');
    const nc = await connectAs('fn-check');
    const seen = violations(nc);
    const js = jetstream(nc);
    const consumer = await js.consumers.get(n.stream, 'check');
    const msg = await consumer.next({ expires: 2000 });
    expect(msg?.json()).toEqual({ n: 1 });
    expect(await msg!.ackAck()).toBe(true);
    expect((await jsm.consumers.info(n.stream, 'check')).num_ack_pending).toBe(0);

    const kv = await new Kvm(js).open(n.completions, { allow_direct: true });
    await kv.create(recordKey('check', 'event-1'), 'done');
    expect((await kv.get(recordKey('check', 'event-1')))?.string()).toBe('done');
    await expect(kv.create(recordKey('notify', 'event-1'), 'forged')).rejects.toThrow();
    await until(() => seen.some((s) => s.includes('.notify.')));
    expect(seen).toContain(`publish $KV.${n.completions}.${recordKey('notify', 'event-1')}`);
  });

  it("refuses a function consuming another function's consumer or reading its inbox", async () => {
    await jetstream(admin).publish(n.eventSubject('reading.ok'), '{"secret":true}');
    const nc = await connectAs('fn-check');
    const seen = violations(nc);
    const js = jetstream(nc);
    await expect(js.consumers.get(n.stream, 'notify')).rejects.toThrow();
    await expect(nc.request(`$JS.API.CONSUMER.MSG.NEXT.${n.stream}.notify`, '{"batch":1}', { timeout: 1000 })).rejects.toThrow();
    nc.subscribe('_INBOX_fn-notify.>');
    await until(() => seen.length >= 3);
    expect(seen).toEqual(
      expect.arrayContaining([`publish $JS.API.CONSUMER.INFO.${n.stream}.notify`, `publish $JS.API.CONSUMER.MSG.NEXT.${n.stream}.notify`, 'subscription _INBOX_fn-notify.>']),
    );
    // The message is still there for its own function.
    const info = await jsm.consumers.info(n.stream, 'notify');
    expect(info.num_pending + info.num_ack_pending).toBeGreaterThan(0);
    expect(info.delivered.consumer_seq).toBe(0);
  });

  it('lets the ingress publish the app types only', async () => {
    const nc = await connectAs('ingress');
    const seen = violations(nc);
    const js = jetstream(nc);
    await js.publish(n.eventSubject('reading.in'), '{}');
    await js.publish(n.eventSubject('reading.anything.deeper'), '{}');
    await expect(js.publish(n.eventSubject('other.type'), '{}', { timeout: 1000 })).rejects.toThrow();
    await expect(jetstreamManager(nc)).rejects.toThrow();
    await until(() => seen.length >= 2);
    expect(seen).toEqual(expect.arrayContaining([`publish ${n.eventSubject('other.type')}`, 'publish $JS.API.INFO']));
  });
});
