/**
 * The delivery contract shared by every target: retry policy, backoff with full jitter,
 * permanent errors, and the dead-letter record.
 */
import type { CloudEvent } from './event.js';

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  maxAttempts: number;
  /** Cap of the first backoff; doubles each attempt. */
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 5, baseDelayMs: 200, maxDelayMs: 60_000 };

/** How long a function remembers that it completed an event id. */
export const IDEMPOTENCY_TTL_MS = 7 * 24 * 3600 * 1000;

export function retryPolicy(overrides: Partial<RetryPolicy> = {}): RetryPolicy {
  const policy = { ...DEFAULT_RETRY, ...overrides };
  if (!Number.isInteger(policy.maxAttempts) || policy.maxAttempts < 1) throw new RangeError('retry.maxAttempts must be an integer >= 1');
  if (policy.baseDelayMs < 0 || policy.maxDelayMs < policy.baseDelayMs) throw new RangeError('retry delays must satisfy 0 <= baseDelayMs <= maxDelayMs');
  return policy;
}

/**
 * Delay before attempt `attempt + 1` after `attempt` failed: "full jitter" (AWS Architecture
 * Blog, Exponential Backoff and Jitter): uniform in [0, min(max, base * 2^(attempt-1))].
 */
export function backoffDelay(attempt: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  return Math.floor(random() * cap);
}

/** Throw this (or mark an error with `permanent: true`) to skip the remaining retries. */
export class PermanentError extends Error {
  readonly permanent = true;
  override name = 'PermanentError';
}

export function isPermanent(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { permanent?: unknown }).permanent === true;
}

/** Waits `ms`, or less if `signal` aborts first (a backoff that must not delay shutdown). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

export class TimeoutError extends Error {
  override name = 'TimeoutError';
}

export interface AttemptRecord {
  attempt: number;
  /** ISO time the attempt ended. */
  at: string;
  error: { name: string; message: string };
}

export interface DeadLetter {
  id: string;
  fn: string;
  event: CloudEvent;
  attempts: AttemptRecord[];
  /** ISO time the event was dead-lettered. */
  deadAt: string;
}

export function attemptRecord(attempt: number, error: unknown, at = new Date()): AttemptRecord {
  const err = error instanceof Error ? error : new Error(String(error));
  return { attempt, at: at.toISOString(), error: { name: err.name, message: err.message.slice(0, 2000) } };
}

/** What to do after a failed attempt. */
export function afterFailure(attempt: number, error: unknown, policy: RetryPolicy, random?: () => number): { retryInMs: number } | { dead: true } {
  if (isPermanent(error) || attempt >= policy.maxAttempts) return { dead: true };
  return { retryInMs: backoffDelay(attempt, policy, random) };
}
