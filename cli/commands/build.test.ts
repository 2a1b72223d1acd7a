import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import JSZip from 'jszip';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { awsNames } from '../../adapters/aws-lambda/names.js';
import { createTables, startDynalite } from '../../adapters/aws-lambda/testing.js';
import app from '../../handlers/air-quality/app.js';
import { buildAws, type AwsBundle } from './build.js';

const appFile = fileURLToPath(new URL('../../handlers/air-quality/app.ts', import.meta.url));
const fixture = (name: string) => JSON.parse(readFileSync(new URL(`../../adapters/aws-lambda/fixtures/${name}.json`, import.meta.url), 'utf8')) as Record<string, unknown>;
const run = promisify(execFile);

let out: string;
let bundles: AwsBundle[];

beforeAll(async () => {
  out = mkdtempSync(join(tmpdir(), 'petrel-build-'));
  bundles = await buildAws(app, appFile, out, { measure: false, functions: ['ingest', 'listAlerts'] });
}, 60_000);
afterAll(() => rmSync(out, { recursive: true, force: true }));

/** Runs a bundle's handler in a fresh node process, as Lambda would import it, with `env`. */
async function invokeBundle(fn: string, event: unknown, env: Record<string, string>): Promise<{ statusCode: number; body: string }> {
  const script = `const { handler } = await import(${JSON.stringify(pathToFileURL(join(out, fn, 'index.mjs')).href)});
    const result = await handler(JSON.parse(process.env.EVENT));
    process.stdout.write('\\nRESULT ' + JSON.stringify(result));`;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
    env: { PATH: process.env.PATH, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', POWERTOOLS_METRICS_DISABLED: 'true', POWERTOOLS_LOG_LEVEL: 'ERROR', EVENT: JSON.stringify(event), ...env },
  });
  return JSON.parse(stdout.slice(stdout.lastIndexOf('\nRESULT ') + 8)) as { statusCode: number; body: string };
}

describe('petrel build --target aws', () => {
  it('bundles each function with only the AWS SDK clients it uses, as index.mjs in a zip', async () => {
    expect(bundles.map((b) => [b.fn, b.sdkClients])).toEqual([['ingest', ['client-eventbridge']], ['listAlerts', ['client-dynamodb']]]);
    for (const bundle of bundles) {
      const zip = await JSZip.loadAsync(readFileSync(bundle.zip));
      expect(Object.keys(zip.files)).toEqual(['index.mjs']);
      const code = await zip.file('index.mjs')!.async('nodebuffer');
      expect(code.equals(readFileSync(join(out, bundle.fn, 'index.mjs')))).toBe(true);
      expect(code.length).toBe(bundle.bundleBytes);
      expect(bundle.zipBytes).toBeLessThan(bundle.bundleBytes);
    }
  });

  it('gives the same zip, byte for byte, when nothing changed', async () => {
    const again = mkdtempSync(join(tmpdir(), 'petrel-build-'));
    try {
      const [rebuilt] = await buildAws(app, appFile, again, { measure: false, functions: ['ingest'] });
      expect(readFileSync(rebuilt.zip).equals(readFileSync(bundles[0].zip))).toBe(true);
    } finally {
      rmSync(again, { recursive: true, force: true });
    }
  });

  it('refuses a function the app does not have', async () => {
    await expect(buildAws(app, appFile, out, { functions: ['nope'] })).rejects.toThrow(/has no function "nope"/);
  });

  it('the ingest bundle takes an API Gateway request and puts its events on EventBridge', async () => {
    const requests: Array<{ target: string | undefined; body: { Entries: Array<{ DetailType: string; EventBusName: string }> } }> = [];
    const eventBridge = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk) => (body += chunk));
      req.on('end', () => {
        const parsed = JSON.parse(body) as (typeof requests)[number]['body'];
        requests.push({ target: req.headers['x-amz-target'] as string | undefined, body: parsed });
        res.setHeader('content-type', 'application/x-amz-json-1.1');
        res.end(JSON.stringify({ FailedEntryCount: 0, Entries: parsed.Entries.map((_, i) => ({ EventId: `id-${i}` })) }));
      });
    });
    await new Promise<void>((resolve) => eventBridge.listen(0, '127.0.0.1', resolve));
    try {
      const key = 'a-device-key-of-32-characters-ok';
      const post = fixture('apigateway-v2-post-readings');
      const reading = { deviceId: 'sensor-17', location: 'harbour', time: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), pm25: 12 };
      const event = { ...post, headers: { ...(post.headers as object), authorization: `Bearer ${key}` }, body: JSON.stringify(reading) };
      const result = await invokeBundle('ingest', event, {
        AWS_ENDPOINT_URL_EVENTBRIDGE: `http://127.0.0.1:${(eventBridge.address() as AddressInfo).port}`,
        PETREL_API_KEYS: key,
        PETREL_EVENT_BUS: 'air-quality-bus',
      });
      expect(result.statusCode).toBe(202);
      expect(JSON.parse(result.body)).toEqual({ accepted: 1 });
      expect(requests).toMatchObject([{ target: 'AWSEvents.PutEvents', body: { Entries: [{ DetailType: 'aq.reading.accepted', EventBusName: 'air-quality-bus' }] } }]);
    } finally {
      eventBridge.close();
    }
  });

  it('the listAlerts bundle serves GET /alerts from DynamoDB', async () => {
    const dynamo = await startDynalite();
    try {
      await createTables(dynamo.client, app, awsNames(app, {}));
      const endpoint = String(await dynamo.client.config.endpoint?.().then((e) => `${e.protocol}//${e.hostname}:${e.port}`));
      const result = await invokeBundle('listAlerts', fixture('apigateway-v1-get-alerts'), { AWS_ENDPOINT_URL_DYNAMODB: endpoint });
      expect(result).toMatchObject({ statusCode: 200, body: '[]' });
    } finally {
      await dynamo.stop();
    }
  });
});
