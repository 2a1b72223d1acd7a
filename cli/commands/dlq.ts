/** `petrel dlq list | show <id> | redrive [<id>|--all]`: dead letters of a running runtime. */
import type { Command } from 'commander';
import type { DeadLetter } from '../../core/delivery.js';
import { CliError } from '../load.js';
import { DEFAULT_URL, request } from '../shared.js';

export function registerDlq(program: Command): void {
  const dlq = program.command('dlq').description('dead letters: events that failed every attempt');
  dlq
    .command('list')
    .description('list dead letters, newest first')
    .option('-f, --function <name>', 'only this function')
    .option('--url <url>', 'the runtime (env PETREL_URL)', DEFAULT_URL)
    .action(async (options: { function?: string; url: string }) => {
      const query = options.function ? `?function=${encodeURIComponent(options.function)}` : '';
      const letters = (await request(options.url, `/admin/dead-letters${query}`)) as DeadLetter[];
      if (letters.length === 0) return void console.log('no dead letters');
      for (const l of letters) {
        const last = l.attempts.at(-1)?.error.message ?? '';
        console.log(`${l.id}  ${l.deadAt}  ${l.fn}  ${l.event.type}  ${l.attempts.length} attempt(s)  ${last.slice(0, 80)}`);
      }
    });
  dlq
    .command('show')
    .description('show one dead letter: the event and every attempt')
    .argument('<id>', 'dead letter id (from dlq list)')
    .option('--url <url>', 'the runtime (env PETREL_URL)', DEFAULT_URL)
    .action(async (id: string, options: { url: string }) => {
      console.log(JSON.stringify(await request(options.url, `/admin/dead-letters/${encodeURIComponent(id)}`), null, 2));
    });
  dlq
    .command('redrive')
    .description('deliver dead letters to their function again')
    .argument('[id]', 'one dead letter id')
    .option('--all', 'every dead letter')
    .option('-f, --function <name>', 'with --all: only this function')
    .option('--url <url>', 'the runtime (env PETREL_URL)', DEFAULT_URL)
    .action(async (id: string | undefined, options: { all?: boolean; function?: string; url: string }) => {
      if (!id && !options.all) throw new CliError('name a dead letter id, or pass --all');
      if (id && options.all) throw new CliError('give either an id or --all, not both');
      const path = id ? `/admin/dead-letters/${encodeURIComponent(id)}/redrive` : `/admin/dead-letters-redrive${options.function ? `?function=${encodeURIComponent(options.function)}` : ''}`;
      const result = (await request(options.url, path, { method: 'POST' })) as { redriven: number };
      console.log(`redriven: ${result.redriven}`);
    });
}
