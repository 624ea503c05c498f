// Issue 20's console acceptance in a real browser: headless Debian Chromium driven by
// playwright-core against the real web process of a complete test stack (worker, repository
// service, proxy, Temporal) and two client hosts behind their own sshd.
//
// Log in; open a client, its archives, its archive, a folder; tick a subfolder; choose the OTHER
// client as the target; start the restore; the job page follows its progress and it ends
// `succeeded`; the second client's disk holds the folder with the same bytes. The form refuses bad
// input with one message and keeps what was typed (a relative target, a second restore into a
// target a restore is running into, an operator restoring a repository-scope archive); a viewer
// sees no restore form and a POST from a viewer is refused. The same form's download buttons
// hand the picked entries to the API's tar route.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findClientByName, updateClient } from '../../db/queries/clients.js';
import { addClient } from '../../services/clients.js';
import { getJob } from '../../services/jobs.js';
import { addUser } from '../../services/users.js';
import { backup, describeJob, waitForJob } from '../harness/backup.js';
import { registerCleanup, runCleanups } from '../harness/cleanup.js';
import { createClientHost, describeTree, type ClientHost, type TreeNode } from '../harness/client-host.js';
import { startClientSshd, type ClientSshd } from '../harness/sshd.js';
import { startStack, type TestStack } from '../harness/stack.js';
import { projectRoot } from '../harness/paths.js';
import { startWeb } from '../harness/web.js';

const adminPassword = 'e2e-admin-password-1234';
const operatorPassword = 'e2e-operator-password-1234';
const viewerPassword = 'e2e-viewer-password-1234';
// Screenshots go to docs/screenshots/ only when asked for (BORGCUBE_UPDATE_SCREENSHOTS=1), as in web-console.test.ts.
const updateScreenshots = process.env.BORGCUBE_UPDATE_SCREENSHOTS === '1';
const chromiumArgs = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

async function login(page: Page, url: string, user: string, password: string) {
  await page.goto(`${url}/`);
  await page.waitForURL(/\/login/);
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', password);
  await Promise.all([page.waitForURL(`${url}/`), page.click('button[type=submit]')]);
}

/** Polls a page expression (not waitForFunction: its `new Function` breaks the console's CSP). */
async function waitForTrue(page: Page, expression: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await page.evaluate(expression))) {
    if (Date.now() > deadline) throw new Error(`still false after ${timeoutMs} ms: ${expression}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A tree's picture without owners: the restore runs as another client's account. */
const contentOf = (root: string) => Object.fromEntries(Object.entries(describeTree(root)).map(([k, { uid: _u, gid: _g, ...n }]: [string, TreeNode]) => [k, n]));

describe('restoring from the web console in Chromium', () => {
  let stack: TestStack;
  let sshd: ClientSshd;
  let src: ClientHost;
  let other: ClientHost;
  let web: { url: string };
  let browser: Browser;
  let archiveName: string;
  /** The backed-up folder as the archive holds it (no leading slash). */
  let dataRel: string;
  let screenshots: string;

  /** The archive page of `src`'s folder `data`, reached by clicking: client → archives → archive → folders. */
  async function openDataFolder(page: Page) {
    await page.goto(`${web.url}/clients/src`);
    await Promise.all([page.waitForURL(`${web.url}/clients/src/archives`), page.click('a[href="/clients/src/archives"]')]);
    await Promise.all([page.waitForURL(/\/archives\/[0-9a-f-]{36}$/), page.click(`#archives a:text-is("${archiveName}")`)]);
    expect(await page.locator('h1').textContent()).toBe(`Archive ${archiveName}`);
    for (const name of dataRel.split('/')) {
      await Promise.all([page.waitForURL(/path=/), page.click(`#archive-tree a.dir:text-is("${name}/")`)]);
    }
    expect(await page.locator('#breadcrumbs').textContent()).toContain('data');
  }

  beforeAll(async () => {
    stack = await startStack();
    sshd = await startClientSshd();
    // A small tree; `docs/` (the restored folder) carries enough incompressible data for borg
    // extract to report progress for a moment.
    src = await createClientHost({
      authorizedKeys: [stack.serverPublicKey],
      tree: {
        'data/docs/report.txt': 'quarterly numbers\n'.repeat(2000),
        'data/docs/big.bin': { type: 'file', size: 48 << 20, seed: 'web-restore' },
        'data/docs/sub/tool.sh': { type: 'file', content: '#!/bin/sh\necho hi\n', mode: 0o750, mtime: new Date('2023-03-03T03:03:03Z') },
        'data/docs/sub/link': { type: 'symlink', target: '../report.txt' },
        'data/docs/<i>markup<i> & "quotes".txt': 'a name with markup\n',
        'data/other/not-picked.txt': 'stays in the archive\n',
      },
    });
    other = await createClientHost({ authorizedKeys: [stack.serverPublicKey] });
    dataRel = src.path('data').replace(/^\/+/, '');
    const repo = await stack.cli(['repo', 'add', 'main', '--path', `${stack.dataDir}-repos/main`]);
    expect(repo.code, repo.err).toBe(0);
    await addClient(stack.deps, { name: 'src', host: sshd.host, port: sshd.port, user: src.username, paths: [src.path('data')] });
    await addClient(stack.deps, { name: 'other', host: sshd.host, port: sshd.port, user: other.username, paths: [other.path('data')] });
    archiveName = (await backup(stack, 'src', 'main')).archiveName!;
    web = await startWeb(stack, adminPassword);
    await addUser(stack.deps, { username: 'operator', role: 'operator', password: operatorPassword });
    await addUser(stack.deps, { username: 'viewer', role: 'viewer', password: viewerPassword });
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: chromiumArgs });
    registerCleanup('chromium', () => browser.close());
    screenshots = updateScreenshots ? join(projectRoot, 'docs', 'screenshots') : join(stack.dataDir, 'screenshots');
    mkdirSync(screenshots, { recursive: true });
  }, 600_000);
  afterAll(runCleanups);

  it('restores a folder picked in the tree onto another client, following the job until it succeeds', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1360, height: 900 } });
    const page = await ctx.newPage();
    await login(page, web.url, 'admin', adminPassword);
    await openDataFolder(page);
    // The form offers every client, the archive's own preselected; a new directory by default.
    expect(await page.locator('#restore-client').inputValue()).toBe('src');
    expect(await page.locator('#restore-target').inputValue()).toBe('');
    expect(await page.locator('#in-place-warning').textContent()).toContain('overwrites');

    // A relative target comes back with the reason, the ticks and the choices kept.
    await page.check(`input[name=path][value="${dataRel}/docs"]`);
    await page.selectOption('#restore-client', 'other');
    await page.fill('#restore-target', 'relative/dir');
    await page.fill('#restore-strip', '0');
    await Promise.all([page.waitForURL(/\/restore$/), page.click('#start-restore')]);
    expect(await page.locator('.form-problem').textContent()).toContain('must be an absolute path');
    expect(await page.locator('#error-target').count()).toBe(1);
    expect(await page.locator('#restore-client').inputValue()).toBe('other');
    expect(await page.locator('#restore-target').inputValue()).toBe('relative/dir');
    expect(await page.isChecked(`input[name=path][value="${dataRel}/docs"]`)).toBe(true);

    // Start it for real: the job page opens and follows the restore.
    const target = other.path('restored');
    registerCleanup(`restore target ${target}`, () => rmSync(target, { recursive: true, force: true }));
    await page.fill('#restore-target', target);
    // A second tab with the same form, to try the same target while the first restore runs.
    const second = await ctx.newPage();
    await openDataFolder(second);
    await second.check(`input[name=path][value="${dataRel}/docs"]`);
    await second.selectOption('#restore-client', 'other');
    await second.fill('#restore-target', target);
    await second.screenshot({ path: join(screenshots, 'archive-restore.png'), fullPage: true });

    await Promise.all([page.waitForURL(/\/jobs\/[0-9a-f-]{36}$/), page.click('#start-restore')]);
    const jobId = page.url().split('/').pop()!;
    await page.evaluate('window.noReload = true');
    expect(await page.locator('#job-target').textContent()).toBe(target);
    expect(await page.locator('#job-archive').textContent()).toBe(archiveName);

    // The same target while it runs: refused, nothing started.
    await Promise.all([second.waitForURL(/\/restore$/), second.click('#start-restore')]);
    expect((await getJob(stack.deps, jobId)).state, 'the first restore ended before the second try').toBe('running');
    expect(await second.locator('.form-problem').textContent()).toContain(`a restore into ${target} on client other is already running (job ${jobId})`);
    expect(await second.locator('#restore-target').inputValue()).toBe(target);
    await second.close();

    // Progress arrives over the WebSocket; the page ends `succeeded` without a reload.
    await waitForTrue(page, "document.getElementById('job').dataset.state !== 'running' || Number(document.getElementById('job').dataset.progressEvents || 0) >= 1", 180_000);
    await waitForTrue(page, "document.getElementById('job').dataset.state !== 'running'", 300_000);
    const job = await waitForJob(stack, jobId);
    await page.screenshot({ path: join(screenshots, 'job-restore.png'), fullPage: true });
    expect(await page.locator('#job').getAttribute('data-state'), `${job.state}: ${job.error}\n${await describeJob(stack, jobId)}`).toBe('succeeded');
    expect(Number(await page.getAttribute('#job', 'data-progress-events'))).toBeGreaterThanOrEqual(1);
    expect(Number(await page.evaluate("document.getElementById('job-progress').value"))).toBe(1000);
    expect(await page.locator('#p-original').textContent()).toMatch(/MiB|MB/);
    expect(await page.evaluate('window.noReload')).toBe(true);
    expect(job.triggeredBy).toBe('web:admin');
    expect((await getJob(stack.deps, jobId)).clientName).toBe('other');

    // On the second client's disk: the folder, same bytes, modes, mtimes and link targets, and nothing else.
    expect(readdirSync(other.path('restored', dataRel))).toEqual(['docs']);
    const restored = contentOf(other.path('restored', dataRel, 'docs'));
    expect(restored).toEqual(contentOf(src.path('data', 'docs')));
    expect(restored['big.bin']?.size).toBe(48 << 20);
    expect(restored['<i>markup<i> & "quotes".txt']?.type).toBe('file');
    await ctx.close();
  });

  it('downloads the picked entries from the same form (a POST, then the API tar route)', async () => {
    const ctx = await browser.newContext({ acceptDownloads: true });
    const page = await ctx.newPage();
    await login(page, web.url, 'admin', adminPassword);
    await openDataFolder(page);
    await page.check(`input[name=path][value="${dataRel}/other"]`);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download-picked')]);
    const file = join(stack.dataDir, 'picked.tar');
    await download.saveAs(file);
    const list = spawnSync('tar', ['-tf', file], { encoding: 'utf8' });
    expect(list.status, list.stderr).toBe(0);
    expect(list.stdout.split('\n').filter(Boolean).sort()).toEqual([`${dataRel}/other/`, `${dataRel}/other/not-picked.txt`]);
    // The CSRF token went in the POST body, never into the download's URL.
    expect(download.url()).not.toContain('_csrf');
    expect(download.url()).toContain(`path=${encodeURIComponent(`${dataRel}/other`)}`);
    await ctx.close();
  });

  it('refuses a name that is not UTF-8, a strip count that is not a number, and in place with a target, each with one message', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await login(page, web.url, 'admin', adminPassword);
    await openDataFolder(page);
    const post = async (fields: Record<string, string>) =>
      JSON.parse(
        await page.evaluate<string>(
          `(async () => { const b = new URLSearchParams(${JSON.stringify({ ...fields, client: 'other' })}); b.set('_csrf', document.querySelector('main').dataset.csrf); const r = await fetch(location.pathname + '/restore', { method: 'POST', body: b }); const d = new DOMParser().parseFromString(await r.text(), 'text/html'); return JSON.stringify({ status: r.status, problem: d.querySelector('.form-problem .error')?.textContent ?? null, jobs: (await (await fetch('/api/v1/jobs?kind=restore')).json()).jobs.length }); })()`,
        ),
      ) as { status: number; problem: string | null; jobs: number };
    const before = await post({ stripComponents: 'x' });
    expect(before).toMatchObject({ status: 400, problem: 'stripComponents: give a whole number from 0 to 255' });
    const nonUtf8 = await post({ pathB64: Buffer.concat([Buffer.from(`${dataRel}/odd-`), Buffer.from([0xff])]).toString('base64') });
    expect(nonUtf8.status).toBe(400);
    expect(nonUtf8.problem).toContain('is not UTF-8 text; pick its folder to restore it');
    const both = await post({ inPlace: '1', target: other.path('x') });
    expect(both).toMatchObject({ status: 400, problem: 'target: give either a target directory or in place, not both' });
    expect(both.jobs).toBe(before.jobs);
    await ctx.close();
  });

  it("refuses an operator a repository-scope archive with the reason, on the form", async () => {
    const c = (await findClientByName(stack.deps.db, 'src'))!;
    await updateClient(stack.deps.db, c.id, { dedupScope: 'repository' });
    try {
      const ctx = await browser.newContext();
      const page = await ctx.newPage();
      await login(page, web.url, 'operator', operatorPassword);
      await openDataFolder(page);
      await page.selectOption('#restore-client', 'other');
      const res = await Promise.all([page.waitForResponse((r) => r.url().endsWith('/restore')), page.click('#start-restore')]);
      expect(res[0].status()).toBe(403);
      expect(await page.locator('.form-problem').textContent()).toContain('only an admin may restore it');
      expect(await page.locator('#restore-client').inputValue()).toBe('other');
      await ctx.close();
    } finally {
      await updateClient(stack.deps.db, c.id, { dedupScope: 'client' });
    }
  });

  it('a viewer sees the tree without a restore form, and a restore POST is refused', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await login(page, web.url, 'viewer', viewerPassword);
    await openDataFolder(page);
    expect(await page.locator('#restore').count()).toBe(0);
    expect(await page.locator('#start-restore').count()).toBe(0);
    const status = await page.evaluate<number>(
      `fetch(location.pathname + '/restore', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-csrf-token': document.querySelector('main').dataset.csrf }, body: 'client=other' }).then((r) => r.status)`,
    );
    expect(status).toBe(403);
    await ctx.close();
  });
});
