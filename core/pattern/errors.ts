/**
 * Thrown by compilePattern for a pattern EventBridge would reject.
 *
 * `path` names the offending place in the pattern, e.g. `detail.c-count[0].numeric`
 * (object keys joined by dots, list positions in brackets; empty for the pattern as a whole).
 * `reason` is the problem alone; `message` is both, ready to show to a user.
 */
export class PatternError extends Error {
  readonly path: string;
  readonly reason: string;

  constructor(path: string, reason: string) {
    super(path ? `Invalid event pattern at ${path}: ${reason}` : `Invalid event pattern: ${reason}`);
    this.name = 'PatternError';
    this.path = path;
    this.reason = reason;
  }
}
