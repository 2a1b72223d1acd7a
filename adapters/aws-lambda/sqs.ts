/**
 * The SQS a handler needs beyond Lambda's poller: a failed message's visibility timeout set to
 * its backoff, and messages sent back to a function's queue when a dead letter is redriven.
 */
import { ChangeMessageVisibilityCommand, GetQueueUrlCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { QueueControl } from './types.js';

/** SQS allows a visibility timeout of at most 12 hours. */
export const MAX_VISIBILITY_SECONDS = 43_200;

export class SqsQueues implements QueueControl {
  private readonly client: Pick<SQSClient, 'send'>;
  private readonly urls = new Map<string, Promise<string>>();

  constructor(options: { client?: Pick<SQSClient, 'send'> } = {}) {
    this.client = options.client ?? new SQSClient({});
  }

  async retryAfter(queueArn: string, receiptHandle: string, seconds: number): Promise<void> {
    const VisibilityTimeout = Math.min(MAX_VISIBILITY_SECONDS, Math.max(0, Math.ceil(seconds)));
    await this.client.send(new ChangeMessageVisibilityCommand({ QueueUrl: await this.url(queueArn), ReceiptHandle: receiptHandle, VisibilityTimeout }));
  }

  async send(queueArn: string, body: string): Promise<void> {
    await this.client.send(new SendMessageCommand({ QueueUrl: await this.url(queueArn), MessageBody: body }));
  }

  /** arn:aws:sqs:<region>:<account>:<name> -> the queue URL, asked once per queue. */
  private url(queueArn: string): Promise<string> {
    let url = this.urls.get(queueArn);
    if (!url) {
      const [, , service, , account, name] = queueArn.split(':');
      if (service !== 'sqs' || !account || !name) return Promise.reject(new TypeError(`"${queueArn}" is not an SQS queue ARN`));
      url = this.client.send(new GetQueueUrlCommand({ QueueName: name, QueueOwnerAWSAccountId: account })).then((r) => r.QueueUrl!);
      url.catch(() => this.urls.delete(queueArn));
      this.urls.set(queueArn, url);
    }
    return url;
  }
}
