// Policies and checks in the console and the JSON API: app.request() against a real PostgreSQL,
// Redis and the Temporal dev server (web-stack-app.ts). Covers listing, adding through the form
// with a bad cron (400, message, input kept), editing (the Temporal Schedule follows),
// pause/resume/trigger from the API and the page forms (CSRF), roles (viewer 403, operator cannot
// configure), check results on the repository page, and escaping of hostile names and texts.
import { randomUUID } from 'node:crypto';
import { ScheduleNotFoundError } from '@temporalio/client';
import { beforeAll, describe, expect, it } from 'vitest';
import { insertClient } from '../../db/queries/clients.js';
import { repositoryChecksTable } from '../../db/schema.js';
import { createRedis } from '../../infra/events.js';
import { createRedisLoginLimiter } from '../../services/auth.js';
import { unavailable } from '../../services/errors.js';
import { getJob } from '../../services/jobs.js';
import { addPolicy, getPolicy, getPolicyDetails } from '../../services/policies.js';
import { policyScheduleId } from '../../services/policy-schedules.js';
import { createApp, type WebApp } from '../../web/app.js';
import { createJobEventHub } from '../../infra/job-event-hub.js';
import { registerCleanup } from '../harness/cleanup.js';
import { waitFor } from '../harness/net.js';
import type { TestStack } from '../harness/stack.js';
import { Browser } from './web-browser.js';
import { insertRepositoryRow } from './web-fixtures.js';
import { useWebStackApp } from './web-stack-app.js';

const hostileClient = '<img src=x onerror=alert(1)>';
const hostileRepo = '<script>alert("repo")</script>';

describe('policies and checks in the console and the API', () => {
  const w = useWebStackApp();
  let stack: TestStack;
  let app: WebApp;
  let admin: Browser;
  let op: Browser;
  let viewer: Browser;
  beforeAll(() => {
    ({ stack, app, admin, op, viewer } = w);
  });

  const describeSchedule = async (policy: string, kind: 'backup' | 'check' | 'prune' = 'backup') =>
    stack.temporal.schedule.getHandle(policyScheduleId((await getPolicy(stack.deps, policy)).id, kind)).describe();

  const json = async <T>(res: Response) => (await res.json()) as T;

  it('lists no policies yet, with links in the navigation', async () => {
    const page = await (await viewer.get('/policies')).text();
    expect(page).toContain('No policies yet');
    expect(page).toContain('href="/policies"');
    expect(page).toContain('href="/alerts"');
    expect(page).not.toContain('id="add-policy"');
    expect(await (await admin.get('/policies')).text()).toContain('id="add-policy"');
    expect(await (await admin.get('/policies/new')).text()).toContain('id="policy-form"');
    expect((await viewer.get('/policies/new')).status).toBe(403);
  });

  it('refuses a bad cron in the form with 400, says why next to the field, and keeps the input', async () => {
    const form = { name: 'nightly', client: 'web', repository: 'r1', backupCrons: '0 3 * * *\n61 <b>x</b> * * *', timezone: 'Europe/Berlin', keepDaily: '7', keepWeekly: '0', staleAfterHours: '48' };
    const res = await admin.post('/policies', form);
    expect(res.status).toBe(400);
    const page = await res.text();
    expect(page).toContain('line 2: must be a cron expression');
    expect(page).toMatch(/Keep weekly<\/strong>: must be at least 1/);
    expect(page).toContain('aria-invalid="true" aria-describedby="error-backupCrons"');
    // What was typed is back in the form, as text.
    expect(page).toContain('0 3 * * *\n61 &lt;b&gt;x&lt;/b&gt; * * *</textarea>');
    expect(page).toContain('value="Europe/Berlin"');
    expect(page).toContain('name="keepDaily" type="number" min="1" value="7"');
    expect(page).not.toContain('<b>x</b>');
    // Fields pass zod, Temporal refuses the minute 99: the same form, the message from Temporal.
    const temporal = await admin.post('/policies', { ...form, backupCrons: '99 3 * * *', keepWeekly: '' });
    expect(temporal.status).toBe(400);
    expect(await temporal.text()).toMatch(/id="error-backupCrons">backup schedule: /);
    await expect(getPolicy(stack.deps, 'nightly')).rejects.toThrow(/does not exist/);
    // Without the CSRF token nothing is even validated.
    expect((await admin.post('/policies', form, { csrf: false })).status).toBe(403);

    const ok = await admin.post('/policies', { ...form, backupCrons: '0 3 * * *', keepWeekly: '4' });
    expect(ok.status).toBe(303);
    expect(ok.headers.get('location')).toBe('/policies/nightly?done=added');
    const p = await getPolicy(stack.deps, 'nightly');
    expect(p).toMatchObject({ backupCrons: ['0 3 * * *'], timezone: 'Europe/Berlin', retention: { daily: 7, weekly: 4 }, staleAfterHours: 48, paused: false });
    expect((await describeSchedule('nightly')).spec.timezone).toBe('Europe/Berlin');
    expect((await admin.post('/policies', { ...form, backupCrons: '', keepWeekly: '' })).status).toBe(409);
  });

  it('refuses a bad cron on the API with 400 and the message, and adds a good policy', async () => {
    const bad = await admin.api('POST', '/api/v1/policies', { name: 'api-1', client: 'web', repository: 'r1', backupCrons: ['every night'] });
    expect(bad.status).toBe(400);
    const body = await json<{ error: { kind: string; message: string; issues: Array<{ path: string; message: string }> } }>(bad);
    expect(body.error.kind).toBe('invalid');
    expect(body.error.issues).toEqual([{ path: 'backupCrons.0', message: expect.stringContaining('must be a cron expression') as string }]);
    const refused = await admin.api('POST', '/api/v1/policies', { name: 'api-1', client: 'web', repository: 'r1', backupCrons: ['0 25 * * *'] });
    expect(refused.status).toBe(400);
    expect((await json<{ error: { message: string } }>(refused)).error.message).toMatch(/^backup schedule: /);
    const created = await admin.api('POST', '/api/v1/policies', { name: 'api-1', client: 'web', repository: 'r1', backupCrons: ['@every 12h'], checkCrons: ['0 5 * * 0'] });
    expect(created.status).toBe(201);
    expect(await json<{ name: string; clientName: string }>(created)).toMatchObject({ name: 'api-1', clientName: 'web' });
    expect((await describeSchedule('api-1', 'check')).action).toMatchObject({ workflowType: 'scheduledMaintenance' });
  });

  it('editing a policy (form and API) updates its Temporal Schedules', async () => {
    const page = await (await admin.get('/policies/nightly')).text();
    expect(page).toContain('id="edit"');
    const res = await admin.post('/policies/nightly', { client: 'web', repository: 'r1', backupCrons: '0 3 * * *', timezone: 'Asia/Tokyo', keepDaily: '7', checkCrons: '30 4 * * 0', checkVerifyData: '1', staleAfterHours: '48' });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/policies/nightly?done=saved');
    const d = await getPolicyDetails(stack.deps, 'nightly');
    expect(d).toMatchObject({ timezone: 'Asia/Tokyo', retention: { daily: 7 }, checkCrons: ['30 4 * * 0'], checkVerifyData: true });
    expect(d.retention.weekly).toBeUndefined();
    // 03:00 in Tokyo is 18:00 UTC.
    expect((await describeSchedule('nightly')).info.nextActionTimes[0]!.toISOString()).toMatch(/T18:0[0-4]:\d\d\.\d{3}Z$/ /* the default 5 min schedule jitter */);
    expect((await describeSchedule('nightly', 'check')).spec.timezone).toBe('Asia/Tokyo');

    // A refused edit shows the form again with the input and leaves the policy as it was.
    const bad = await admin.post('/policies/nightly', { client: 'web', repository: 'r1', backupCrons: '0 3 * * *', timezone: 'Mars/Olympus', checkCrons: '30 4 * * 0' });
    expect(bad.status).toBe(400);
    const badPage = await bad.text();
    expect(badPage).toContain('id="error-timezone">must be an IANA time zone');
    expect(badPage).toContain('value="Mars/Olympus"');
    expect((await getPolicy(stack.deps, 'nightly')).timezone).toBe('Asia/Tokyo');

    const patched = await admin.api('PATCH', '/api/v1/policies/nightly', { pruneCrons: ['0 5 * * *'], checkCrons: [] });
    expect(patched.status).toBe(200);
    expect((await describeSchedule('nightly', 'prune')).info.nextActionTimes[0]!.toISOString()).toMatch(/T20:0[0-4]:\d\d\.\d{3}Z$/ /* the default 5 min schedule jitter */);
    await expect(describeSchedule('nightly', 'check')).rejects.toBeInstanceOf(ScheduleNotFoundError);
    const shown = await json<{ schedules: Record<string, { exists: boolean }> }>(await viewer.api('GET', '/api/v1/policies/nightly'));
    expect(Object.keys(shown.schedules).sort()).toEqual(['backup', 'prune']);
  });

  it('pauses, resumes and triggers from the API and the page forms; the forms need the CSRF token', async () => {
    // Page form without the token: refused, nothing changes.
    expect((await op.post('/policies/nightly/pause', {}, { csrf: false })).status).toBe(403);
    expect((await getPolicy(stack.deps, 'nightly')).paused).toBe(false);
    const paused = await op.post('/policies/nightly/pause', {});
    expect(paused.status).toBe(303);
    expect(paused.headers.get('location')).toBe('/policies/nightly?done=paused');
    expect((await getPolicy(stack.deps, 'nightly')).paused).toBe(true);
    expect((await describeSchedule('nightly')).state.paused).toBe(true);
    const page = await (await op.get('/policies/nightly?done=paused')).text();
    expect(page).toContain('id="done-note"');
    expect(page).toContain('id="resume-policy"');
    expect(page).toContain('data-state="paused"');

    // The API: a session needs the X-CSRF-Token header, a bearer token does not.
    expect((await op.api('POST', '/api/v1/policies/nightly/resume', undefined, { 'x-csrf-token': '' })).status).toBe(403);
    const resumed = await op.api('POST', '/api/v1/policies/nightly/resume');
    expect(resumed.status).toBe(200);
    expect(await json<{ paused: boolean }>(resumed)).toMatchObject({ paused: false });
    expect((await describeSchedule('nightly')).state.paused).toBe(false);
    const { token } = await json<{ token: string }>(await op.api('POST', '/api/v1/tokens', { name: 'policy-script' }));
    const bearer = { authorization: `Bearer ${token}` };
    expect((await app.request('/api/v1/policies/nightly/pause', { method: 'POST', headers: bearer })).status).toBe(200);
    expect((await describeSchedule('nightly')).state.paused).toBe(true);
    expect((await app.request('/api/v1/policies/nightly/resume', { method: 'POST', headers: bearer })).status).toBe(200);

    // Trigger: the schedule starts a run now (also from the page).
    const before = (await describeSchedule('nightly')).info.numActionsTaken;
    const t = await op.api('POST', '/api/v1/policies/nightly/trigger');
    expect(t.status).toBe(202);
    expect(await json<{ scheduleId: string }>(t)).toMatchObject({ scheduleId: policyScheduleId((await getPolicy(stack.deps, 'nightly')).id, 'backup') });
    await waitFor('the triggered run', async () => (await describeSchedule('nightly')).info.numActionsTaken > before, { timeoutMs: 15_000 });
    const pageTrigger = await op.post('/policies/nightly/trigger', {});
    expect(pageTrigger.status).toBe(303);
    expect(pageTrigger.headers.get('location')).toBe('/policies/nightly?done=triggered');
  });

  it('starts prune and check jobs from the policy and repository pages and the API', async () => {
    const prune = await op.post('/policies/nightly/prune', {});
    expect(prune.status).toBe(303);
    const pruneJob = await getJob(stack.deps, prune.headers.get('location')!.split('/').pop()!);
    expect(pruneJob).toMatchObject({ kind: 'prune', triggeredBy: 'web:op', state: 'running' });
    // No retention rules: nothing to prune by.
    const noRules = await op.api('POST', '/api/v1/policies/api-1/prune');
    expect(noRules.status).toBe(400);
    expect((await json<{ error: { message: string } }>(noRules)).error.message).toContain('has no retention rules');

    const check = await op.post('/repositories/r1/check', { verifyData: '1' });
    expect(check.status).toBe(303);
    const checkJob = await getJob(stack.deps, check.headers.get('location')!.split('/').pop()!);
    expect(checkJob).toMatchObject({ kind: 'check', triggeredBy: 'web:op' });
    const apiCheck = await op.api('POST', '/api/v1/policies/nightly/check?verifyData=false');
    expect(apiCheck.status).toBe(201);
    expect(await json<{ kind: string }>(apiCheck)).toMatchObject({ kind: 'check' });
    expect((await op.api('POST', '/api/v1/repositories/r1/check')).status).toBe(201);
  });

  it('shows check results on the repository page, their errors as text', async () => {
    const repo = (await getPolicy(stack.deps, 'nightly')).repositoryId;
    const t = Date.now();
    await stack.deps.db.insert(repositoryChecksTable).values([
      { repositoryId: repo, result: 'ok', verifyData: false, exitCode: 0, startedAt: new Date(t - 60_000), finishedAt: new Date(t - 55_000), durationMs: 5000 },
      {
        repositoryId: repo,
        result: 'failed',
        verifyData: true,
        exitCode: 1,
        errors: ['segment 3: <script>alert("check")</script> broken'],
        errorCount: 1,
        startedAt: new Date(t - 30_000),
        finishedAt: new Date(t - 10_000),
        durationMs: 20_000,
      },
    ]);
    const page = await (await viewer.get('/repositories/r1')).text();
    const table = page.slice(page.indexOf('id="checks"'));
    expect(table.indexOf('data-state="failed"')).toBeLessThan(table.indexOf('data-state="ok"'));
    expect(page).toContain('segment 3: &lt;script&gt;alert(&quot;check&quot;)&lt;/script&gt; broken');
    expect(page).toContain('20 s');
    expect(page).not.toContain('id="check-repository"');
    expect(await (await op.get('/repositories/r1')).text()).toContain('id="check-repository"');
    const api = await json<{ checks: Array<{ result: string }> }>(await viewer.api('GET', '/api/v1/repositories/r1/checks?limit=1'));
    expect(api.checks.map((c) => c.result)).toEqual(['failed']);
    // The policy list shows the latest.
    const list = await (await viewer.get('/policies')).text();
    expect(list).toMatch(/data-policy="nightly">[\s\S]*?class="badge state-failed" data-state="failed">failed/);
  });

  it('lets a viewer read everything but refuses every action with 403; an operator cannot configure', async () => {
    expect((await viewer.get('/policies')).status).toBe(200);
    const page = await (await viewer.get('/policies/nightly')).text();
    for (const id of ['trigger-policy', 'pause-policy', 'resume-policy', 'prune-policy', 'check-policy', 'remove-policy', 'policy-form']) expect(page).not.toContain(`id="${id}"`);
    const opPage = await (await op.get('/policies/nightly')).text();
    expect(opPage).toContain('id="trigger-policy"');
    expect(opPage).not.toContain('id="policy-form"');
    expect(opPage).not.toContain('id="remove-policy"');
    for (const a of ['pause', 'resume', 'trigger', 'prune', 'check', 'delete']) expect((await viewer.post(`/policies/nightly/${a}`, {})).status, a).toBe(403);
    for (const a of ['pause', 'resume', 'trigger', 'prune', 'check']) expect((await viewer.api('POST', `/api/v1/policies/nightly/${a}`)).status, a).toBe(403);
    expect((await viewer.post('/repositories/r1/check', {})).status).toBe(403);
    expect((await viewer.api('POST', '/api/v1/repositories/r1/check')).status).toBe(403);
    expect((await viewer.post('/policies/nightly', { backupCrons: '' })).status).toBe(403);
    expect((await op.post('/policies/nightly', { backupCrons: '' })).status).toBe(403);
    expect((await op.post('/policies', { name: 'x', client: 'web', repository: 'r1' })).status).toBe(403);
    expect((await op.api('POST', '/api/v1/policies', { name: 'x', client: 'web', repository: 'r1' })).status).toBe(403);
    expect((await op.api('PATCH', '/api/v1/policies/nightly', { backupCrons: [] })).status).toBe(403);
    expect((await op.api('DELETE', '/api/v1/policies/nightly')).status).toBe(403);
    expect((await op.post('/policies/nightly/delete', {})).status).toBe(403);
    expect((await viewer.api('GET', '/api/v1/policies')).status).toBe(200);
    expect((await getPolicy(stack.deps, 'nightly')).backupCrons).toEqual(['0 3 * * *']);
  });

  it('escapes hostile client and repository names in the policy list and page', async () => {
    await insertClient(stack.deps.db, { id: randomUUID(), name: hostileClient, host: '127.0.0.1', paths: ['/srv'] });
    await insertRepositoryRow(stack.deps.db, hostileRepo);
    await addPolicy(stack.deps, { name: 'hostile', client: hostileClient, repository: hostileRepo, backupCrons: ['0 4 * * *'] });
    for (const path of ['/policies', '/policies/hostile']) {
      const html = await (await admin.get(path)).text();
      expect(html, path).not.toContain('<img src=x');
      expect(html, path).not.toContain('<script>alert');
      expect(html, path).toContain('&lt;img src=x onerror=alert(1)&gt;');
      expect(html, path).toContain('&lt;script&gt;alert(&quot;repo&quot;)&lt;/script&gt;');
      for (const m of html.matchAll(/<script\b[^>]*>/g)) expect(m[0]).toMatch(/src="\/static\//);
    }
    const list = await (await admin.get('/policies')).text();
    expect(list).toContain(`href="/clients/${encodeURIComponent(hostileClient)}"`);
    const api = await json<{ policies: Array<{ name: string; backupSchedule: { exists: boolean; nextRun: string } }> }>(await viewer.api('GET', '/api/v1/policies'));
    expect(api.policies.map((p) => p.name)).toEqual(['api-1', 'hostile', 'nightly']);
    expect(api.policies[1]!.backupSchedule).toMatchObject({ exists: true, nextRun: expect.stringMatching(/T04:0[0-4]:\d\d\.\d{3}Z$/ /* the default 5 min schedule jitter */) as string });
    // Removing a policy removes its schedules.
    const id = (await getPolicy(stack.deps, 'hostile')).id;
    expect((await admin.post('/policies/hostile/delete', {})).status).toBe(303);
    await expect(stack.temporal.schedule.getHandle(policyScheduleId(id, 'backup')).describe()).rejects.toBeInstanceOf(ScheduleNotFoundError);
  });

  it('lists policies without schedule states when Temporal does not answer', async () => {
    const redis = createRedis(stack.config.redisUrl);
    const hub = createJobEventHub(createRedis(stack.config.redisUrl), stack.deps.log);
    registerCleanup('second app', async () => {
      await hub.close();
      await redis.quit();
    });
    const down = createApp({
      services: { ...stack.deps, temporal: () => Promise.reject(unavailable('Temporal is down (test)')) },
      limiter: createRedisLoginLimiter(redis, { prefix: `borgcube-test:${process.pid}:down` }),
      hub,
      health: () => Promise.reject(new Error('unused')),
    });
    const b = new Browser(down);
    await b.login('viewer');
    const res = await b.get('/policies');
    expect(res.status).toBe(200);
    const page = await res.text();
    expect(page).toContain('id="temporal-error"');
    expect(page).toContain('Temporal is down (test)');
    expect(page).toContain('data-policy="nightly"');
  });
});
