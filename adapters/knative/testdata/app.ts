/** A tiny app for `petrel serve` tests: `greet` answers each request with one `greet.sent`; `hello` is http-triggered. */
import { defineApp, fn, http, on } from '../../../core/app.js';

export default defineApp({
  name: 'kn-serve',
  functions: {
    greet: fn({
      trigger: on({ type: ['greet.requested'] }),
      emits: ['greet.sent'],
      handler: async (e, ctx) => {
        const { name, waitMs } = e.data as { name: string; waitMs?: number };
        if (waitMs) await new Promise((resolve) => setTimeout(resolve, waitMs));
        ctx.emit('greet.sent', { to: name });
      },
    }),
    hello: fn({ trigger: http('GET', '/hello'), handler: () => ({ body: 'hi' }) }),
  },
});
