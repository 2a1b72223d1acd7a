/**
 * The ingress thread (started by thread.ts): it owns the listening socket, so parsing HTTP,
 * reading bodies and writing replies, about a fifth of the runtime thread's work per reading
 * under the air-quality bench, happen on another core. A hot route's request (POST /events, an
 * http trigger) goes to the runtime's thread as a message with its body and comes back as a
 * ready reply; everything else (admin, metrics, the console, its event streams) is passed through
 * to express on the runtime's thread over a loopback connection.
 */
import { Agent, request, type IncomingMessage, type ServerResponse } from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';
import { HttpRequestError } from '../../core/http.js';
import { HttpServer } from './server.js';
import { errorReply, jsonReply, readBody, servesRequest, writeReply, type FromIngressThread, type ThreadSetup, type ToIngressThread } from './wire.js';

const setup = workerData as ThreadSetup;
const runtime = parentPort!;
const send = (message: FromIngressThread) => runtime.postMessage(message);
const waiting = new Map<number, { method: string | undefined; res: ServerResponse }>();
let nextId = 0;
/** Connections to express, kept open (it never closes them for idleness: thread.ts). */
const agent = new Agent({ keepAlive: true });
/** Hop-by-hop headers: about one connection, not to be passed on. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authenticate', 'proxy-authorization']);

function handOver(req: IncomingMessage, res: ServerResponse): void {
  if (waiting.size >= setup.maxWaiting) {
    return writeReply(res, req.method, jsonReply(429, { error: `${waiting.size} requests are waiting for the runtime; retry after 1 s` }, { 'retry-after': '1' }));
  }
  const receivedAt = Date.now();
  readBody(req).then(
    (body) => {
      const id = nextId++;
      waiting.set(id, { method: req.method, res });
      send({ kind: 'request', id, request: { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers, body, receivedAt } });
    },
    (error: unknown) => {
      // Over the limit: say so and close (the rest of the body is still coming). Else the client went away.
      if (error instanceof HttpRequestError) writeReply(res, req.method, errorReply(error.status, { error: error.message }));
      else res.destroy();
    },
  );
}

function passThrough(req: IncomingMessage, res: ServerResponse): void {
  const upstream = request({ host: '127.0.0.1', port: setup.restPort, method: req.method, path: req.url, headers: req.headers, agent }, (answer) => {
    const headers: string[] = [];
    for (let i = 0; i < answer.rawHeaders.length; i += 2) {
      if (!HOP_BY_HOP.has(answer.rawHeaders[i].toLowerCase())) headers.push(answer.rawHeaders[i], answer.rawHeaders[i + 1]);
    }
    res.writeHead(answer.statusCode ?? 502, headers);
    // A stream (Server-Sent Events) goes out as it comes.
    res.flushHeaders();
    answer.pipe(res);
  });
  upstream.on('error', () => {
    if (res.headersSent) res.destroy();
    else writeReply(res, req.method, jsonReply(502, { error: 'the runtime did not answer' }));
  });
  // The client went away (a closed event stream): so does the request to express.
  res.on('close', () => upstream.destroy());
  req.pipe(upstream);
}

const handle = (req: IncomingMessage, res: ServerResponse) => (servesRequest(setup.routes, req.method, req.url) ? handOver(req, res) : passThrough(req, res));

HttpServer.listen(handle, setup.port, setup.host).then(
  (server) => {
    runtime.on('message', (message: ToIngressThread) => {
      if (message.kind === 'reply') {
        const request = waiting.get(message.id);
        waiting.delete(message.id);
        if (request) writeReply(request.res, request.method, message.reply);
      } else if (message.kind === 'stop-accepting') server.stopAccepting();
      else {
        void server.close();
        agent.destroy();
        runtime.close();
      }
    });
    send({ kind: 'listening', address: server.address() });
  },
  (error: Error) => send({ kind: 'failed', message: error.message }),
);
