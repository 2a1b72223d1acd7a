/** Query-string parameters of the GET endpoints, read strictly: a bad one is a 400 naming it. */
import type { HttpResponse } from '../../core/index.js';

export class BadRequest extends Error {
  override name = 'BadRequest';
}

export class QueryParams {
  constructor(private readonly query: Record<string, unknown>) {}

  string(name: string, required = false): string | undefined {
    const value = this.query[name];
    if (value === undefined) {
      if (required) throw new BadRequest(`${name} is required`);
      return undefined;
    }
    if (typeof value !== 'string' || value === '') throw new BadRequest(`${name} must be a single non-empty string`);
    return value;
  }

  /** An ISO 8601 time, as epoch ms. */
  time(name: string): number | undefined {
    const value = this.string(name);
    if (value === undefined) return undefined;
    const ms = Date.parse(value);
    if (Number.isNaN(ms)) throw new BadRequest(`${name} must be an ISO 8601 time, e.g. 2026-11-28T10:00:00Z`);
    return ms;
  }

  integer(name: string, min: number, max: number, fallback: number): number {
    const value = this.string(name);
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new BadRequest(`${name} must be an integer from ${min} to ${max}, got "${value}"`);
    return n;
  }

  oneOf<T extends string | number>(name: string, allowed: readonly T[]): T | undefined {
    const value = this.string(name);
    if (value === undefined) return undefined;
    const found = allowed.find((a) => String(a) === value);
    if (found === undefined) throw new BadRequest(`${name} must be one of ${allowed.join(', ')}, got "${value}"`);
    return found;
  }
}

/** Runs a request handler, answering 400 with the message when it throws BadRequest. */
export async function answering(handle: () => Promise<HttpResponse>): Promise<HttpResponse> {
  try {
    return await handle();
  } catch (error) {
    if (error instanceof BadRequest) return { status: 400, body: { error: error.message } };
    throw error;
  }
}
