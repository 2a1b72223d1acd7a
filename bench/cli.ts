/** Command-line pieces shared by the bench's entry points (run.ts, probe-air-quality.ts). */

/** A bad command line: the message says it all, no stack needed. */
export class UsageError extends Error {}

export function positiveInt(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} must be a positive integer, got "${text}"`);
  return n;
}

/**
 * Runs `main` and exits once it is done, so a handle some client forgot to close cannot keep the
 * process hanging; a usage error is one line and the hint, anything else its stack.
 */
export function runCli(name: string, usageHint: string, main: () => Promise<void>): void {
  main().then(() => process.exit(), (error: unknown) => {
    const usage = error instanceof UsageError || String((error as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS');
    const text = error instanceof Error ? (usage ? error.message : (error.stack ?? error.message)) : String(error);
    process.stderr.write(`\n${name} failed: ${text}\n${usage ? `usage: ${usageHint}\n` : ''}`);
    process.exit(1);
  });
}
