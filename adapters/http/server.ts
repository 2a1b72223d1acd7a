/**
 * Listening and closing for every HTTP server a runtime runs (the ingress, a Knative function):
 * a taken port is an error that says what to do, and a close lets in-flight requests finish.
 */
import { createServer, type RequestListener, type Server } from 'node:http';

export class HttpServer {
  private closed?: Promise<void>;

  private constructor(readonly server: Server) {}

  /** Listens on `port` (0 picks a free one) and `host`. */
  static listen(listener: RequestListener, port: number, host: string): Promise<HttpServer> {
    return new Promise((resolve, reject) => {
      const server = createServer(listener).listen(port, host);
      server.once('listening', () => resolve(new HttpServer(server)));
      server.once('error', (error: NodeJS.ErrnoException) => {
        reject(error.code === 'EADDRINUSE' ? new Error(`port ${port} on ${host} is already in use; set PORT to another port`) : error);
      });
    });
  }

  /** Stops accepting connections; idle keep-alive connections close now, busy ones finish. */
  stopAccepting(): void {
    this.closed ??= new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
  }

  /** Closes every connection left; resolves once the server is closed. */
  close(): Promise<void> {
    this.stopAccepting();
    this.server.closeAllConnections();
    return this.closed!;
  }
}
