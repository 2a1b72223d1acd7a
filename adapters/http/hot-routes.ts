/**
 * The ingress's busy routes, served on node:http without express: `POST /events` and the app's
 * http triggers (a sensor's `POST /readings`). Express's routing, body parsing and response
 * helpers cost about two thirds of a small request's CPU (bare node:http answered 7.7-10k
 * requests/s where bare express answered 3.2-3.5k, same client, same machine); everything else
 * (admin, metrics, health, the console) stays on express, which gets every request not served here.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseQuery } from 'node:querystring';
import type { AppFunction, HttpTrigger } from '../../core/app.js';
import { traceparentFor } from '../../core/event.js';
import { BODY_LIMIT, HttpRequestError, httpRequestEvent, matchRoute } from '../../core/http.js';
import type { Logger } from '../../core/ports.js';
import { DEVICE_AUTH_CHALLENGE, NO_DEVICE_KEYS, type DeviceAuth } from './auth.js';
import { toCloudEvents } from './binding.js';
import { errorBody, errorStatus } from './errors.js';
import type { IngressTarget } from './types.js';

interface TriggerRoute {
  fn: AppFunction;
  trigger: HttpTrigger;
}

export class HotRoutes {
  private readonly routes: TriggerRoute[] = [];

  constructor(
    private readonly target: IngressTarget,
    private readonly logger: Logger,
    private readonly deviceAuth: DeviceAuth | undefined,
  ) {
    for (const fn of target.app.functions) {
      if (fn.spec.trigger.kind === 'http') this.routes.push({ fn, trigger: fn.spec.trigger });
    }
  }

  /** Serves the request and returns true, or returns false (having touched nothing) to leave it to express. */
  serve(req: IncomingMessage, res: ServerResponse): boolean {
    const url = req.url ?? '/';
    const mark = url.indexOf('?');
    const path = mark < 0 ? url : url.slice(0, mark);
    const method = req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET');
    if (method === 'POST' && path === '/events') {
      this.respond(res, req, this.publish(req));
      return true;
    }
    for (const route of this.routes) {
      if (route.trigger.method !== method) continue;
      let params: Record<string, string> | undefined;
      try {
        params = matchRoute(route.trigger.path, path);
      } catch (error) {
        this.respond(res, req, Promise.reject(error));
        return true;
      }
      if (!params) continue;
      this.respond(res, req, this.invoke(route, req, path, params, mark < 0 ? '' : url.slice(mark + 1)));
      return true;
    }
    return false;
  }

  private async publish(req: IncomingMessage): Promise<Reply> {
    const shed = this.shed();
    if (shed) return shed;
    const events = toCloudEvents(req.headers, await readBody(req));
    const now = new Date().toISOString();
    const parent = single(req.headers.traceparent);
    for (const event of events) {
      event.ingesttime ??= now;
      event.traceparent ??= traceparentFor(event.id, parent);
    }
    await this.target.publish(events);
    this.target.metrics.accepted.inc(events.length);
    return { status: 202, body: { accepted: events.length, ids: events.map((e) => e.id) } };
  }

  private async invoke({ fn, trigger }: TriggerRoute, req: IncomingMessage, path: string, params: Record<string, string>, search: string): Promise<Reply> {
    const shed = this.shed();
    if (shed) return shed;
    const body = await readBody(req);
    if (trigger.auth === 'device') {
      if (!this.deviceAuth) return { status: 401, body: { error: NO_DEVICE_KEYS } };
      const result = this.deviceAuth.verify(req.headers, body);
      if (!result.ok) return { status: 401, headers: DEVICE_AUTH_CHALLENGE, body: { error: result.reason } };
    }
    const request = { method: req.method ?? 'GET', path, params, query: parseQuery(search), headers: req.headers, body };
    const response = await this.target.invokeHttp(fn, httpRequestEvent(this.target.app, fn, request));
    return { status: response.status ?? 200, headers: response.headers, body: response.body };
  }

  private shed(): Reply | undefined {
    if (!this.target.overloaded()) return undefined;
    return { status: 429, headers: { 'retry-after': '1' }, body: { error: 'backlog is over its bound; retry after 1 s' } };
  }

  /** Writes the reply, or the JSON error the request ended with (5xx are logged, their detail is not sent). */
  private respond(res: ServerResponse, req: IncomingMessage, reply: Promise<Reply>): void {
    reply
      .catch((error: unknown): Reply => {
        const status = errorStatus(error);
        if (status >= 500) this.logger.error({ err: error, method: req.method, path: req.url }, 'request failed');
        // A body cut off at the limit is still arriving: close the connection rather than read it.
        return { status, headers: status === 413 ? { connection: 'close' } : undefined, body: errorBody(error, status) };
      })
      .then((r) => {
        if (res.headersSent) return void res.end();
        const text = r.body === undefined ? '' : JSON.stringify(r.body);
        const headers: Record<string, string | number> = { ...r.headers };
        if (r.body !== undefined && !Object.keys(headers).some((name) => name.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json; charset=utf-8';
        headers['content-length'] = Buffer.byteLength(text);
        res.writeHead(r.status, headers);
        res.end(req.method === 'HEAD' ? undefined : text);
      })
      .catch((error: unknown) => this.logger.error({ err: error, method: req.method, path: req.url }, 'could not answer a request'));
  }
}

interface Reply {
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
}

/** The request body, up to BODY_LIMIT bytes (a longer one is a 413). */
function readBody(req: IncomingMessage): Promise<Buffer> {
  const tooLarge = () => new HttpRequestError(413, `the body is larger than the ${BODY_LIMIT / 1024} KiB limit`);
  if (Number(req.headers['content-length'] ?? 0) > BODY_LIMIT) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    req.on('data', (chunk: Buffer) => {
      length += chunk.length;
      if (length > BODY_LIMIT) {
        req.removeAllListeners('data');
        reject(tooLarge());
      } else chunks.push(chunk);
    });
    req.once('end', () => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
