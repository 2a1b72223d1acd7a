/**
 * The services the delivery suites run against, and the one rule for when one is missing:
 * outside CI the suite says so in one line and is skipped; with CI=true it fails.
 */
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import pg from 'pg';

export const PG_URL = process.env.PETREL_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const NATS_URL = process.env.PETREL_NATS_URL ?? 'nats://127.0.0.1:4222';

async function pgReachable(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return undefined;
  } catch (error) {
    return (error as Error).message;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function natsReachable(): Promise<string | undefined> {
  try {
    const nc = await connect({ servers: NATS_URL, timeout: 2000, maxReconnectAttempts: 0 });
    try {
      await (await jetstreamManager(nc)).getAccountInfo();
      return undefined;
    } finally {
      await nc.close();
    }
  } catch (error) {
    return (error as Error).message;
  }
}

const probes = { postgres: pgReachable, nats: natsReachable };
const urls = { postgres: PG_URL, nats: NATS_URL };

/** True if every named service answers; otherwise one line on stderr (skip), or an error under CI=true. */
export async function servicesAvailable(suite: string, ...services: Array<keyof typeof probes>): Promise<boolean> {
  for (const service of services) {
    const problem = await probes[service]();
    if (problem === undefined) continue;
    const line = `${suite}: ${service} at ${urls[service].replace(/\/\/[^@/]*@/, '//***@')} is not reachable (${problem})`;
    if (process.env.CI === 'true') throw new Error(`${line}; CI=true requires it`);
    console.warn(`${line}; skipping`);
    return false;
  }
  return true;
}
