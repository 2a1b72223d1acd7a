/**
 * Listening and closing for every HTTP server a runtime runs (the ingress, a Knative function):
 * a taken port is an error that says what to do, and a close lets in-flight requests finish.
 */
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A server a runtime listens with: where it is, and how it stops. */
export interface Listening {
  address(): AddressInfo;
  /** Stops accepting connections; idle keep-alive connections close now, busy ones finish. */
  stopAccepting(): void;
  /** Closes every connection left; resolves once the server is closed. */
  close(): Promise<void>;
}

/** The error for a server that could not listen: a taken port says what to do. */
export function listenError(error: NodeJS.ErrnoException, port: number, host: string): Error {
  return error.code === 'EADDRINUSE' ? new Error(`port ${port} on ${host} is already in use; set PORT to another port`) : error;
}

export class HttpServer implements Listening {
  private closed?: Promise<void>;

  private constructor(readonly server: Server) {}

  /** Listens on `port` (0 picks a free one) and `host`. */
  static listen(listener: RequestListener, port: number, host: string): Promise<HttpServer> {
    return new Promise((resolve, reject) => {
      const server = createServer(listener).listen(port, host);
      server.once('listening', () => resolve(new HttpServer(server)));
      server.once('error', (error: NodeJS.ErrnoException) => reject(listenError(error, port, host)));
    });
  }

  address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  stopAccepting(): void {
    this.closed ??= new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
  }

  close(): Promise<void> {
    this.stopAccepting();
    this.server.closeAllConnections();
    return this.closed!;
  }
}
