/**
 * NATS authorization derived from the app description: one account per app (JetStream enabled),
 * and in it one nkey user per function, one for the ingress and one admin.
 *
 * - A function's user may publish only the event types in its `emits`, pull from and acknowledge
 *   only its own durable consumer, write only its own completion / attempt records (their KV keys
 *   start with the function's name) and dead letters, and receive replies only on an inbox prefix
 *   of its own, so it cannot read what is delivered to another function.
 * - The ingress user may publish the app's event types: those some trigger matches or some
 *   function emits (the app's whole subject space where a pattern does not narrow the type).
 * - The admin user may do anything in the app's account: streams, consumers, KV, redrives.
 *
 * The server configuration holds public keys only; each private seed goes to a file of its own,
 * readable by its owner only (mode 0600), and appears in no log or error.
 */
import { nkeyAuthenticator, nkeys, type Authenticator } from '@nats-io/transport-node';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { triggerPattern, type App, type AppFunction } from '../../core/app.js';
import { names } from './subjects.js';

export type NatsRole = 'function' | 'ingress' | 'admin';

export interface NatsPermissions {
  publish: { allow: string[] };
  subscribe: { allow: string[] };
}

export interface NatsUser {
  /** `fn-<function>`, `ingress` or `admin`. */
  id: string;
  role: NatsRole;
  /** The function, for a function's user. */
  fn?: string;
  /** Public nkey (starts with U): what the server configuration holds. */
  nkey: string;
  /** The client's inbox prefix (connect option `inboxPrefix`); the only replies it may receive. */
  inboxPrefix: string;
  permissions: NatsPermissions;
}

export interface NatsAuth {
  /** The app's account name. */
  account: string;
  users: NatsUser[];
  /** Private seeds by user id: for credential files only. A Map, so that logging the object shows none. */
  seeds: ReadonlyMap<string, Uint8Array>;
}

export function inboxPrefixFor(userId: string): string {
  return `_INBOX_${userId}`;
}

/** The subjects of the event types the pattern can match: exact types, a type prefix ending in ".", or else the app's whole space. */
function patternSubjects(app: App, pattern: Record<string, unknown>): string[] {
  const n = names(app.name);
  const type = pattern.type;
  if (!Array.isArray(type)) return [n.subjects];
  return type.map((value) => {
    if (typeof value === 'string') return n.eventSubject(value);
    const prefix = (value as { prefix?: unknown } | null)?.prefix;
    // "a.b." is every type of two or more tokens after a.b: the subject petrel.<app>.a.b.>
    if (typeof prefix === 'string' && prefix.length > 1 && prefix.endsWith('.')) return `${n.eventSubject(prefix.slice(0, -1))}.>`;
    return n.subjects;
  });
}

/** What the ingress may publish: every event type a trigger matches or a function emits. */
export function ingressSubjects(app: App): string[] {
  const n = names(app.name);
  const subjects = new Set<string>();
  for (const fn of app.functions) {
    const pattern = triggerPattern(fn.spec.trigger, fn.name);
    if (pattern) for (const subject of patternSubjects(app, pattern)) subjects.add(subject);
    for (const type of fn.emits) subjects.add(n.eventSubject(type));
  }
  return subjects.has(n.subjects) ? [n.subjects] : [...subjects].sort();
}

export function functionPermissions(app: App, fn: AppFunction): NatsPermissions {
  const n = names(app.name);
  const { stream } = n;
  const consumer = fn.name;
  const records = [n.completions, n.attempts].flatMap((bucket) => [
    `$KV.${bucket}.${fn.name}.>`,
    `$JS.API.DIRECT.GET.KV_${bucket}.$KV.${bucket}.${fn.name}.>`,
    `$JS.API.STREAM.INFO.KV_${bucket}`,
  ]);
  return {
    publish: {
      allow: [
        ...[...fn.emits].map((type) => n.eventSubject(type)),
        `$JS.API.CONSUMER.INFO.${stream}.${consumer}`,
        `$JS.API.CONSUMER.MSG.NEXT.${stream}.${consumer}`,
        // Acks go to the message's reply subject: $JS.ACK.<stream>.<consumer>.<...> (with domain and account hash tokens in the v2 form).
        `$JS.ACK.${stream}.${consumer}.>`,
        `$JS.ACK.*.*.${stream}.${consumer}.>`,
        ...records,
        `petrel-dlq.${app.name}.${fn.name}.>`,
      ],
    },
    subscribe: { allow: [`${inboxPrefixFor(`fn-${fn.name}`)}.>`] },
  };
}

/** Generates the app's users with fresh nkeys. */
export function natsAuth(app: App): NatsAuth {
  const seeds = new Map<string, Uint8Array>();
  const user = (id: string, role: NatsRole, permissions: NatsPermissions, fn?: string): NatsUser => {
    const pair = nkeys.createUser();
    seeds.set(id, pair.getSeed());
    return { id, role, ...(fn ? { fn } : {}), nkey: pair.getPublicKey(), inboxPrefix: inboxPrefixFor(id), permissions };
  };
  const users = [
    ...app.functions.filter((fn) => fn.pattern).map((fn) => user(`fn-${fn.name}`, 'function', functionPermissions(app, fn), fn.name)),
    user('ingress', 'ingress', { publish: { allow: ingressSubjects(app) }, subscribe: { allow: [`${inboxPrefixFor('ingress')}.>`] } }),
    user('admin', 'admin', { publish: { allow: ['>'] }, subscribe: { allow: ['>'] } }),
  ];
  return { account: `petrel-${app.name}`, users, seeds };
}

/**
 * The nats-server `accounts` block: JSON values (valid nats-server configuration, every subject
 * quoted so that `$` is never read as a variable), each user under a comment naming it.
 */
export function accountsConfig(auth: NatsAuth): string {
  const indent = (text: string, by: string) => text.replace(/\n/g, `\n${by}`);
  const users = auth.users.map((u) => `      # ${u.id}\n      ${indent(JSON.stringify({ nkey: u.nkey, permissions: u.permissions }, null, 2), '      ')}`);
  return `accounts {\n  ${JSON.stringify(auth.account)}: {\n    jetstream: enabled\n    users: [\n${users.join(',\n')}\n    ]\n  }\n}\n`;
}

/**
 * Writes `<dir>/accounts.conf` (include it from the server configuration) and one seed file per
 * user, `<dir>/<user id>.nk`, mode 0600, in a directory of mode 0700.
 */
export function writeNatsAuth(auth: NatsAuth, dir: string): { configFile: string; seedFiles: Record<string, string> } {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const configFile = join(dir, 'accounts.conf');
  writeFileSync(configFile, accountsConfig(auth), { mode: 0o644 });
  const seedFiles: Record<string, string> = {};
  for (const [id, seed] of auth.seeds) {
    const file = join(dir, `${id}.nk`);
    writeFileSync(file, `${new TextDecoder().decode(seed)}\n`, { mode: 0o600 });
    chmodSync(file, 0o600); // an existing file keeps its mode through writeFileSync
    seedFiles[id] = file;
  }
  return { configFile, seedFiles };
}

/** Connect options for a user: its nkey (from its seed file) and its inbox prefix. */
export function clientAuth(seedFile: string, userId: string): { authenticator: Authenticator; inboxPrefix: string } {
  let seed: string;
  try {
    seed = readFileSync(seedFile, 'utf8').trim();
  } catch (error) {
    throw new Error(`cannot read the NATS seed file ${seedFile}: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}`);
  }
  if (!seed.startsWith('SU')) throw new Error(`${seedFile} does not hold a NATS user seed (it should start with SU)`);
  return { authenticator: nkeyAuthenticator(new TextEncoder().encode(seed)), inboxPrefix: inboxPrefixFor(userId) };
}
