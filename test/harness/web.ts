// The web console of a test stack, for browser and HTTP end-to-end tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRedis } from '../../infra/events.js';
import { createJobEventHub, type JobEventHub } from '../../infra/job-event-hub.js';
import { createRedisLoginLimiter } from '../../services/auth.js';
import { createApp, type WebApp } from '../../web/app.js';
import { registerCleanup } from './cleanup.js';
import { freePort, httpStatus, waitFor } from './net.js';
import { projectRoot } from './paths.js';
import type { TestStack } from './stack.js';

/** The web process of the stack, started like `npm start` starts it. */
export async function startWeb(stack: TestStack, adminPassword: string): Promise<{ url: string; proc: ChildProcess; log: string }> {
  const admin = await stack.cli(['first-admin', '--password-stdin'], { input: `${adminPassword}\n` });
  if (admin.code !== 0) throw new Error(`borgcube first-admin failed: ${admin.err}`);
  const port = await freePort();
  const log = join(stack.dataDir, 'logs', 'web.log');
  mkdirSync(join(stack.dataDir, 'logs'), { recursive: true });
  const proc = spawn(process.execPath, [join(projectRoot, 'dist/web/main.js')], {
    env: { ...stack.env, BORGCUBE_WEB_HOST: '127.0.0.1', BORGCUBE_WEB_PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout?.on('data', (c: Buffer) => appendFileSync(log, c));
  proc.stderr?.on('data', (c: Buffer) => appendFileSync(log, c));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  registerCleanup('web process', async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    }
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor('the web console', async () => (await httpStatus(`${url}/healthz`)) === 200, { timeoutMs: 60_000, intervalMs: 300 }).catch((err: Error) => {
    throw new Error(`${err.message}\n${existsSync(log) ? readFileSync(log, 'utf8').slice(-3000) : ''}`);
  });
  return { url, proc, log };
}

/**
 * The web app in this process over the stack's services (Redis login limiter, job event hub),
 * as the tests that drive it with `Browser` need it; closed by the file's cleanup list.
 */
export function createStackWebApp(stack: TestStack): { app: WebApp; hub: JobEventHub } {
  const redis = createRedis(stack.config.redisUrl);
  const hub = createJobEventHub(createRedis(stack.config.redisUrl), stack.deps.log);
  registerCleanup('web app: redis and job event hub', async () => {
    await hub.close();
    await redis.quit();
  });
  const app = createApp({
    services: stack.deps,
    limiter: createRedisLoginLimiter(redis, { prefix: `borgcube-test:${process.pid}:${Date.now()}` }),
    hub,
    health: () => Promise.resolve({ ok: true, database: { ok: true }, redis: { ok: true }, temporal: { ok: true }, workers: {} }),
  });
  return { app, hub };
}
