/** `petrel send <type> <json|@file>`: one CloudEvent to a running runtime. */
import type { Command } from 'commander';
import { newEventId } from '../../core/event.js';
import { CliError } from '../load.js';
import { DEFAULT_URL, readFileOrFail, request } from '../shared.js';

export function registerSend(program: Command): void {
  program
    .command('send')
    .description('send one CloudEvent (structured mode) to a running runtime')
    .argument('<type>', 'the event type, e.g. aq.reading.accepted')
    .argument('<data>', 'the event data as JSON, or @file to read it from a file')
    .option('--url <url>', 'the runtime (env PETREL_URL)', DEFAULT_URL)
    .option('--source <source>', 'the event source', 'petrel/cli')
    .option('--subject <subject>', 'the event subject')
    .option('--partition-key <key>', 'the partitionkey extension (ordered delivery per key)')
    .action(async (type: string, raw: string, options: { url: string; source: string; subject?: string; partitionKey?: string }) => {
      const text = raw.startsWith('@') ? readFileOrFail(raw.slice(1)) : raw;
      let data: unknown;
      try {
        data = JSON.parse(text);
      } catch (error) {
        throw new CliError(`the data is not valid JSON: ${(error as Error).message}`);
      }
      const event = { specversion: '1.0', id: newEventId(), source: options.source, type, time: new Date().toISOString(), datacontenttype: 'application/json', data, subject: options.subject, partitionkey: options.partitionKey };
      const body = await request(options.url, '/events', { method: 'POST', headers: { 'content-type': 'application/cloudevents+json' }, body: JSON.stringify(event) });
      console.log(JSON.stringify(body));
    });
}
