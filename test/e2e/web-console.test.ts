// Issue 5 acceptance in a real browser: headless Debian Chromium driven by playwright-core
// against the real web process (dist/web/main.js) of a complete test stack (worker, repository
// service, BorgCube sshd, Temporal) and a client host behind its own sshd.
//
// Log in; add a client through the form; start a backup; the job page's progress bar and log
// move over the WebSocket without a reload, and it ends `succeeded`; a viewer sees no start or
// cancel controls and the API answers 403; logged out, pages redirect to the login and the API
// and WebSocket answer 401; a POST without the CSRF token is refused; a file named
// <script>alert(1)</script> shows as text; a policy is added through its form (a bad cron comes
// back with the reason and the input kept), paused and resumed from its page (the Temporal
// Schedule follows) and removed. Screenshots go to docs/screenshots/.
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ScheduleNotFoundError } from '@temporalio/client';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import * as jobsQ from '../../db/queries/jobs.js';
import { createEventPublisher, createRedis } from '../../infra/events.js';
import { findRepositoryByName } from '../../db/queries/repositories.js';
import { addClient } from '../../services/clients.js';
import { getJob } from '../../services/jobs.js';
import { getPolicy } from '../../services/policies.js';
import { policyScheduleId } from '../../services/policy-schedules.js';
import { addUser } from '../../services/users.js';
import { registerCleanup, runCleanups } from '../harness/cleanup.js';
import { createClientHost, type ClientHost } from '../harness/client-host.js';
import { cleanUpSchedules } from '../harness/policies.js';
import { projectRoot } from '../harness/paths.js';
import { startClientSshd, type ClientSshd } from '../harness/sshd.js';
import { startStack, type TestStack } from '../harness/stack.js';
import { startWeb } from '../harness/web.js';

const adminPassword = 'e2e-admin-password-1234';
const viewerPassword = 'e2e-viewer-password-1234';
const xss = '<script>alert(1)</script>';
// Screenshots land in docs/screenshots/ (committed, shown in the README) only when asked for, so
// that ordinary test runs leave the work tree clean: BORGCUBE_UPDATE_SCREENSHOTS=1 npm run test:e2e.
const updateScreenshots = process.env.BORGCUBE_UPDATE_SCREENSHOTS === '1';
let screenshots = join(projectRoot, 'docs', 'screenshots');
const chromiumArgs = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

async function login(page: Page, url: string, user: string, password: string) {
  await page.goto(`${url}/`);
  await page.waitForURL(/\/login/);
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', password);
  await Promise.all([page.waitForURL(`${url}/`), page.click('button[type=submit]')]);
}

/**
 * Polls a page expression until it is truthy. Not page.waitForFunction: with a string it
 * evaluates through `new Function` in the page, which the console's CSP rightly forbids.
 */
async function waitForTrue(page: Page, expression: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await page.evaluate(expression))) {
    if (Date.now() > deadline) throw new Error(`still false after ${timeoutMs} ms: ${expression}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A WebSocket upgrade's HTTP answer (or 101 when it opened). */
function upgradeStatus(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers });
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.on('open', () => {
      resolve(101);
      ws.close();
    });
    ws.on('error', () => {});
  });
}

describe('web console in Chromium', () => {
  let stack: TestStack;
  let sshd: ClientSshd;
  let host: ClientHost;
  let web: { url: string; log: string };
  let browser: Browser;
  let jobId: string;

  beforeAll(async () => {
    stack = await startStack();
    sshd = await startClientSshd();
    // Enough incompressible data that the backup runs for several seconds of progress events.
    host = await createClientHost({
      authorizedKeys: [stack.serverPublicKey],
      tree: {
        'data/a.bin': { type: 'file', size: 96 << 20, seed: 'a' },
        'data/b.bin': { type: 'file', size: 96 << 20, seed: 'b' },
        'data/small/notes.txt': 'hello\n'.repeat(1000),
        [`data/${xss}`]: 'a file whose name is markup\n',
      },
    });
    const repo = await stack.cli(['repo', 'add', 'main', '--path', `${stack.dataDir}-repos/main`]);
    expect(repo.code, repo.err).toBe(0);
    web = await startWeb(stack, adminPassword);
    await addUser(stack.deps, { username: 'viewer', role: 'viewer', password: viewerPassword });
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: chromiumArgs });
    registerCleanup('chromium', () => browser.close());
    if (!updateScreenshots) screenshots = join(stack.dataDir, 'screenshots');
    mkdirSync(screenshots, { recursive: true });
  });
  afterAll(runCleanups);

  it('logs in, adds a client, starts a backup and follows it live until it succeeds', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1360, height: 900 } });
    const page = await ctx.newPage();
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    await login(page, web.url, 'admin', adminPassword);
    expect(await page.locator('h1').textContent()).toBe('Dashboard');

    // Add the client through the form.
    await page.goto(`${web.url}/clients/new`);
    await page.fill('input[name=name]', 'web-e2e');
    await page.fill('input[name=host]', sshd.host);
    await page.fill('input[name=port]', String(sshd.port));
    await page.fill('input[name=user]', host.username);
    await page.fill('textarea[name=paths]', host.path('data'));
    await Promise.all([page.waitForURL(`${web.url}/clients/web-e2e`), page.click('#client-form button[type=submit]')]);
    expect(await page.locator('h1').textContent()).toBe('Client web-e2e');

    // Test the connection: pins the host key, reports borg.
    await Promise.all([page.waitForURL(`${web.url}/clients/web-e2e/test`), page.click('#test-client button[type=submit]')]);
    expect(await page.locator('#test-result').textContent()).toContain('Connection works');
    await page.goto(`${web.url}/clients/web-e2e`);

    // Start a backup from the client page; the job page opens.
    await page.selectOption('#start-repository', 'main');
    await Promise.all([page.waitForURL(/\/jobs\/[0-9a-f-]{36}$/), page.click('#start-backup button[type=submit]')]);
    jobId = page.url().split('/').pop()!;
    // Marks this document: a reload would lose it.
    await page.evaluate('window.noReload = true');
    const logCount = () => page.locator('#log li').count();
    const linesAtLoad = await logCount();
    const readBar = async () => Number(await page.evaluate("document.getElementById('job-progress').value"));

    // Progress arrives over the WebSocket while the job runs.
    await waitForTrue(page, "Number(document.getElementById('job').dataset.progressEvents || 0) >= 2", 180_000);
    const barRunning = await readBar();
    expect(barRunning).toBeGreaterThan(0);
    expect(await page.locator('#job').getAttribute('data-state')).toBe('running');
    expect(await page.locator('#cancel-form').count()).toBe(1);
    await page.screenshot({ path: join(screenshots, 'job-running.png'), fullPage: true });
    // The dashboard meanwhile, in a second tab: the running job with its progress.
    const dash = await ctx.newPage();
    await dash.goto(`${web.url}/`);
    if (await dash.locator('#running-jobs').count()) {
      // Its row follows the job over a WebSocket too.
      await waitForTrue(dash, "Number(document.querySelector('#running-jobs tr[data-job-id]')?.dataset.progressEvents || 0) >= 1", 30_000).catch(() => undefined);
      await dash.screenshot({ path: join(screenshots, 'dashboard-running.png'), fullPage: true });
    }
    await dash.close();

    await waitForTrue(page, "!['running', 'queued'].includes(document.getElementById('job').dataset.state)", 300_000);
    const state = await page.locator('#job').getAttribute('data-state');
    const job = await getJob(stack.deps, jobId);
    expect(state, `job ${job.state}: ${job.error}\n${stack.worker.tail(30)}`).toBe('succeeded');
    expect(job.state).toBe('succeeded');
    expect(await page.locator('#job-state .badge').textContent()).toBe('succeeded');
    expect(await readBar()).toBe(1000);
    expect(await logCount()).toBeGreaterThan(linesAtLoad);
    expect(await page.locator('#cancel-form').count()).toBe(0);
    expect(await page.evaluate('window.noReload')).toBe(true);
    expect(dialogs).toEqual([]);

    // The repository page lists the archive as recorded, and as read live with the real key.
    await page.goto(`${web.url}/repositories/main`);
    expect(await page.locator('#archives').textContent()).toContain(job.archiveName!);
    await Promise.all([page.waitForURL(/\/repositories\/main\/live$/), page.click('#read-live button')]);
    expect(await page.locator('#archives').textContent()).toContain(job.archiveName!);

    // The dashboard shows the client's last backup, once the web process has refreshed its
    // per-client summaries (every 10 s, so that the page stays fast with 10,000 clients).
    await expect
      .poll(
        async () => {
          await page.goto(`${web.url}/`);
          return (await page.locator('#fleet').count()) ? await page.locator('#fleet').textContent() : '';
        },
        { timeout: 30_000, interval: 2_000 },
      )
      .toContain('web-e2e');
    await page.screenshot({ path: join(screenshots, 'dashboard.png'), fullPage: true });
    await ctx.close();
  });

  it('cancels a running backup from its page', async () => {
    const big = await createClientHost({ authorizedKeys: [stack.serverPublicKey], tree: { 'data/big.bin': { type: 'file', size: 256 << 20, seed: 'big' } } });
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    page.on('dialog', (d) => void d.accept());
    await login(page, web.url, 'admin', adminPassword);
    const add = await page.evaluate<number>(`fetch('/api/v1/clients', { method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': document.querySelector('main').dataset.csrf }, body: JSON.stringify({ name: 'cancel-me', host: '${sshd.host}', port: ${sshd.port}, user: '${big.username}', paths: ['${big.path('data')}'] }) }).then((r) => r.status)`);
    expect(add).toBe(201);
    await page.goto(`${web.url}/clients/cancel-me`);
    await page.selectOption('#start-repository', 'main');
    await Promise.all([page.waitForURL(/\/jobs\/[0-9a-f-]{36}$/), page.click('#start-backup button[type=submit]')]);
    const id = page.url().split('/').pop()!;
    await waitForTrue(page, "Number(document.getElementById('job').dataset.progressEvents || 0) >= 1", 180_000);
    await Promise.all([page.waitForURL(`${web.url}/jobs/${id}`), page.click('#cancel-form button[type=submit]')]);
    await waitForTrue(page, "!['running', 'queued'].includes(document.getElementById('job').dataset.state)", 120_000);
    expect(await page.locator('#job').getAttribute('data-state')).toBe('cancelled');
    expect((await getJob(stack.deps, id)).state).toBe('cancelled');
    await ctx.close();
  });

  it('shows a file named <script>alert(1)</script> in a live log as text', async () => {
    const repo = (await findRepositoryByName(stack.deps.db, 'main'))!;
    const id = randomUUID();
    await jobsQ.insertJob(stack.deps.db, { id, kind: 'backup', repositoryId: repo.id, archiveName: `stored ${xss}` });
    await jobsQ.insertLogLines(stack.deps.db, [{ jobId: id, seq: 1, time: new Date(), level: 'WARNING', type: 'log_message', msgid: null, message: `stored /srv/${xss}` }]);
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    let alerted = false;
    page.on('dialog', (d) => {
      alerted = true;
      void d.dismiss();
    });
    await login(page, web.url, 'admin', adminPassword);
    await page.goto(`${web.url}/jobs/${id}`);
    await waitForTrue(page, "document.getElementById('live-status').textContent === 'live'");
    const redis = createRedis(stack.config.redisUrl);
    const events = createEventPublisher(redis);
    try {
      await events.publish(id, { type: 'log', seq: 2, time: new Date().toISOString(), level: 'WARNING', kind: 'log_message', msgid: null, message: `live /srv/${xss}: Permission denied` });
      await events.publish(id, { type: 'progress', originalSize: 1, compressedSize: 1, deduplicatedSize: 1, nfiles: 1, path: `/srv/${xss}`, time: Date.now() / 1000, n: 1 });
      await waitForTrue(page, "document.querySelectorAll('#log li').length === 2");
      await waitForTrue(page, "document.getElementById('p-path').textContent !== ''");
    } finally {
      await events.close();
    }
    const texts = await page.locator('#log li .msg').allTextContents();
    expect(texts).toEqual([`stored /srv/${xss}`, `live /srv/${xss}: Permission denied`]);
    expect(await page.locator('#p-path').textContent()).toBe(`/srv/${xss}`);
    expect(await page.locator('#job-archive').textContent()).toBe(`stored ${xss}`);
    // No element was created from the markup, and nothing ran.
    expect(await page.locator('#job script').count()).toBe(0);
    expect(alerted).toBe(false);
    await jobsQ.completeJob(stack.deps.db, id, 'cancelled', null, null);
    await ctx.close();
  });

  it('a viewer sees no start or cancel controls, and the API refuses it with 403', async () => {
    // A running job to look at (a row only: no workflow behind it).
    const repo = (await findRepositoryByName(stack.deps.db, 'main'))!;
    const id = randomUUID();
    await jobsQ.insertJob(stack.deps.db, { id, kind: 'backup', repositoryId: repo.id });
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await login(page, web.url, 'viewer', viewerPassword);
    await page.goto(`${web.url}/jobs/${id}`);
    expect(await page.locator('#job').getAttribute('data-state')).toBe('running');
    expect(await page.locator('#cancel-form').count()).toBe(0);
    await page.goto(`${web.url}/jobs`);
    expect(await page.locator('#start-backup').count()).toBe(0);
    await page.goto(`${web.url}/clients/web-e2e`);
    expect(await page.locator('#start-backup').count()).toBe(0);
    expect(await page.locator('#test-client').count()).toBe(0);
    // Same-origin fetches from the viewer's page, with the session's CSRF token.
    const statuses = await page.evaluate(`(async () => {
      const csrf = document.querySelector('main').dataset.csrf;
      const post = (path, body) => fetch(path, { method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': csrf }, body: body === undefined ? undefined : JSON.stringify(body) }).then((r) => r.status);
      return {
        start: await post('/api/v1/jobs', { client: 'web-e2e', repository: 'main' }),
        cancel: await post('/api/v1/jobs/${id}/cancel'),
        list: await fetch('/api/v1/jobs').then((r) => r.status),
      };
    })()`);
    expect(statuses).toEqual({ start: 403, cancel: 403, list: 200 });
    expect((await getJob(stack.deps, id)).state).toBe('running');
    await jobsQ.completeJob(stack.deps.db, id, 'cancelled', null, null);
    await ctx.close();
  });

  it('logged out, pages redirect to the login, and the API and WebSocket answer 401', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    for (const path of ['/', '/jobs', `/jobs/${jobId}`, '/clients', '/users']) {
      await page.goto(`${web.url}${path}`);
      expect(new URL(page.url()).pathname).toBe('/login');
    }
    // /healthz needs no login and sees the whole stack, workers included, but names nothing.
    const health = (await (await fetch(`${web.url}/healthz`)).json()) as Record<string, string>;
    expect(health).toEqual({ status: 'ok', database: 'ok', redis: 'ok', temporal: 'ok', workers: 'ok' });
    expect((await fetch(`${web.url}/api/v1/health`)).status).toBe(401);
    const api = await page.evaluate("fetch('/api/v1/jobs').then((r) => r.status)");
    expect(api).toBe(401);
    const wsStatus = await page.evaluate(`new Promise((resolve) => {
      const ws = new WebSocket('ws://' + location.host + '/ws/jobs/${jobId}');
      ws.onopen = () => resolve('open');
      ws.onclose = () => resolve('closed');
    })`);
    expect(wsStatus).toBe('closed');
    expect(await upgradeStatus(`${web.url.replace('http', 'ws')}/ws/jobs/${jobId}`, {})).toBe(401);
    await ctx.close();
  });

  it('refuses a POST without the CSRF token', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await login(page, web.url, 'admin', adminPassword);
    const before = (await jobsQ.listJobs(stack.deps.db, { limit: 500 })).length;
    const r = await page.evaluate<{ form: number; api: number; text: string }>(`(async () => {
      const body = new URLSearchParams({ client: 'web-e2e', repository: 'main' });
      const without = await fetch('/jobs', { method: 'POST', body, redirect: 'manual' });
      const apiWithout = await fetch('/api/v1/clients', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'csrf', host: 'h', paths: ['/'] }) });
      return { form: without.status, api: apiWithout.status, text: await without.text() };
    })()`);
    expect(r.form).toBe(403);
    expect(r.api).toBe(403);
    expect(r.text).toContain('CSRF');
    expect((await jobsQ.listJobs(stack.deps.db, { limit: 500 })).length).toBe(before);
    await ctx.close();
  });

  it('adds a policy through its form, pauses and resumes it from its page, and removes it', async () => {
    cleanUpSchedules(stack);
    // Only the schedule matters here: the client is never contacted.
    await addClient(stack.deps, { name: 'policy-e2e', host: '127.0.0.1', port: 1, paths: ['/srv'] });
    const ctx = await browser.newContext({ viewport: { width: 1360, height: 900 } });
    const page = await ctx.newPage();
    page.on('dialog', (d) => void d.accept());
    await login(page, web.url, 'admin', adminPassword);
    await page.goto(`${web.url}/policies/new`);
    await page.fill('input[name=name]', 'nightly-e2e');
    await page.selectOption('#client', 'policy-e2e');
    await page.selectOption('#repository', 'main');
    await page.fill('textarea[name=backupCrons]', 'every night');
    await page.fill('input[name=timezone]', 'Europe/Berlin');
    await page.fill('input[name=keepDaily]', '7');
    // A bad cron: the form comes back with the reason next to the field and everything as typed.
    await Promise.all([page.waitForURL(`${web.url}/policies`), page.click('#policy-form button[type=submit]')]);
    expect(await page.locator('#error-backupCrons').textContent()).toContain('line 1: must be a cron expression');
    expect(await page.inputValue('textarea[name=backupCrons]')).toBe('every night');
    expect(await page.inputValue('input[name=name]')).toBe('nightly-e2e');
    expect(await page.inputValue('input[name=keepDaily]')).toBe('7');
    await page.screenshot({ path: join(screenshots, 'policy-form-error.png'), fullPage: true });
    await page.fill('textarea[name=backupCrons]', '0 3 * * *');
    await Promise.all([page.waitForURL(`${web.url}/policies/nightly-e2e?done=added`), page.click('#policy-form button[type=submit]')]);
    const state = () => page.locator('#policy-state [data-state]').getAttribute('data-state');
    const id = (await getPolicy(stack.deps, 'nightly-e2e')).id;
    const schedulePaused = async () => (await stack.temporal.schedule.getHandle(policyScheduleId(id, 'backup')).describe()).state.paused;
    expect(await state()).toBe('active');
    expect(await schedulePaused()).toBe(false);

    await Promise.all([page.waitForURL(/done=paused$/), page.click('#pause-policy button[type=submit]')]);
    expect(await state()).toBe('paused');
    expect(await schedulePaused()).toBe(true);
    await page.screenshot({ path: join(screenshots, 'policy.png'), fullPage: true });
    await Promise.all([page.waitForURL(/done=resumed$/), page.click('#resume-policy button[type=submit]')]);
    expect(await state()).toBe('active');
    expect(await schedulePaused()).toBe(false);

    await page.goto(`${web.url}/policies`);
    expect(await page.locator('#policies tr[data-policy="nightly-e2e"]').textContent()).toContain('policy-e2e');
    await page.screenshot({ path: join(screenshots, 'policies.png'), fullPage: true });
    await page.goto(`${web.url}/alerts`);
    await page.screenshot({ path: join(screenshots, 'alerts.png'), fullPage: true });
    await page.goto(`${web.url}/repositories/main`);
    await page.screenshot({ path: join(screenshots, 'repository.png'), fullPage: true });

    await page.goto(`${web.url}/policies/nightly-e2e`);
    await Promise.all([page.waitForURL(`${web.url}/policies`), page.click('#remove-policy button[type=submit]')]);
    await expect(stack.temporal.schedule.getHandle(policyScheduleId(id, 'backup')).describe()).rejects.toBeInstanceOf(ScheduleNotFoundError);
    await ctx.close();
  });
});
