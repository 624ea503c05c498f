// Policies, checks and alerts in the console and the JSON API: app.request() against a real
// PostgreSQL, Redis and the Temporal dev server (a stack without its worker: schedules are
// created, edited, paused and triggered for real; the runs they start are terminated at the end).
// Covers listing, adding through the form with a bad cron (400, message, input kept), editing
// (the Temporal Schedule follows), pause/resume/trigger from the API and the page forms (CSRF),
// roles (viewer 403, operator cannot configure), check results on the repository page, alert
// channels, incidents, and escaping of hostile names and texts.
import { randomUUID } from 'node:crypto';
import { ScheduleNotFoundError } from '@temporalio/client';
import { beforeAll, describe, expect, it } from 'vitest';
import { insertClient } from '../../db/queries/clients.js';
import { alertNotificationsTable, incidentsTable, repositoryChecksTable } from '../../db/schema.js';
import { createRedis } from '../../infra/events.js';
import { createRedisLoginLimiter } from '../../services/auth.js';
import { addClient } from '../../services/clients.js';
import { unavailable } from '../../services/errors.js';
import { getJob } from '../../services/jobs.js';
import { addPolicy, getPolicy, getPolicyDetails } from '../../services/policies.js';
import { policyScheduleId } from '../../services/policy-schedules.js';
import { addUser } from '../../services/users.js';
import { createApp, type WebApp } from '../../web/app.js';
import { createJobEventHub } from '../../infra/job-event-hub.js';
import { startWebhookReceiver } from '../harness/alert-sinks.js';
import { registerCleanup } from '../harness/cleanup.js';
import { waitFor } from '../harness/net.js';
import { cleanUpSchedules } from '../harness/policies.js';
import { startStack, type TestStack } from '../harness/stack.js';
import { Browser, password } from './web-browser.js';
import { insertRepositoryRow } from './web-fixtures.js';

const hostileClient = '<img src=x onerror=alert(1)>';
const hostileRepo = '<script>alert("repo")</script>';

describe('policies, checks and alerts in the console and the API', () => {
  let stack: TestStack;
  let app: WebApp;
  let admin: Browser;
  let op: Browser;
  let viewer: Browser;

  const describeSchedule = async (policy: string, kind: 'backup' | 'check' | 'prune' = 'backup') =>
    stack.temporal.schedule.getHandle(policyScheduleId((await getPolicy(stack.deps, policy)).id, kind)).describe();

  const json = async <T>(res: Response) => (await res.json()) as T;

  beforeAll(async () => {
    // No worker: nothing runs the workflows the schedules start; they are terminated at the end.
    stack = await startStack({ worker: false });
    cleanUpSchedules(stack);
    registerCleanup('workflows the schedules and actions started', async () => {
      const q = `TaskQueue="${stack.config.temporal.taskQueue}" AND ExecutionStatus="Running"`;
      for await (const w of stack.temporal.workflow.list({ query: q })) await stack.temporal.workflow.getHandle(w.workflowId, w.runId).terminate('test over').catch(() => {});
    });
    const redis = createRedis(stack.config.redisUrl);
    const sub = createRedis(stack.config.redisUrl);
    const hub = createJobEventHub(sub, stack.deps.log);
    registerCleanup('redis and hub', async () => {
      await hub.close();
      await redis.quit();
    });
    app = createApp({
      services: stack.deps,
      limiter: createRedisLoginLimiter(redis, { prefix: `borgcube-test:${process.pid}:${Date.now()}` }),
      hub,
      health: () => Promise.resolve({ ok: true, database: { ok: true }, redis: { ok: true }, temporal: { ok: true }, workers: {} }),
    });
    await addUser(stack.deps, { username: 'admin', role: 'admin', password });
    await addUser(stack.deps, { username: 'op', role: 'operator', password });
    await addUser(stack.deps, { username: 'viewer', role: 'viewer', password });
    await addClient(stack.deps, { name: 'web', host: '127.0.0.1', port: 1, paths: ['/srv'] });
    await insertRepositoryRow(stack.deps.db, 'r1');
    admin = new Browser(app);
    op = new Browser(app);
    viewer = new Browser(app);
    for (const [b, u] of [[admin, 'admin'], [op, 'op'], [viewer, 'viewer']] as const) expect((await b.login(u)).status).toBe(303);
  });

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
    expect((await describeSchedule('nightly')).info.nextActionTimes[0]!.toISOString()).toMatch(/T18:00:00\.000Z$/);
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
    expect((await describeSchedule('nightly', 'prune')).info.nextActionTimes[0]!.toISOString()).toMatch(/T20:00:00\.000Z$/);
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
    expect(api.policies[1]!.backupSchedule).toMatchObject({ exists: true, nextRun: expect.stringMatching(/T04:00:00\.000Z$/) as string });
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

  it('manages alert channels: add (bad input refused and kept), test, disable, enable, remove', async () => {
    const hook = await startWebhookReceiver();
    const bad = await admin.post('/alerts/webhook', { url: 'ftp://example.org/"><b>x' });
    expect(bad.status).toBe(400);
    const badPage = await bad.text();
    expect(badPage).toContain('id="error-url">must be an http:// or https:// URL');
    expect(badPage).toContain('value="ftp://example.org/&quot;&gt;&lt;b&gt;x"');
    expect((await admin.post('/alerts/webhook', { url: hook.url }, { csrf: false })).status).toBe(403);
    expect((await op.post('/alerts/webhook', { url: hook.url })).status).toBe(403);
    const added = await admin.post('/alerts/webhook', { url: hook.url });
    expect(added.status).toBe(303);
    const badMail = await admin.post('/alerts/email', { smtpUrl: 'smtp://mail.example.org:587', from: 'borgcube@example.org', to: 'ops@example.org, not-an-address' });
    expect(badMail.status).toBe(400);
    expect(await badMail.text()).toMatch(/id="error-to">address 2: /);
    const mail = await admin.api('POST', '/api/v1/alerts/channels/email', { smtpUrl: 'smtp://mail.example.org:587', from: 'borgcube@example.org', to: ['ops@example.org'] });
    expect(mail.status).toBe(201);
    const { channels } = await json<{ channels: Array<{ id: string; kind: string; label: string; enabled: boolean }> }>(await viewer.api('GET', '/api/v1/alerts/channels'));
    expect(channels.map((c) => c.kind)).toEqual(['webhook', 'email']);
    const webhook = channels[0]!;
    // The list shows where it points, never the token in the URL.
    const page = await (await viewer.get('/alerts')).text();
    expect(page).toContain(webhook.label);
    expect(page).not.toContain('s3cret');
    expect(page).not.toContain('/alerts/channels/'); // a viewer gets no buttons

    // Test: an operator may; the receiver got it.
    expect((await viewer.post(`/alerts/channels/${webhook.id}/test`, {})).status).toBe(403);
    const tested = await op.post(`/alerts/channels/${webhook.id}/test`, {});
    expect(tested.status).toBe(200);
    expect(await tested.text()).toMatch(/id="test-results"[\s\S]*delivered/);
    expect(hook.accepted.map((a) => a.body.kind)).toEqual(['test']);
    const apiTest = await json<{ results: Array<{ ok: boolean }> }>(await op.api('POST', `/api/v1/alerts/channels/${webhook.id}/test`));
    expect(apiTest.results).toEqual([expect.objectContaining({ ok: true })]);

    // Disable and enable (admin only), then remove.
    expect((await op.post(`/alerts/channels/${webhook.id}/disable`, {})).status).toBe(403);
    expect((await admin.post(`/alerts/channels/${webhook.id}/disable`, {})).status).toBe(303);
    expect((await json<{ channels: Array<{ enabled: boolean }> }>(await viewer.api('GET', '/api/v1/alerts/channels'))).channels[0]!.enabled).toBe(false);
    const enabled = await admin.api('PATCH', `/api/v1/alerts/channels/${webhook.id}`, { enabled: true });
    expect(await json<{ enabled: boolean }>(enabled)).toMatchObject({ enabled: true });
    expect((await op.api('DELETE', `/api/v1/alerts/channels/${webhook.id}`)).status).toBe(403);
    expect((await admin.post(`/alerts/channels/${webhook.id}/delete`, {})).status).toBe(303);
    expect((await admin.api('DELETE', `/api/v1/alerts/channels/${webhook.id}`)).status).toBe(404);
    expect((await admin.api('DELETE', '/api/v1/alerts/channels/not-a-uuid')).status).toBe(400);
    const left = (await json<{ channels: Array<{ kind: string }> }>(await viewer.api('GET', '/api/v1/alerts/channels'))).channels;
    expect(left.map((c) => c.kind)).toEqual(['email']);
  });

  it('shows open and resolved incidents as text, and the undeliverable notices', async () => {
    const [open] = await stack.deps.db
      .insert(incidentsTable)
      .values({ kind: 'job-failed', subjectKey: `client:${randomUUID()}`, subject: 'client <i>evil</i>', summary: 'backup failed: <script>alert("incident")</script>' })
      .returning();
    await stack.deps.db.insert(incidentsTable).values({
      kind: 'stale',
      subjectKey: `policy:${randomUUID()}`,
      subject: 'client web (policy nightly)',
      summary: 'no backup for 50 h',
      openedAt: new Date(Date.now() - 3600_000),
      resolvedAt: new Date(),
      resolveSummary: 'the policy was paused',
    });
    const channel = (await json<{ channels: Array<{ id: string }> }>(await viewer.api('GET', '/api/v1/alerts/channels'))).channels[0]!;
    await stack.deps.db.insert(alertNotificationsTable).values({
      incidentId: open!.id,
      channelId: channel.id,
      event: 'firing',
      state: 'failed',
      attempts: 5,
      lastError: 'e-mail via mail.example.org: <b>550</b> no such user',
      payload: { kind: 'job-failed', state: 'firing', subject: 'x', summary: 'x', link: '/', temporalLink: null, time: new Date().toISOString(), incidentId: open!.id, openedAt: null, resolvedAt: null },
    });
    const page = await (await viewer.get('/alerts')).text();
    expect(page).not.toContain('<script>alert');
    expect(page).not.toContain('<i>evil</i>');
    expect(page).not.toContain('<b>550</b>');
    expect(page).toContain('backup failed: &lt;script&gt;alert(&quot;incident&quot;)&lt;/script&gt;');
    expect(page).toContain('&lt;b&gt;550&lt;/b&gt; no such user');
    expect(page).toMatch(/id="failed-count"><span class="n">1<\/span>/);
    expect(page).toMatch(/id="open-incidents"[\s\S]*client &lt;i&gt;evil&lt;\/i&gt;/);
    expect(page).toMatch(/id="recent-incidents"[\s\S]*the policy was paused/);
    const api = await json<{ openIncidents: Array<{ subject: string }>; failedNotifications: number }>(await viewer.api('GET', '/api/v1/alerts'));
    expect(api).toMatchObject({ failedNotifications: 1, openIncidents: [{ subject: 'client <i>evil</i>' }] });
    const resolved = await json<{ incidents: Array<{ kind: string }> }>(await viewer.api('GET', '/api/v1/alerts/incidents?state=resolved'));
    expect(resolved.incidents.map((i) => i.kind)).toEqual(['stale']);
  });

  it('documents the new routes in the OpenAPI document with their roles', async () => {
    const doc = await json<{ paths: Record<string, Record<string, { 'x-required-role': string }>> }>(await app.request('/api/v1/openapi.json'));
    expect(doc.paths['/policies']!.post!['x-required-role']).toBe('admin');
    expect(doc.paths['/policies/{name}/pause']!.post!['x-required-role']).toBe('operator');
    expect(doc.paths['/policies/{name}/trigger']!.post!['x-required-role']).toBe('operator');
    expect(doc.paths['/policies/{name}']!.get!['x-required-role']).toBe('viewer');
    expect(doc.paths['/repositories/{name}/checks']!.get!['x-required-role']).toBe('viewer');
    expect(doc.paths['/alerts/channels/webhook']!.post!['x-required-role']).toBe('admin');
    expect(doc.paths['/alerts/channels/{id}/test']!.post!['x-required-role']).toBe('operator');
    expect(doc.paths['/alerts/incidents']!.get!['x-required-role']).toBe('viewer');
  });
});
