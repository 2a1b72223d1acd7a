// The air-quality app on LocalStack (testcontainers): real Lambda functions from the `petrel
// build` zips, EventBridge rules with translated patterns, SQS with dead-letter queues, DynamoDB
// with transactions, API Gateway. Needs a container runtime (Docker or Podman) that LocalStack can
// also start Lambda containers in; without one the suite says so and is skipped.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { QueryCommand } from '@aws-sdk/client-dynamodb';
import { PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { LocalstackContainer, type StartedLocalStackContainer } from '@testcontainers/localstack';
import { getContainerRuntimeClient } from 'testcontainers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoDeadLetters, DynamoStore } from '../../adapters/aws-lambda/dynamodb.js';
import { toPutEventsEntry } from '../../adapters/aws-lambda/mapping.js';
import { awsNames } from '../../adapters/aws-lambda/names.js';
import { buildAws } from '../../cli/commands/build.js';
import { newEventId } from '../../core/event.js';
import app from '../../handlers/air-quality/app.js';
import { clients, deploy, type Clients, type Deployment } from './deploy.js';

const IMAGE = process.env.PETREL_LOCALSTACK_IMAGE ?? 'localstack/localstack:3.8';
const DEVICE_KEY = 'e2e-device-key-for-the-harbour-sensors';

/** A container runtime answers within 2 s, or there is none. */
async function containerRuntime(): Promise<boolean> {
  const timeout = new Promise<false>((resolve) => setTimeout(resolve, 2000, false).unref());
  return Promise.race([getContainerRuntimeClient().then(() => true, () => false), timeout]);
}

const available = await containerRuntime();
if (!available) console.warn('LocalStack e2e skipped: no container runtime (Docker or Podman) is reachable');

async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`${what}: not seen within ${timeoutMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

describe.skipIf(!available)('air-quality on LocalStack', () => {
  let container: StartedLocalStackContainer;
  let aws: Clients;
  let deployment: Deployment;
  let out: string;

  beforeAll(async () => {
    out = mkdtempSync(join(tmpdir(), 'petrel-e2e-'));
    const appFile = fileURLToPath(new URL('../../handlers/air-quality/app.ts', import.meta.url));
    const [bundles, started] = await Promise.all([
      buildAws(app, appFile, out, { measure: false }),
      // Lambda runs in containers LocalStack starts next to itself, through the runtime's socket.
      new LocalstackContainer(IMAGE).withBindMounts([{ source: '/var/run/docker.sock', target: '/var/run/docker.sock' }]).start(),
    ]);
    container = started;
    aws = clients(container.getConnectionUri());
    // mqtt triggers have no AWS source here (AWS IoT Core is not in LocalStack's free edition).
    const deployable = bundles.filter((b) => app.function(b.fn)!.spec.trigger.kind !== 'mqtt');
    deployment = await deploy(app, deployable, aws, container.getConnectionUri(), { PETREL_API_KEYS: DEVICE_KEY });
  }, 600_000);

  afterAll(async () => {
    for (const client of Object.values(aws ?? {})) client.destroy();
    await container?.stop();
    if (out) rmSync(out, { recursive: true, force: true });
  });

  it('takes readings through API Gateway and raises the alert into DynamoDB, served by GET /alerts', async () => {
    const minute = Math.floor(Date.now() / 60_000) * 60_000 - 10 * 60_000;
    const readings = [
      { deviceId: 'sensor-17', location: 'harbour', time: new Date(minute + 5_000).toISOString(), pm25: 150.4 },
      { deviceId: 'sensor-17', location: 'harbour', time: new Date(minute + 3 * 60_000 + 5_000).toISOString(), pm25: 151 },
    ];
    const response = await fetch(`${deployment.apiUrl}/readings`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${DEVICE_KEY}` }, body: JSON.stringify(readings) });
    expect(response.status).toBe(202);
    expect(await response.json()).toEqual({ accepted: 2 });

    const alertsTable = awsNames(app, {}).table('alerts');
    const alert = await eventually('an alert in DynamoDB', async () => {
      const { Items = [] } = await aws.dynamodb.send(new QueryCommand({ TableName: alertsTable, KeyConditionExpression: '#l = :l', ExpressionAttributeNames: { '#l': 'location' }, ExpressionAttributeValues: { ':l': { S: 'harbour' } } }));
      return Items[0];
    });
    expect(alert.kind?.S).toBe('category');

    const served = await fetch(`${deployment.apiUrl}/alerts?location=harbour`);
    expect(served.status).toBe(200);
    expect(await served.json()).toEqual(expect.arrayContaining([expect.objectContaining({ location: 'harbour', kind: 'category' })]));
  });

  it('moves a poison event to the dead-letter queue after its attempts, with the petrel dead letter in DynamoDB', async () => {
    const poison = { specversion: '1.0' as const, id: newEventId(), source: 'e2e', type: 'aq.reading.accepted', time: new Date().toISOString(), data: { location: 'harbour', pm25: 'not a number' } };
    const put = await aws.eventbridge.send(new PutEventsCommand({ Entries: [toPutEventsEntry(poison, deployment.eventBus)] }));
    expect(put.FailedEntryCount).toBe(0);

    const moved = await eventually('the poison message in the DLQ of assess', async () => {
      const { Messages = [] } = await aws.sqs.send(new ReceiveMessageCommand({ QueueUrl: deployment.queues.assess.dlqUrl, WaitTimeSeconds: 1 }));
      return Messages.find((m) => m.Body?.includes(poison.id));
    }, 180_000);
    expect(JSON.parse(moved.Body!)).toMatchObject({ 'detail-type': 'aq.reading.accepted', detail: { ce: { id: poison.id } } });

    const letters = await new DynamoDeadLetters(new DynamoStore(app, { client: aws.dynamodb, names: awsNames(app, {}) })).list('assess');
    expect(letters).toEqual([expect.objectContaining({ fn: 'assess', event: expect.objectContaining({ id: poison.id }), attempts: [expect.objectContaining({ error: expect.objectContaining({ name: 'PermanentError' }) })] })]);
  });
});
