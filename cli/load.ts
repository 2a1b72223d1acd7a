/** Loads a user's app module, with errors that say what to fix. */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { isApp, type App } from '../core/app.js';

export const DEFAULT_APP = fileURLToPath(new URL('../handlers/air-quality/app.ts', import.meta.url));

export class CliError extends Error {}

export async function loadApp(path = DEFAULT_APP): Promise<App> {
  const file = resolve(path);
  if (!existsSync(file)) throw new CliError(`no app at ${file}: give the path of a module whose default export is defineApp({...})`);
  let module: { default?: unknown };
  try {
    module = (await import(pathToFileURL(file).href)) as { default?: unknown };
  } catch (error) {
    throw new CliError(`could not load ${file}: ${(error as Error).message}`);
  }
  if (!isApp(module.default)) throw new CliError(`${file} does not export an app: write \`export default defineApp({ ... })\``);
  return module.default;
}
