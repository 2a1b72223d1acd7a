/**
 * Webhook subscribers: POST /subscriptions registers one (its secret is returned once: give your
 * own, or one is generated), GET /subscriptions lists them without secrets, DELETE
 * /subscriptions/:id removes one. Device-authenticated: a webhook makes this server send requests.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { z } from 'zod';
import { fn, http, type HttpRequestData } from '../../core/index.js';
import { ALERT_KINDS, isWebhookUrl } from './config.js';
import { ALL } from './tables.js';
import type { StoredSubscriber } from './webhooks.js';

const subscriptionSchema = z.object({
  url: z.string().max(2000).refine(isWebhookUrl, { error: 'must be an http(s) URL' }),
  secret: z.string().min(16, { error: 'must be at least 16 characters' }).max(200).optional(),
  kinds: z.array(z.enum(ALERT_KINDS as [string, ...string[]])).min(1).optional(),
  locations: z.array(z.string().min(1).max(128)).min(1).optional(),
});

function withoutSecret({ secret: _secret, scope: _scope, ...subscriber }: Record<string, unknown>) {
  return subscriber;
}

export function subscribe() {
  return fn({
    trigger: http('POST', '/subscriptions', { auth: 'device' }),
    uses: { subscribers: 'write' },
    handler: async (event, ctx) => {
      const parsed = subscriptionSchema.safeParse((event.data as HttpRequestData).body);
      if (!parsed.success) {
        return { status: 400, body: { error: 'invalid subscription', errors: parsed.error.issues.map((i) => ({ field: i.path.join('.') || 'body', message: i.message })) } };
      }
      const { secret, ...choices } = parsed.data;
      const subscriber: StoredSubscriber = { ...(choices as Omit<StoredSubscriber, 'id' | 'secret'>), id: randomUUID(), secret: secret ?? randomBytes(32).toString('base64url') };
      await ctx.tables.subscribers.put({ scope: ALL, ...subscriber, createdAt: new Date().toISOString() });
      return { status: 201, body: { ...subscriber } };
    },
  });
}

export function listSubscriptions() {
  return fn({
    trigger: http('GET', '/subscriptions', { auth: 'device' }),
    uses: { subscribers: 'read' },
    handler: async (_event, ctx) => ({ body: (await ctx.tables.subscribers.query(ALL)).map(withoutSecret) }),
  });
}

export function unsubscribe() {
  return fn({
    trigger: http('DELETE', '/subscriptions/:id', { auth: 'device' }),
    uses: { subscribers: 'write' },
    handler: async (event, ctx) => {
      const { id } = (event.data as HttpRequestData).params;
      if (!(await ctx.tables.subscribers.get({ scope: ALL, id }))) return { status: 404, body: { error: `no subscription with id "${id}"` } };
      await ctx.tables.subscribers.delete({ scope: ALL, id });
      return { status: 204 };
    },
  });
}
