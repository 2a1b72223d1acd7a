/**
 * The serverless-offline peer: the echo handler as a Lambda behind serverless-offline 13 on
 * serverless 3, written into a temp dir at bench time (serverless.yml, handler.js, and a
 * node_modules link to the project's). Telemetry, notifications and deprecation notices are off
 * and AWS credentials are dummies, so it never reaches for the network (checked with strace:
 * no inet connect at all).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ECHO_BODY, ECHO_PATH } from '../app.js';
import { freePort, MAIN_DIR, tempDir } from '../harness.js';
import { sleep } from '../stats.js';

export type OfflineMode = 'default' | 'in-process';

const SERVICE = `service: petrel-bench
frameworkVersion: '3'
provider:
  name: aws
  runtime: nodejs20.x
  region: us-east-1
functions:
  echo:
    handler: handler.echo
    events:
      - http:
          path: ${ECHO_PATH.slice(1)}
          method: post
plugins:
  - serverless-offline
`;

// The echo of bench/app.ts (echoReply), as a Lambda handler in plain JavaScript.
const HANDLER = `'use strict';
exports.echo = async (event) => {
  const body = JSON.parse(event.body);
  const name = typeof body === 'object' && body !== null && typeof body.name === 'string' ? body.name : null;
  return { statusCode: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ok: true, name }) };
};
`;

const ENV = {
  SLS_TELEMETRY_DISABLED: '1',
  SLS_NOTIFICATIONS_MODE: 'off',
  SLS_DEPRECATION_DISABLE: '*',
  SLS_INTERACTIVE_SETUP_DISABLE: '1',
  AWS_ACCESS_KEY_ID: 'bench',
  AWS_SECRET_ACCESS_KEY: 'bench',
  AWS_EC2_METADATA_DISABLED: 'true',
};

export class ServerlessOffline {
  private constructor(readonly port: number, private readonly child: ChildProcess, private readonly dir: string) {}

  /** Starts it and waits until POST /echo answers 200; rejects with the reason (and its output) if it cannot. */
  static async start(mode: OfflineMode, timeoutMs = 90_000): Promise<ServerlessOffline> {
    const dir = tempDir('sls');
    writeFileSync(join(dir, 'serverless.yml'), SERVICE);
    writeFileSync(join(dir, 'handler.js'), HANDLER);
    symlinkSync(join(MAIN_DIR, 'node_modules'), join(dir, 'node_modules'));
    const [httpPort, lambdaPort] = [await freePort(), await freePort()];
    const args = ['offline', 'start', '--noPrependStageInUrl', '--httpPort', String(httpPort), '--lambdaPort', String(lambdaPort), ...(mode === 'in-process' ? ['--useInProcess'] : [])];
    // It logs two lines per request: into a file, so no pipe of ours can slow it down or fill up.
    const output = join(dir, 'output.log');
    const fd = openSync(output, 'w');
    const child = spawn(process.execPath, [join(MAIN_DIR, 'node_modules/serverless/bin/serverless.js'), ...args], { cwd: dir, env: { ...process.env, ...ENV }, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    const offline = new ServerlessOffline(httpPort, child, dir);
    const until = performance.now() + timeoutMs;
    while (performance.now() < until && child.exitCode === null) {
      if (await answers(httpPort)) return offline;
      await sleep(100);
    }
    const tail = readFileSync(output, 'utf8').trim().split('\n').slice(-5).join(' | ');
    await offline.stop();
    throw new Error(child.exitCode !== null ? `exited with code ${child.exitCode}: ${tail}` : `POST ${ECHO_PATH} did not answer within ${timeoutMs / 1000} s: ${tail}`);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGTERM');
      const kill = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(kill);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

async function answers(port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}${ECHO_PATH}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: ECHO_BODY });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}
