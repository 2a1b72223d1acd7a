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
import { httpRequestEvent, matchRoute, routePattern } from '../../core/http.js';
import type { Logger } from '../../core/ports.js';
import { DEVICE_AUTH_CHALLENGE, NO_DEVICE_KEYS, type DeviceAuth } from './auth.js';
import { toCloudEvents } from './binding.js';
import { errorBody, errorStatus } from './errors.js';
import type { IngressTarget } from './types.js';
import { errorReply, jsonReply, pathOf, readBody, servesRequest, writeReply, type HotRequest, type HotRoute, type WireReply } from './wire.js';

interface TriggerRoute {
  fn: AppFunction;
  trigger: HttpTrigger;
}

export class HotRoutes {
  private readonly triggers: TriggerRoute[] = [];
  /** POST /events first, then the http triggers in the app's order (the first match serves). */
  readonly routes: HotRoute[] = [{ method: 'POST', pattern: /^\/events$/ }];

  constructor(
    private readonly target: IngressTarget,
    private readonly logger: Logger,
    private readonly deviceAuth: DeviceAuth | undefined,
  ) {
    for (const fn of target.app.functions) {
      if (fn.spec.trigger.kind !== 'http') continue;
      this.triggers.push({ fn, trigger: fn.spec.trigger });
      this.routes.push({ method: fn.spec.trigger.method, pattern: routePattern(fn.spec.trigger.path).pattern });
    }
  }

  /** Serves the request and returns true, or returns false (having touched nothing) to leave it to express. */
  serve(req: IncomingMessage, res: ServerResponse): boolean {
    if (!servesRequest(this.routes, req.method, req.url)) return false;
    const receivedAt = Date.now();
    void readBody(req)
      .then((body) => this.answer({ method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers, body, receivedAt }))
      .catch((error: unknown) => this.replyToError(error, req.method, req.url))
      .then((reply) => writeReply(res, req.method, reply))
      .catch((error: unknown) => this.logger.error({ err: error, method: req.method, path: req.url }, 'could not answer a request'));
    return true;
  }

  /** The reply to a request served here; an error becomes its JSON error reply (5xx are logged, their detail is not sent). */
  answer(request: HotRequest): Promise<WireReply> {
    return this.route(request).catch((error: unknown) => this.replyToError(error, request.method, request.url));
  }

  private async route(request: HotRequest): Promise<WireReply> {
    const url = request.url;
    const path = pathOf(url);
    const search = url.slice(path.length + 1);
    const method = request.method === 'HEAD' ? 'GET' : request.method;
    if (method === 'POST' && path === '/events') return this.publish(request);
    for (const route of this.triggers) {
      if (route.trigger.method !== method) continue;
      const params = matchRoute(route.trigger.path, path);
      if (params) return this.invoke(route, request, path, params, search);
    }
    return jsonReply(404, { error: `no route for ${request.method} ${path}` });
  }

  private async publish(request: HotRequest): Promise<WireReply> {
    const shed = this.shed();
    if (shed) return shed;
    const events = toCloudEvents(request.headers, Buffer.from(request.body.buffer, request.body.byteOffset, request.body.byteLength));
    const now = new Date(request.receivedAt).toISOString();
    const parent = single(request.headers.traceparent);
    for (const event of events) {
      event.ingesttime ??= now;
      event.traceparent ??= traceparentFor(event.id, parent);
    }
    await this.target.publish(events);
    this.target.metrics.accepted.inc(events.length);
    return jsonReply(202, { accepted: events.length, ids: events.map((e) => e.id) });
  }

  private async invoke({ fn, trigger }: TriggerRoute, request: HotRequest, path: string, params: Record<string, string>, search: string): Promise<WireReply> {
    const shed = this.shed();
    if (shed) return shed;
    const { body, headers } = request;
    if (trigger.auth === 'device') {
      if (!this.deviceAuth) return jsonReply(401, { error: NO_DEVICE_KEYS });
      const result = this.deviceAuth.verify(headers, body);
      if (!result.ok) return jsonReply(401, { error: result.reason }, DEVICE_AUTH_CHALLENGE);
    }
    const parts = { method: request.method, path, params, query: parseQuery(search), headers, body, receivedAt: request.receivedAt };
    const response = await this.target.invokeHttp(fn, httpRequestEvent(this.target.app, fn, parts));
    return jsonReply(response.status ?? 200, response.body, response.headers);
  }

  private shed(): WireReply | undefined {
    if (!this.target.overloaded()) return undefined;
    return jsonReply(429, { error: 'backlog is over its bound; retry after 1 s' }, { 'retry-after': '1' });
  }

  private replyToError(error: unknown, method: string | undefined, url: string | undefined): WireReply {
    const status = errorStatus(error);
    if (status >= 500) this.logger.error({ err: error, method, path: url }, 'request failed');
    return errorReply(status, errorBody(error, status));
  }
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
