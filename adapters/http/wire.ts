/**
 * The hot routes on the wire: which requests they are, their bodies in and JSON replies out on
 * node:http, and the messages between the ingress thread (thread-worker.ts) and the runtime's
 * (thread.ts). The same bytes whether the runtime's thread serves them (hot-routes.ts) or the
 * ingress thread does. Kept apart from hot-routes.ts so the ingress thread loads little.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BODY_LIMIT, bodyTooLarge } from '../../core/http.js';

/** A method and path pattern served without express (HEAD is served as GET). */
export interface HotRoute {
  method: string;
  pattern: RegExp;
}

/** Whether `routes` serve `method url`: one test, so the ingress thread sorts requests as the runtime's thread does. */
export function servesRequest(routes: readonly HotRoute[], method: string | undefined, url: string | undefined): boolean {
  const verb = method === 'HEAD' ? 'GET' : (method ?? 'GET');
  const path = pathOf(url ?? '/');
  return routes.some((route) => route.method === verb && route.pattern.test(path));
}

export function pathOf(url: string): string {
  const mark = url.indexOf('?');
  return mark < 0 ? url : url.slice(0, mark);
}

/** A request to a hot route with its body read: what the ingress thread hands the runtime's. */
export interface HotRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Uint8Array;
  /** When it arrived (epoch ms), so its ingest time counts any wait for the runtime's thread. */
  receivedAt: number;
}

/** What the ingress thread starts with. */
export interface ThreadSetup {
  port: number;
  host: string;
  /** Where the runtime's thread serves everything else (express), on 127.0.0.1. */
  restPort: number;
  routes: HotRoute[];
  /** Hot requests waiting for the runtime's thread at most; past it the thread answers 429. */
  maxWaiting: number;
}

/** Messages from the ingress thread. */
export type FromIngressThread =
  | { kind: 'listening'; address: AddressInfo }
  /** It could not listen; the message says why (a taken port, what to do). */
  | { kind: 'failed'; message: string }
  | { kind: 'request'; id: number; request: HotRequest };

/** Messages to the ingress thread. */
export type ToIngressThread = { kind: 'reply'; id: number; reply: WireReply } | { kind: 'stop-accepting' } | { kind: 'close' };

/** A reply ready to write: what crosses between the ingress thread and the runtime's. */
export interface WireReply {
  status: number;
  headers: Record<string, string | number>;
  /** The JSON body, or '' for none. */
  text: string;
}

/** The reply of `body` as JSON (none when undefined), with content-type unless `headers` name one. */
export function jsonReply(status: number, body: unknown, headers: Record<string, string> = {}): WireReply {
  const text = body === undefined ? '' : JSON.stringify(body);
  const all: Record<string, string | number> = { ...headers };
  if (text && !Object.keys(all).some((name) => name.toLowerCase() === 'content-type')) all['content-type'] = 'application/json; charset=utf-8';
  all['content-length'] = Buffer.byteLength(text);
  return { status, headers: all, text };
}

/** An error's JSON reply: a body cut off at the limit (413) is still arriving, so that one closes the connection rather than read it. */
export function errorReply(status: number, body: Record<string, unknown>): WireReply {
  return jsonReply(status, body, status === 413 ? { connection: 'close' } : undefined);
}

/** Writes `reply` (no body for HEAD). */
export function writeReply(res: ServerResponse, method: string | undefined, reply: WireReply): void {
  if (res.headersSent) return void res.end();
  res.writeHead(reply.status, reply.headers);
  res.end(method === 'HEAD' ? undefined : reply.text);
}

/** The request body, up to BODY_LIMIT bytes (a longer one is a 413: answer it with `connection: close`, the rest is still arriving). */
export function readBody(req: IncomingMessage): Promise<Buffer> {
  if (Number(req.headers['content-length'] ?? 0) > BODY_LIMIT) return Promise.reject(bodyTooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    req.on('data', (chunk: Buffer) => {
      length += chunk.length;
      if (length > BODY_LIMIT) {
        req.removeAllListeners('data');
        reject(bodyTooLarge());
      } else chunks.push(chunk);
    });
    req.once('end', () => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)));
    req.once('error', reject);
  });
}
