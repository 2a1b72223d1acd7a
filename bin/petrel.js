#!/usr/bin/env node
// The `petrel` command: registers tsx so apps written in TypeScript load as they are, then runs the CLI.
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
