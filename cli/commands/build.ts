/**
 * `petrel build --target aws [app] [--out dir]`: one Lambda zip per function of the app.
 *
 * Each function gets its own entry, composed from only the services it uses (DynamoDB for tables
 * and delivery records, EventBridge when it emits, S3 for buckets, SQS when a queue feeds it), so
 * esbuild leaves the other AWS SDK clients out. The bundle is minified ESM for Node 20 in
 * `index.mjs` (Lambda handler `index.handler`), zipped with fixed timestamps so the same source
 * gives the same zip. Printed per function: zip size, bundle size, the SDK clients inside, and the
 * cold import time: `import()` of the bundle in a fresh node process (median of 3).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Command } from 'commander';
import type { App, AppFunction } from '../../core/app.js';
import { CliError, DEFAULT_APP, loadApp } from '../load.js';

const ADAPTER = fileURLToPath(new URL('../../adapters/aws-lambda/', import.meta.url));
/** Zip entries get this time, so rebuilding unchanged sources gives a byte-identical zip. */
const ZIP_DATE = new Date('1980-01-01T00:00:00Z');
const IMPORT_RUNS = 3;

export interface AwsBundle {
  fn: string;
  zip: string;
  zipBytes: number;
  bundleBytes: number;
  /** The @aws-sdk/client-* packages bundled. */
  sdkClients: string[];
  /** Median milliseconds to import() the bundle in a fresh node process; absent with measure: false. */
  coldImportMs?: number;
}

/** The entry module of one function: its handler, built from the services it needs. */
export function entrySource(app: App, appFile: string, fn: AppFunction): string {
  const kinds = Object.keys(fn.spec.uses).map((name) => app.resources[name].kind);
  const trigger = fn.spec.trigger.kind;
  const module = (file: string) => JSON.stringify(join(ADAPTER, file));
  const imports = [`import app from ${JSON.stringify(appFile)};`, `import { createHandler } from ${module('handler.ts')};`, `import { awsNames } from ${module('names.ts')};`];
  const services: string[] = [];
  if (kinds.includes('table') || trigger !== 'http') {
    imports.push(`import { DynamoStore } from ${module('dynamodb.ts')};`);
    services.push('store: new DynamoStore(app, { names })');
  }
  if (kinds.includes('bucket')) {
    imports.push(`import { S3Buckets } from ${module('s3.ts')};`);
    services.push('buckets: new S3Buckets(app, { names })');
  }
  if (fn.emits.size > 0) {
    imports.push(`import { EventBridgePublisher } from ${module('eventbridge.ts')};`);
    services.push('bus: new EventBridgePublisher({ eventBusName: names.eventBus })');
  }
  if (trigger === 'event' || trigger === 'mqtt') {
    imports.push(`import { SqsQueues } from ${module('sqs.ts')};`);
    services.push('queues: new SqsQueues()');
  }
  return `${imports.join('\n')}\nconst names = awsNames(app);\nexport const handler = createHandler(app, ${JSON.stringify(fn.name)}, { ${services.join(', ')} });\n`;
}

/** Bundles and zips every function of `app` (loaded from `appFile`) into `outDir`. */
export async function buildAws(app: App, appFile: string, outDir: string, options: { measure?: boolean; functions?: string[] } = {}): Promise<AwsBundle[]> {
  const unknown = (options.functions ?? []).filter((name) => !app.function(name));
  if (unknown.length) throw new CliError(`app "${app.name}" has no function ${unknown.map((n) => `"${n}"`).join(', ')} (it has: ${app.functions.map((f) => f.name).join(', ')})`);
  // Loaded here, not with the CLI: other commands start without the bundler.
  const [{ build }, { default: JSZip }] = await Promise.all([import('esbuild'), import('jszip')]);
  mkdirSync(outDir, { recursive: true });
  const bundles: AwsBundle[] = [];
  for (const fn of app.functions.filter((f) => !options.functions || options.functions.includes(f.name))) {
    const result = await build({
      stdin: { contents: entrySource(app, appFile, fn), resolveDir: dirname(appFile), sourcefile: `${fn.name}.entry.ts`, loader: 'ts' },
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'esm',
      minify: true,
      legalComments: 'none',
      mainFields: ['module', 'main'],
      // Bundled CommonJS dependencies call require() for Node built-ins: give ESM one.
      banner: { js: "import { createRequire as __petrelCreateRequire } from 'node:module'; const require = __petrelCreateRequire(import.meta.url);" },
      outfile: join(outDir, fn.name, 'index.mjs'),
      metafile: true,
      write: false,
      logLevel: 'silent',
    }).catch((error: Error) => {
      throw new CliError(`could not bundle function "${fn.name}": ${error.message}`);
    });
    const code = result.outputFiles[0].contents;
    const bundleFile = join(outDir, fn.name, 'index.mjs');
    mkdirSync(dirname(bundleFile), { recursive: true });
    writeFileSync(bundleFile, code);
    const zip = new JSZip();
    zip.file('index.mjs', code, { date: ZIP_DATE, unixPermissions: 0o644 });
    const zipped = await zip.generateAsync({ type: 'nodebuffer', compression: 'DEFLATE', compressionOptions: { level: 9 }, platform: 'UNIX' });
    const zipFile = join(outDir, `${fn.name}.zip`);
    writeFileSync(zipFile, zipped);
    const sdkClients = [...new Set(Object.keys(result.metafile.inputs).flatMap((input) => /node_modules\/@aws-sdk\/(client-[a-z0-9-]+)\//.exec(input)?.[1] ?? []))].sort();
    bundles.push({
      fn: fn.name,
      zip: zipFile,
      zipBytes: zipped.length,
      bundleBytes: code.length,
      sdkClients,
      ...(options.measure === false ? {} : { coldImportMs: coldImportMs(bundleFile) }),
    });
  }
  return bundles;
}

/** Median time to import() a module in a fresh node process. */
export function coldImportMs(file: string, runs = IMPORT_RUNS): number {
  const script = `const t = performance.now(); await import(${JSON.stringify(pathToFileURL(file).href)}); process.stdout.write(String(performance.now() - t));`;
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
    if (child.status !== 0) throw new CliError(`importing ${file} failed: ${(child.stderr || child.stdout).trim().split('\n').slice(-3).join(' ')}`);
    times.push(Number(child.stdout));
  }
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
}

const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;

export function registerBuild(program: Command): void {
  program
    .command('build')
    .description('bundle an app for a target: --target aws writes one Lambda zip per function')
    .argument('[app]', 'path of the app module (default export: defineApp)', DEFAULT_APP)
    .requiredOption('-t, --target <target>', 'the target to build for: aws')
    .option('-o, --out <dir>', 'where the zips go', 'dist/aws')
    .option('-f, --function <names...>', 'only these functions')
    .option('--no-measure', 'skip timing the cold import of each bundle')
    .action(async (appPath: string, options: { target: string; out: string; function?: string[]; measure: boolean }) => {
      if (options.target !== 'aws') throw new CliError(`--target "${options.target}" cannot be built; the one target with bundles is "aws"`);
      const appFile = resolve(appPath);
      const app = await loadApp(appFile);
      const outDir = resolve(options.out);
      const bundles = await buildAws(app, appFile, outDir, { measure: options.measure, functions: options.function });
      const width = Math.max(8, ...bundles.map((b) => b.fn.length));
      console.log(`petrel: ${bundles.length} Lambda bundles of ${app.name} in ${relative(process.cwd(), outDir) || '.'} (esbuild: minified ESM, node20; handler index.handler)`);
      console.log(`${'function'.padEnd(width)}  ${'zip'.padStart(10)}  ${'index.mjs'.padStart(10)}  ${'cold import'.padStart(11)}  AWS SDK clients`);
      for (const b of bundles) {
        const cold = b.coldImportMs === undefined ? '-' : `${b.coldImportMs.toFixed(0)} ms`;
        console.log(`${b.fn.padEnd(width)}  ${kib(b.zipBytes).padStart(10)}  ${kib(b.bundleBytes).padStart(10)}  ${cold.padStart(11)}  ${b.sdkClients.map((c) => c.replace('client-', '')).join(', ') || 'none'}`);
      }
    });
}
