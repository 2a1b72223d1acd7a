/** Secrets kept out of logs and errors. */

/**
 * A URL fit for a log line or an error: its password, if any, replaced by `***` (the user name
 * stays: it says which identity failed). Not a URL: a placeholder, never the text itself.
 */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable URL)';
  }
}
