/** The JSON errors every HTTP surface answers with (the ingress, its hot routes, a Knative function). */
import { bodyTooLarge } from '../../core/http.js';
import { BindingError } from './binding.js';

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
  if (e.type === 'entity.too.large') return { error: bodyTooLarge().message };
  if (status < 500 && e.message) return { error: e.message };
  // Internal errors may carry secrets (connection strings, tokens): the detail goes to the log only.
  return { error: 'internal error; see the server log' };
}
