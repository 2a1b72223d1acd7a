/**
 * The HTTP ingress every non-AWS target shares: `POST /events` (CloudEvents binding), the app's
 * http triggers, dead-letter administration, `/metrics` and `/healthz`. Every error is a JSON
 * body `{ "error": "...", ... }` with a 4xx/5xx status; nothing a client sends stops the process.
 *
 * The busy routes (events and triggers) are served by hot-routes.ts on node:http; express serves
 * the rest, and answers 404 for what nobody serves. Both in one thread (`inOneThread`), or the
 * hot routes' HTTP work on a thread of its own (thread.ts).
 */
import type { RequestListener } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import { BODY_LIMIT } from '../../core/http.js';
import type { Logger } from '../../core/ports.js';
import type { DeviceAuth } from './auth.js';
import { errorBody, errorStatus } from './errors.js';
import { HotRoutes } from './hot-routes.js';
import type { IngressTarget } from './types.js';

export { BODY_LIMIT };

export interface IngressOptions {
  logger: Logger;
  /** Extra routes (e.g. the console), served when neither `/events` nor an http trigger matches. */
  extend?: (router: express.Router) => void;
  /** Checks requests to http triggers marked `auth: 'device'`; without it they are all refused. */
  deviceAuth?: DeviceAuth;
}

export interface Ingress {
  /** `POST /events` and the http triggers, on node:http. */
  hot: HotRoutes;
  /** Everything else, on express. */
  rest: RequestListener;
}

/** The ingress served on the calling thread. */
export function inOneThread({ hot, rest }: Ingress): RequestListener {
  return (req, res) => {
    if (!hot.serve(req, res)) rest(req, res);
  };
}

export function createIngress(target: IngressTarget, options: IngressOptions): Ingress {
  const hot = new HotRoutes(target, options.logger, options.deviceAuth);
  const server = express();
  server.disable('x-powered-by');
  server.set('etag', false);

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

  server.use((req, res) => {
    res.status(404).json({ error: `no route for ${req.method} ${req.path}` });
  });

  server.use((error: unknown, req: Request, res: Response, _next: NextFunction) => {
    const status = errorStatus(error);
    if (status >= 500) options.logger.error({ err: error, method: req.method, path: req.path }, 'request failed');
    if (res.headersSent) return void res.end();
    res.status(status).json(errorBody(error, status));
  });
  return { hot, rest: server };
}
