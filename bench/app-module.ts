/**
 * The bench app as a module `petrel dev` and `petrel run` load in their own process (cold start,
 * memory). BENCH_HANDLER picks the handler (noop | table, default noop), BENCH_APP_NAME the app
 * name (default bench). An event whose subject is REPORT_SUBJECT prints `HANDLED_MARK <id>` on
 * stdout once handled, which is how the parent process sees it.
 */
import { benchApp, HANDLED_MARK, REPORT_SUBJECT, type HandlerKind } from './app.js';

const kind = (process.env.BENCH_HANDLER ?? 'noop') as HandlerKind;
if (kind !== 'noop' && kind !== 'table') throw new Error(`BENCH_HANDLER must be noop or table, got "${kind}"`);

export default benchApp(kind, {
  name: process.env.BENCH_APP_NAME || 'bench',
  afterHandled: (event) => {
    if (event.subject === REPORT_SUBJECT) process.stdout.write(`${HANDLED_MARK} ${event.id}\n`);
  },
});
