/**
 * Deploys an app onto LocalStack the way the AWS target runs it, from the same description:
 * DynamoDB tables (with TTL) and the delivery table, S3 buckets, one EventBridge bus, and per
 * function a Lambda from its `petrel build` zip; per event-triggered function an SQS queue with a
 * dead-letter queue (maxReceiveCount = its maxAttempts), an EventBridge rule with the translated
 * pattern targeting the queue, and an event source mapping reporting batch item failures; per
 * schedule a rule invoking the Lambda; http functions behind one API Gateway REST API.
 */
import { CreateRestApiCommand, CreateResourceCommand, CreateDeploymentCommand, GetResourcesCommand, PutIntegrationCommand, PutMethodCommand, APIGatewayClient } from '@aws-sdk/client-api-gateway';
import { CreateTableCommand, DynamoDBClient, UpdateTimeToLiveCommand } from '@aws-sdk/client-dynamodb';
import { CreateEventBusCommand, EventBridgeClient, PutRuleCommand, PutTargetsCommand } from '@aws-sdk/client-eventbridge';
import { AddPermissionCommand, CreateEventSourceMappingCommand, CreateFunctionCommand, LambdaClient, waitUntilFunctionActiveV2 } from '@aws-sdk/client-lambda';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { CreateQueueCommand, GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { readFileSync } from 'node:fs';
import { awsNames } from '../../adapters/aws-lambda/names.js';
import { tableDefinitions } from '../../adapters/aws-lambda/dynamodb.js';
import { translatePattern } from '../../adapters/aws-lambda/mapping.js';
import { retryPolicy } from '../../core/delivery.js';
import type { App } from '../../core/app.js';
import type { AwsBundle } from '../../cli/commands/build.js';

export const REGION = 'us-east-1';
const ACCOUNT = '000000000000';
/** LocalStack does not enforce IAM; any role ARN does. */
const ROLE = `arn:aws:iam::${ACCOUNT}:role/petrel-lambda`;
const STAGE = 'test';

export interface Clients {
  dynamodb: DynamoDBClient;
  eventbridge: EventBridgeClient;
  lambda: LambdaClient;
  sqs: SQSClient;
  s3: S3Client;
  apigateway: APIGatewayClient;
}

export function clients(endpoint: string): Clients {
  const config = { endpoint, region: REGION, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } };
  return {
    dynamodb: new DynamoDBClient(config),
    eventbridge: new EventBridgeClient(config),
    lambda: new LambdaClient(config),
    sqs: new SQSClient(config),
    s3: new S3Client({ ...config, forcePathStyle: true }),
    apigateway: new APIGatewayClient(config),
  };
}

export interface Deployment {
  /** Base URL of the REST API's stage: `${apiUrl}/readings`. */
  apiUrl: string;
  eventBus: string;
  queues: Record<string, { url: string; arn: string; dlqUrl: string }>;
  lambdaName(fn: string): string;
}

export async function deploy(app: App, bundles: AwsBundle[], aws: Clients, endpoint: string, env: Record<string, string>): Promise<Deployment> {
  const names = awsNames(app, {});
  const eventBus = `${app.name}-bus`;
  const lambdaName = (fn: string) => `${app.name}-${fn}`;

  for (const { input, ttlAttribute } of tableDefinitions(app, names)) {
    await aws.dynamodb.send(new CreateTableCommand(input));
    if (ttlAttribute) await aws.dynamodb.send(new UpdateTimeToLiveCommand({ TableName: input.TableName, TimeToLiveSpecification: { AttributeName: ttlAttribute, Enabled: true } }));
  }
  for (const [name, spec] of Object.entries(app.resources)) if (spec.kind === 'bucket') await aws.s3.send(new CreateBucketCommand({ Bucket: names.bucket(name) }));
  await aws.eventbridge.send(new CreateEventBusCommand({ Name: eventBus }));

  const functionArns: Record<string, string> = {};
  for (const bundle of bundles) {
    const fn = app.function(bundle.fn)!;
    const created = await aws.lambda.send(new CreateFunctionCommand({
      FunctionName: lambdaName(fn.name),
      Runtime: 'nodejs20.x',
      Handler: 'index.handler',
      Role: ROLE,
      Code: { ZipFile: readFileSync(bundle.zip) },
      Timeout: Math.ceil(fn.spec.timeoutMs / 1000) + 5,
      MemorySize: 512,
      Environment: { Variables: { PETREL_EVENT_BUS: eventBus, ...env } },
    }));
    functionArns[fn.name] = created.FunctionArn!;
  }
  await Promise.all(Object.keys(functionArns).map((fn) => waitUntilFunctionActiveV2({ client: aws.lambda, maxWaitTime: 300 }, { FunctionName: lambdaName(fn) })));

  const queues: Deployment['queues'] = {};
  for (const fn of app.functions) {
    const trigger = fn.spec.trigger;
    if (trigger.kind === 'event') {
      const { maxAttempts } = retryPolicy(fn.spec.retry);
      const dlq = await createQueue(aws.sqs, `${app.name}-${fn.name}-dlq`, {});
      const queue = await createQueue(aws.sqs, `${app.name}-${fn.name}`, {
        VisibilityTimeout: String(Math.ceil(fn.spec.timeoutMs / 1000) * 6),
        RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlq.arn, maxReceiveCount: maxAttempts }),
      });
      queues[fn.name] = { url: queue.url, arn: queue.arn, dlqUrl: dlq.url };
      const rule = `${app.name}-${fn.name}`;
      await aws.eventbridge.send(new PutRuleCommand({ Name: rule, EventBusName: eventBus, EventPattern: JSON.stringify(translatePattern(trigger.pattern)) }));
      await aws.eventbridge.send(new PutTargetsCommand({ Rule: rule, EventBusName: eventBus, Targets: [{ Id: 'queue', Arn: queue.arn }] }));
      await aws.lambda.send(new CreateEventSourceMappingCommand({ EventSourceArn: queue.arn, FunctionName: lambdaName(fn.name), BatchSize: 10, FunctionResponseTypes: ['ReportBatchItemFailures'] }));
    } else if (trigger.kind === 'schedule') {
      const rule = `${app.name}-${fn.name}-schedule`;
      const { RuleArn } = await aws.eventbridge.send(new PutRuleCommand({ Name: rule, ScheduleExpression: trigger.expression }));
      await aws.lambda.send(new AddPermissionCommand({ FunctionName: lambdaName(fn.name), StatementId: 'schedule', Action: 'lambda:InvokeFunction', Principal: 'events.amazonaws.com', SourceArn: RuleArn }));
      await aws.eventbridge.send(new PutTargetsCommand({ Rule: rule, Targets: [{ Id: 'lambda', Arn: functionArns[fn.name] }] }));
    }
  }

  const { id: apiId } = await aws.apigateway.send(new CreateRestApiCommand({ name: app.name }));
  const { items = [] } = await aws.apigateway.send(new GetResourcesCommand({ restApiId: apiId }));
  const resources = new Map<string, string>([['/', items.find((r) => r.path === '/')!.id!]]);
  for (const fn of app.functions) {
    const trigger = fn.spec.trigger;
    if (trigger.kind !== 'http') continue;
    // Express-style ":id" segments are API Gateway "{id}" path parameters.
    let parent = '/';
    for (const segment of trigger.path.split('/').filter(Boolean)) {
      const part = segment.startsWith(':') ? `{${segment.slice(1)}}` : segment;
      const path = `${parent === '/' ? '' : parent}/${part}`;
      if (!resources.has(path)) {
        const created = await aws.apigateway.send(new CreateResourceCommand({ restApiId: apiId, parentId: resources.get(parent), pathPart: part }));
        resources.set(path, created.id!);
      }
      parent = path;
    }
    await aws.apigateway.send(new PutMethodCommand({ restApiId: apiId, resourceId: resources.get(parent), httpMethod: trigger.method, authorizationType: 'NONE' }));
    await aws.apigateway.send(new PutIntegrationCommand({
      restApiId: apiId,
      resourceId: resources.get(parent),
      httpMethod: trigger.method,
      type: 'AWS_PROXY',
      integrationHttpMethod: 'POST',
      uri: `arn:aws:apigateway:${REGION}:lambda:path/2015-03-31/functions/${functionArns[fn.name]}/invocations`,
    }));
  }
  await aws.apigateway.send(new CreateDeploymentCommand({ restApiId: apiId, stageName: STAGE }));
  return { apiUrl: `${endpoint}/restapis/${apiId}/${STAGE}/_user_request_`, eventBus, queues, lambdaName };
}

async function createQueue(sqs: SQSClient, name: string, Attributes: Record<string, string>): Promise<{ url: string; arn: string }> {
  const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: name, Attributes }));
  const { Attributes: attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['QueueArn'] }));
  return { url: QueueUrl!, arn: attributes!.QueueArn! };
}
