// The web app over a stack without its worker, for the policy and alert console tests: Temporal
// schedules are created, edited, paused and triggered for real; the runs they start are
// terminated at the end. Users admin, op and viewer are logged in; client "web" and repository
// "r1" exist.
import { beforeAll, expect } from 'vitest';
import { addClient } from '../../services/clients.js';
import { addUser } from '../../services/users.js';
import type { WebApp } from '../../web/app.js';
import { registerCleanup } from '../harness/cleanup.js';
import { cleanUpSchedules } from '../harness/policies.js';
import { startStack, type TestStack } from '../harness/stack.js';
import { createStackWebApp } from '../harness/web.js';
import { Browser, password } from './web-browser.js';
import { insertRepositoryRow } from './web-fixtures.js';

export interface WebStackApp {
  stack: TestStack;
  app: WebApp;
  admin: Browser;
  op: Browser;
  viewer: Browser;
}

/** Registers the hook that builds it before the file's tests; its fields are set in beforeAll. */
export function useWebStackApp(): WebStackApp {
  const w = {} as WebStackApp;
  beforeAll(async () => {
    // No worker: nothing runs the workflows the schedules start; they are terminated at the end.
    const stack = await startStack({ worker: false });
    cleanUpSchedules(stack);
    registerCleanup('workflows the schedules and actions started', async () => {
      const q = `TaskQueue="${stack.config.temporal.taskQueue}" AND ExecutionStatus="Running"`;
      for await (const w of stack.temporal.workflow.list({ query: q })) await stack.temporal.workflow.getHandle(w.workflowId, w.runId).terminate('test over').catch(() => {});
    });
    const { app } = createStackWebApp(stack);
    await addUser(stack.deps, { username: 'admin', role: 'admin', password });
    await addUser(stack.deps, { username: 'op', role: 'operator', password });
    await addUser(stack.deps, { username: 'viewer', role: 'viewer', password });
    await addClient(stack.deps, { name: 'web', host: '127.0.0.1', port: 1, paths: ['/srv'] });
    await insertRepositoryRow(stack.deps.db, 'r1');
    const admin = new Browser(app);
    const op = new Browser(app);
    const viewer = new Browser(app);
    for (const [b, u] of [[admin, 'admin'], [op, 'op'], [viewer, 'viewer']] as const) expect((await b.login(u)).status).toBe(303);
    Object.assign(w, { stack, app, admin, op, viewer });
  });
  return w;
}
