/** What every command shares: the runtime URL default, argument parsers, HTTP calls with clear errors. */
import { InvalidArgumentError } from 'commander';
import { readFileSync } from 'node:fs';
import { CliError } from './load.js';

export const DEFAULT_URL = process.env.PETREL_URL ?? `http://127.0.0.1:${process.env.PORT ?? 3000}`;

export function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('a port is an integer from 0 to 65535');
  return n;
}

export function readFileOrFail(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new CliError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

/** Calls a running runtime; a refused connection or an error status becomes a CliError. */
export async function request(base: string, path: string, init: RequestInit = {}): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(new URL(path, base), init);
  } catch {
    throw new CliError(`no petrel runtime answers at ${base}: start one with \`petrel dev\`, or pass --url`);
  }
  const body = (await response.json().catch(() => ({}))) as { error?: string };
  if (!response.ok) throw new CliError(`${response.status}: ${body.error ?? response.statusText}`);
  return body;
}

/** Stops `stop` on SIGTERM / SIGINT, then exits: 0 if it stopped cleanly. */
export function exitOnSignals(stop: () => Promise<void>): void {
  const handle = (signal: string) => {
    console.error(`petrel: ${signal}: finishing in-flight work`);
    stop().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(`petrel: stop failed: ${(error as Error).message}`);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => handle('SIGTERM'));
  process.once('SIGINT', () => handle('SIGINT'));
}
