/**
 * How an app maps onto NATS names. One stream per app holds its events on
 * `petrel.<app>.<type tokens>`: the CloudEvent type split on "." with each token encoded so any
 * type is a valid subject (bytes outside [A-Za-z0-9_-] become %XX, an empty token becomes "%").
 * Dead letters live on a second stream, `petrel-dlq.<app>.<function>.<letter id>`.
 */
import { createHash } from 'node:crypto';

const PLAIN = /^[A-Za-z0-9_-]+$/;

export function encodeToken(token: string): string {
  if (token === '') return '%';
  if (PLAIN.test(token)) return token;
  let out = '';
  for (const byte of Buffer.from(token, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9_-]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

export const names = (app: string) => ({
  stream: `petrel-${app}`,
  subjects: `petrel.${app}.>`,
  deadLetterStream: `petrel-${app}-dlq`,
  deadLetterSubjects: `petrel-dlq.${app}.>`,
  /** KV: completion records of functions that use no PostgreSQL tables. */
  completions: `petrel-${app}-done`,
  /** KV: each failing (function, event)'s attempt history until it succeeds or is dead-lettered. */
  attempts: `petrel-${app}-attempts`,
  objectStore: (bucket: string) => `petrel-${app}-${bucket}`,
  eventSubject: (type: string) => `petrel.${app}.${type.split('.').map(encodeToken).join('.')}`,
  deadLetterSubject: (fn: string, letterId: string) => `petrel-dlq.${app}.${fn}.${letterId}`,
  deadLetterFilter: (fn?: string) => (fn ? `petrel-dlq.${app}.${encodeToken(fn)}.*` : `petrel-dlq.${app}.>`),
});

/**
 * The subject a function's durable consumer filters on: the type's own subject when the pattern
 * names exactly one type; otherwise the app's whole subject space (nats-server 2.9 takes one
 * filter subject), and core/pattern decides per message.
 */
export function filterSubject(app: string, pattern: Record<string, unknown> | undefined): string {
  const type = pattern?.type;
  if (Array.isArray(type) && type.length === 1 && typeof type[0] === 'string') return names(app).eventSubject(type[0]);
  return names(app).subjects;
}

/** A KV key for (function, event key): KV keys allow only [-/_=.a-zA-Z0-9]. */
export function recordKey(fn: string, eventKey: string): string {
  return `${fn}.${createHash('sha256').update(eventKey).digest('base64url')}`;
}
