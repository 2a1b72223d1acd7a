/**
 * An HTTP request as the CloudEvent an http-triggered handler receives. Every ingress builds it
 * here (the express ingress, API Gateway on Lambda), so a handler sees the same event on every
 * target: the same headers (minus secrets), the same ids, the same errors for a bad body.
 */
import { HTTP_REQUEST_TYPE, type App, type AppFunction, type HttpRequestData } from './app.js';
import { newEventId, traceparentFor, type CloudEvent } from './event.js';

/** The largest request body an ingress accepts (also EventBridge's largest event). */
export const BODY_LIMIT = 256 * 1024;

/** Request headers that may carry secrets; never copied into events or logs. */
export const SECRET_HEADERS: ReadonlySet<string> = new Set(['authorization', 'cookie', 'proxy-authorization', 'x-api-key', 'x-amz-security-token']);

/** A request that cannot become an event; `status` is the 4xx to answer, the message says why. */
export class HttpRequestError extends Error {
  override name = 'HttpRequestError';

  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** The 413 for a body over BODY_LIMIT: one message wherever a body is refused for its size. */
export function bodyTooLarge(): HttpRequestError {
  return new HttpRequestError(413, `the body is larger than the ${BODY_LIMIT / 1024} KiB limit`);
}

/** What an ingress knows about a request once it has routed it. */
export interface HttpRequestParts {
  method: string;
  path: string;
  params: Record<string, string>;
  query: Record<string, unknown>;
  /** Header names in lower case, as Node gives them. */
  headers: Record<string, string | string[] | undefined>;
  body?: Uint8Array;
  /** When the request arrived (epoch ms): its event's ingest time. Default: now. */
  receivedAt?: number;
}

/** The media type of a Content-Type header, lower case, without parameters. */
export function mediaType(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0].trim().toLowerCase();
}

function header(headers: HttpRequestParts['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

/** The event for an http-triggered function; throws HttpRequestError (413, 415, 400) for a body it cannot take. */
export function httpRequestEvent(app: App, fn: AppFunction, request: HttpRequestParts): CloudEvent<HttpRequestData> {
  const body = request.body ?? new Uint8Array();
  if (body.byteLength > BODY_LIMIT) throw bodyTooLarge();
  let data: unknown;
  if (body.byteLength > 0) {
    const type = mediaType(header(request.headers, 'content-type'));
    if (type !== 'application/json' && !type.endsWith('+json')) {
      throw new HttpRequestError(415, `expected Content-Type application/json, got "${type || 'none'}"`);
    }
    try {
      data = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
    } catch (error) {
      throw new HttpRequestError(400, `the body is not valid JSON: ${(error as Error).message}`);
    }
  }
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    if (!SECRET_HEADERS.has(name) && typeof value === 'string') headers[name] = value;
  }
  // A client's Idempotency-Key makes a resent request derive the same event ids downstream.
  const key = header(request.headers, 'idempotency-key');
  const id = key && key.length <= 200 ? `${fn.name}:${key}` : newEventId();
  const now = new Date(request.receivedAt ?? Date.now()).toISOString();
  return {
    specversion: '1.0',
    id,
    source: `petrel/${app.name}/http`,
    type: HTTP_REQUEST_TYPE,
    time: now,
    subject: request.path,
    datacontenttype: 'application/json',
    data: { method: request.method, path: request.path, params: request.params, query: request.query, headers, body: data },
    traceparent: traceparentFor(id, header(request.headers, 'traceparent')),
    ingesttime: now,
  };
}

/** A `:name` segment of a route. */
export const ROUTE_PARAM = /^:([A-Za-z_$][\w$]*)$/;

/** A route template compiled: what it matches, and the names of its `:name` segments in order. */
export interface RoutePattern {
  /** Case-insensitive, optional trailing slash, each `:name` one non-empty segment (as express matches). */
  pattern: RegExp;
  params: string[];
}

const compiledRoutes = new Map<string, RoutePattern>();

/** The pattern of an http trigger's route template (compiled once per template). */
export function routePattern(template: string): RoutePattern {
  let route = compiledRoutes.get(template);
  if (!route) {
    const trimmed = template.length > 1 && template.endsWith('/') ? template.slice(0, -1) : template;
    const params: string[] = [];
    const source = trimmed.split('/').map((segment) => {
      const param = ROUTE_PARAM.exec(segment);
      if (!param) return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      params.push(param[1]);
      return '([^/]+)';
    });
    route = { pattern: new RegExp(`^${source.join('/')}/?$`, 'i'), params };
    compiledRoutes.set(template, route);
  }
  return route;
}

/**
 * Path parameters when `path` matches an http trigger's route (routePattern), else undefined;
 * every ingress routes with it.
 */
export function matchRoute(template: string, path: string): Record<string, string> | undefined {
  const { pattern, params } = routePattern(template);
  const match = pattern.exec(path);
  if (!match) return undefined;
  const values: Record<string, string> = {};
  params.forEach((name, i) => {
    try {
      values[name] = decodeURIComponent(match[i + 1]);
    } catch {
      throw new HttpRequestError(400, `path parameter "${name}" is not valid percent-encoding`);
    }
  });
  return values;
}
