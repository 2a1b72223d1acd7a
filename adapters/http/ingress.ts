/**
 * The HTTP ingress every non-AWS target shares: `POST /events` (CloudEvents binding), the app's
 * http triggers, dead-letter administration, `/metrics` and `/healthz`. Every error is a JSON
 * body `{ "error": "...", ... }` with a 4xx/5xx status; nothing a client sends stops the process.
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import { traceparentFor } from '../../core/event.js';
import { BODY_LIMIT, httpRequestEvent } from '../../core/http.js';
import type { Logger } from '../../core/ports.js';
import type { DeviceAuth } from './auth.js';
import { BindingError, toCloudEvents } from './binding.js';
import type { IngressTarget } from './types.js';

export { BODY_LIMIT };

export interface IngressOptions {
  logger: Logger;
  /** Extra routes mounted before the app's own (e.g. the console). */
  extend?: (router: express.Router) => void;
  /** Checks requests to http triggers marked `auth: 'device'`; without it they are all refused. */
  deviceAuth?: DeviceAuth;
}

export function createIngress(target: IngressTarget, options: IngressOptions): express.Express {
  const server = express();
  server.disable('x-powered-by');
  server.set('etag', false);
  const raw = express.raw({ type: () => true, limit: BODY_LIMIT });

  server.get('/healthz', (_req, res) => {
    const health = target.health();
    res.status(health.ok ? 200 : 503).json(health);
  });

  server.get('/metrics', async (_req, res, next) => {
    try {
      res.type(target.metrics.registry.contentType).send(await target.metrics.registry.metrics());
    } catch (error) {
      next(error);
    }
  });

  server.post('/events', shed(target), raw, async (req, res, next) => {
    try {
      const events = toCloudEvents(req.headers, bodyOf(req));
      const now = new Date().toISOString();
      for (const event of events) {
        event.ingesttime ??= now;
        event.traceparent ??= traceparentFor(event.id, req.header('traceparent'));
      }
      await target.publish(events);
      target.metrics.accepted.inc(events.length);
      res.status(202).json({ accepted: events.length, ids: events.map((e) => e.id) });
    } catch (error) {
      next(error);
    }
  });

  const admin = express.Router();
  admin.get('/dead-letters', async (req, res) => {
    res.json(await target.deadLetters.list(typeof req.query.function === 'string' ? req.query.function : undefined));
  });
  admin.get('/dead-letters/:id', async (req, res) => {
    const letter = await target.deadLetters.get(req.params.id);
    if (!letter) return void res.status(404).json({ error: `no dead letter with id "${req.params.id}"` });
    res.json(letter);
  });
  admin.post('/dead-letters/:id/redrive', async (req, res) => {
    if (!(await target.deadLetters.redrive(req.params.id))) return void res.status(404).json({ error: `no dead letter with id "${req.params.id}"` });
    res.json({ redriven: 1 });
  });
  admin.post('/dead-letters-redrive', async (req, res) => {
    res.json({ redriven: await target.deadLetters.redriveAll(typeof req.query.function === 'string' ? req.query.function : undefined) });
  });
  server.use('/admin', admin);

  if (options.extend) {
    const extra = express.Router();
    options.extend(extra);
    server.use(extra);
  }

  const deviceAuth = options.deviceAuth?.middleware() ?? noDeviceKeys;
  for (const fn of target.app.functions) {
    const trigger = fn.spec.trigger;
    if (trigger.kind !== 'http') continue;
    const route = express.Router();
    const guard = trigger.auth === 'device' ? [deviceAuth] : [];
    route[trigger.method.toLowerCase() as 'get'](trigger.path, shed(target), raw, ...guard, async (req: Request, res: Response, next: NextFunction) => {
      try {
        const request = { method: req.method, path: req.path, params: req.params as Record<string, string>, query: req.query, headers: req.headers, body: bodyOf(req) };
        const response = await target.invokeHttp(fn, httpRequestEvent(target.app, fn, request));
        res.status(response.status ?? 200);
        for (const [name, value] of Object.entries(response.headers ?? {})) res.setHeader(name, value);
        if (response.body === undefined) res.end();
        else res.json(response.body);
      } catch (error) {
        next(error);
      }
    });
    server.use(route);
  }

  server.use((req, res) => {
    res.status(404).json({ error: `no route for ${req.method} ${req.path}` });
  });

  server.use((error: unknown, req: Request, res: Response, _next: NextFunction) => {
    const status = errorStatus(error);
    if (status >= 500) options.logger.error({ err: error, method: req.method, path: req.path }, 'request failed');
    if (res.headersSent) return void res.end();
    res.status(status).json(errorBody(error, status));
  });
  return server;
}

function noDeviceKeys(_req: Request, res: Response): void {
  res.status(401).json({ error: 'this endpoint needs device authentication, and no device keys are configured (PETREL_API_KEYS or PETREL_API_KEYS_FILE)' });
}

function shed(target: IngressTarget) {
  return (_req: Request, res: Response, next: NextFunction) => {
    if (!target.overloaded()) return next();
    res.setHeader('Retry-After', '1');
    res.status(429).json({ error: 'backlog is over its bound; retry after 1 s' });
  };
}

function bodyOf(req: Request): Buffer {
  return Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
}

/** The HTTP status for an error a request ended with (a 4xx the error names, else 500). */
export function errorStatus(error: unknown): number {
  if (error instanceof BindingError) return error.status;
  const e = error as { status?: unknown; type?: string };
  if (typeof e.status === 'number' && e.status >= 400 && e.status < 600) return e.status;
  return 500;
}

/** The JSON body for that error: its message for a 4xx; nothing internal for a 5xx. */
export function errorBody(error: unknown, status: number): Record<string, unknown> {
  if (error instanceof BindingError) return { error: error.message, ...(error.details ? { details: error.details } : {}) };
  const e = error as { type?: string; message?: string };
  if (e.type === 'entity.too.large') return { error: `the body is larger than the ${BODY_LIMIT / 1024} KiB limit` };
  if (status < 500 && e.message) return { error: e.message };
  // Internal errors may carry secrets (connection strings, tokens): the detail goes to the log only.
  return { error: 'internal error; see the server log' };
}
