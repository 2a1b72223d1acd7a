/**
 * `tsx bench/profile-top.ts <file.cpuprofile> [N] [--inclusive]`: the N functions with the most
 * self time (or, with --inclusive, time including their callees) in a V8 CPU profile, e.g. one from
 * `node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx bench/run.ts --quick --runs 1 --only in-process`.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const args = process.argv.slice(2);
const inclusive = args.includes('--inclusive');
const [file, count = '25'] = args.filter((a) => a !== '--inclusive');
if (!file) {
  process.stderr.write('usage: tsx bench/profile-top.ts <file.cpuprofile> [N] [--inclusive]\n');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);

function label(node: ProfileNode): string {
  const frame = node.callFrame;
  const where = frame.url ? `${frame.url.replace(/^.*\/(node_modules|work\/main)\//, '$1/').replace(/\?.*$/, '')}` : '';
  return `${frame.functionName || '(anonymous)'} ${where}`.trim();
}

const time = new Map<string, number>();
let total = 0;
profile.samples.forEach((id, index) => {
  const dt = profile.timeDeltas[index] ?? 0;
  total += dt;
  // Self time: the sampled frame. Inclusive: every distinct function on the sampled stack.
  const keys = new Set<string>();
  for (let node: number | undefined = id; node !== undefined; node = inclusive ? parent.get(node) : undefined) keys.add(label(byId.get(node)!));
  for (const key of keys) time.set(key, (time.get(key) ?? 0) + dt);
});
for (const [key, us] of [...time.entries()].sort((a, b) => b[1] - a[1]).slice(0, Number(count))) {
  process.stdout.write(`${((us / total) * 100).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(6)} ms  ${key}\n`);
}
