// Issue 20 points 1 and 2 through a real stack: a backup made by the harness, then browsed over
// the API (the web process) and the CLI, and downloaded as tar: GNU tar unpacks it to the same
// bytes as the source, a 300 MB folder (1 GB or more with BORGCUBE_CATALOG_BIG_MB) streams with
// the web process's and the repository service's RSS bounded even while the reader pauses, the
// archive list says when, how big, by which job and under which policy, and bad input (unknown archive, a path not in it, a viewer's download) gets one
// clear error.
import { spawnSync } from 'node:child_process';
import { lchownSync, linkSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listAuditEvents } from '../../db/queries/audit.js';
import { createApiToken } from '../../services/auth.js';
import { addClient } from '../../services/clients.js';
import { startBackup } from '../../services/jobs.js';
import { addPolicy } from '../../services/policies.js';
import { addUser } from '../../services/users.js';
import { describeJob, expectSameTree, waitForJob } from '../harness/backup.js';
import { runCleanups } from '../harness/cleanup.js';
import { createClientHost, pseudoRandomBytes, type ClientHost } from '../harness/client-host.js';
import { startClientSshd, type ClientSshd } from '../harness/sshd.js';
import { startStack, type TestStack } from '../harness/stack.js';
import { tempDir } from '../harness/temp-dir.js';
import { startWeb } from '../harness/web.js';

// 300 MB keeps npm test short; BORGCUBE_CATALOG_BIG_MB=1024 runs the issue's 1 GB case.
const BIG_MB = Number(process.env.BORGCUBE_CATALOG_BIG_MB ?? 300);
/** The repository service may grow by this while it streams: not by the size of what it streams. */
const SERVICE_RSS_GROWTH_BOUND = 150 * 1024 * 1024;

describe('browse and download archives', () => {
  let stack: TestStack;
  let sshd: ClientSshd;
  let host: ClientHost;
  let web: { url: string; proc: { pid?: number } };
  let archiveId: string;
  let archiveName: string;
  let backupJobId: string;
  let backedUpAfter: Date;
  const tokens: Record<string, string> = {};
  const odd = Buffer.concat([Buffer.from('odd-'), Buffer.from([0xff, 0xfe]), Buffer.from('.bin')]);

  const api = (who: string, path: string) => fetch(`${web.url}/api/v1${path}`, { headers: { authorization: `Bearer ${tokens[who]}` } });
  const json = async (who: string, path: string) => {
    const r = await api(who, path);
    return { status: r.status, body: (await r.json()) as Record<string, unknown> & { entries?: Array<Record<string, unknown>>; error?: { message: string } } };
  };

  beforeAll(async () => {
    stack = await startStack();
    sshd = await startClientSshd();
    host = await createClientHost({
      authorizedKeys: [stack.serverPublicKey],
      tree: {
        'data/docs/report.txt': 'quarterly numbers\n'.repeat(1000),
        'data/docs/empty': '',
        'data/docs/link': { type: 'symlink', target: 'report.txt' },
        'data/bin/tool': { type: 'file', content: '#!/bin/sh\n', mode: 0o750, mtime: new Date('2022-02-02T02:02:02Z') },
        'data/ünï name.txt': 'x',
        'data/bin/<b onmouseover="alert(1)">&.txt': 'markup in a name',
      },
    });
    const own = (p: string | Buffer) => lchownSync(p, host.uid, host.gid);
    const data = host.path('data');
    linkSync(join(data, 'docs/report.txt'), join(data, 'docs/report-hardlink.txt'));
    expect(spawnSync('mkfifo', [join(data, 'docs/fifo')]).status).toBe(0);
    own(join(data, 'docs/fifo'));
    const oddPath = Buffer.concat([Buffer.from(`${data}/`), odd]);
    writeFileSync(oddPath, 'not utf-8 name');
    own(oddPath);
    expect(spawnSync('setfattr', ['-n', 'user.note', '-v', 'kept', join(data, 'docs/report.txt')]).status).toBe(0);
    mkdirSync(join(data, 'big'));
    own(join(data, 'big'));
    for (let i = 0; i < BIG_MB / 50; i++) {
      writeFileSync(join(data, 'big', `part-${i}.bin`), pseudoRandomBytes(50 * 1024 * 1024, `big-${i}`));
      own(join(data, 'big', `part-${i}.bin`));
    }
    const r = await stack.cli(['repo', 'add', 'r1', '--path', `${stack.dataDir}-repos/r1`]);
    expect(r.code, r.err).toBe(0);
    await addClient(stack.deps, { name: 'c1', host: sshd.host, port: sshd.port, user: host.username, paths: [data] });
    // Made under a policy, so that the archive list names it.
    const policy = await addPolicy(stack.deps, { name: 'nightly', client: 'c1', repository: 'r1', retention: { daily: 7 } });
    backedUpAfter = new Date();
    const started = await startBackup(stack.deps, { client: 'c1', repository: 'r1', policyId: policy.id, triggeredBy: 'test' });
    const job = await waitForJob(stack, started.id);
    expect(job.state, await describeJob(stack, job.id)).toBe('succeeded');
    backupJobId = job.id;
    archiveName = job.archiveName!;
    web = await startWeb(stack, 'admin-password-123');
    for (const role of ['operator', 'viewer'] as const) {
      const { user } = await addUser(stack.deps, { username: role, role, password: `${role}-password-123` });
      tokens[role] = (await createApiToken(stack.deps, { user, via: 'session' }, { name: 'test' })).token;
    }
  }, 600_000);
  afterAll(runCleanups);

  const top = () => host.path('data').slice(1);

  it("lists the client's archives and shows one", async () => {
    const list = await json('viewer', '/clients/c1/archives');
    expect(list.status).toBe(200);
    type Row = { id: string; name: string; time: string; originalSize: number; deduplicatedSize: number; nfiles: number; policyName: string | null; jobId: string; repositoryName: string };
    const archives = list.body.archives as Row[];
    expect(archives.map((a) => a.name)).toEqual([archiveName]);
    const a = archives[0]!;
    archiveId = a.id;
    // The server's time of the backup, its figures, the job that made it and that job's policy.
    expect(new Date(a.time).getTime()).toBeGreaterThanOrEqual(backedUpAfter.getTime() - 1000);
    expect(new Date(a.time).getTime()).toBeLessThanOrEqual(Date.now());
    expect(a.originalSize).toBeGreaterThan(BIG_MB * 2 ** 20);
    expect(a.deduplicatedSize).toBeGreaterThan(0);
    expect(a.nfiles).toBeGreaterThan(5);
    expect([a.jobId, a.policyName, a.repositoryName]).toEqual([backupJobId, 'nightly', 'r1']);
    const one = await json('viewer', `/archives/${archiveId}`);
    expect(one.body.name).toBe(archiveName);
    const cli = await stack.cli(['archives', 'c1']);
    expect(cli.code, cli.err).toBe(0);
    expect(cli.out).toContain(archiveName);
    expect(cli.out).toMatch(/NAME +TIME +ORIGINAL +DEDUPLICATED +FILES +REPOSITORY +POLICY +JOB/);
    expect(cli.out).toContain(backupJobId);
    const asJson = await stack.cli(['archives', 'c1', '--repo', 'r1', '--json']);
    expect(asJson.code, asJson.err).toBe(0);
    expect((JSON.parse(asJson.out) as Row[]).map((r) => [r.id, r.name, r.nfiles, r.originalSize, r.policyName, r.jobId])).toEqual([[a.id, a.name, a.nfiles, a.originalSize, 'nightly', backupJobId]]);
    const elsewhere = await stack.cli(['archives', 'c1', '--repo', 'no-such-repo']);
    expect(elsewhere.code).not.toBe(0);
    expect(elsewhere.err.trim()).toMatch(/^[^\n]*no-such-repo/);
  });

  it('browses directories page by page, with metadata, over the API and the CLI', async () => {
    const root = await json('viewer', `/archives/${archiveId}/tree`);
    expect(root.status).toBe(200);
    expect(root.body.entries!.map((e) => e.name)).toEqual([top().split('/')[0]]);
    const docs = await json('viewer', `/archives/${archiveId}/tree?path=${encodeURIComponent(`${top()}/docs`)}`);
    expect(docs.body.entries!.map((e) => e.name)).toEqual(['empty', 'fifo', 'link', 'report-hardlink.txt', 'report.txt']);
    const byName: Record<string, unknown> = Object.fromEntries(docs.body.entries!.map((e) => [String(e.name), e]));
    expect(byName.link).toMatchObject({ type: 'symlink', target: 'report.txt' });
    expect(byName.fifo).toMatchObject({ type: 'fifo' });
    // Which of the two names is borg's hard-link master depends on the directory's read order.
    const pair = [byName['report.txt'], byName['report-hardlink.txt']] as Array<{ type: string; size: number; user: string; target: string | null }>;
    expect(pair.map((e) => e.type).sort()).toEqual(['file', 'hardlink']);
    expect(pair.map((e) => [e.size, e.user])).toEqual([[18_000, host.username], [18_000, host.username]]);
    expect(pair.find((e) => e.type === 'hardlink')!.target).toMatch(/docs\/report(-hardlink)?\.txt$/);
    const page = await json('viewer', `/archives/${archiveId}/tree?path=${encodeURIComponent(top())}&offset=1&limit=2`);
    expect(page.body.total).toBe(5);
    expect(page.body.entries).toHaveLength(2);
    const data = await json('viewer', `/archives/${archiveId}/tree?path=${encodeURIComponent(top())}`);
    const oddEntry = data.body.entries!.find((e) => e.pathB64);
    expect(Buffer.from(oddEntry!.pathB64 as string, 'base64').subarray(-odd.length)).toEqual(odd);
    expect(oddEntry!.name).toBe('odd-\\xff\\xfe.bin');
    const ls = await stack.cli(['ls', archiveName, `${top()}/bin`]);
    expect(ls.code, ls.err).toBe(0);
    expect(ls.out).toMatch(new RegExp(`^-rwxr-x--- ${host.username} +\\S+ +10 2022-02-02 02:02:02 tool$`, 'm'));
    const lsJson = await stack.cli(['ls', archiveName, `${top()}/docs`, '--json']);
    expect((JSON.parse(lsJson.out) as { total: number }).total).toBe(5);
  });

  it('finds paths by glob and substring', async () => {
    const glob = await json('viewer', `/archives/${archiveId}/find?pattern=${encodeURIComponent('**/docs/*.txt')}`);
    expect(glob.body.entries!.map((e) => e.name)).toEqual(['report-hardlink.txt', 'report.txt']);
    const sub = await stack.cli(['ls', archiveName, '--find', 'PART-1']);
    expect(sub.code, sub.err).toBe(0);
    expect(sub.out).toContain('big/part-1.bin');
  });

  it('a downloaded folder unpacks with GNU tar to the source bytes; recorded in the audit log', async () => {
    const r = await api('operator', `/archives/${archiveId}/download?path=${encodeURIComponent(`${top()}/docs`)}`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-disposition')).toMatch(/^attachment; filename="[A-Za-z0-9._-]+-docs\.tar"/);
    const body = Buffer.from(await r.arrayBuffer());
    expect(Number(r.headers.get('content-length'))).toBe(body.length);
    const out = tempDir('catalog-untar');
    writeFileSync(join(out, 'docs.tar'), body);
    const x = spawnSync('tar', ['--xattrs', '--xattrs-include=*', '-xpf', join(out, 'docs.tar'), '-C', out], { encoding: 'utf8' });
    expect(x.status, x.stderr).toBe(0);
    expectSameTree(host.path('data/docs'), join(out, top(), 'docs'));
    expect(spawnSync('getfattr', ['--only-values', '-n', 'user.note', join(out, top(), 'docs/report.txt')], { encoding: 'utf8' }).stdout).toBe('kept');
    const gz = await api('operator', `/archives/${archiveId}/download?pathB64=${encodeURIComponent(Buffer.concat([Buffer.from(`${top()}/`), odd]).toString('base64'))}&gzip=1`);
    expect(gz.status).toBe(200);
    expect(gz.headers.get('content-length')).toBeNull();
    writeFileSync(join(out, 'odd.tgz'), Buffer.from(await gz.arrayBuffer()));
    expect(spawnSync('tar', ['-xzf', join(out, 'odd.tgz'), '-C', out]).status).toBe(0);
    expect(readFileSync(Buffer.concat([Buffer.from(`${out}/${top()}/`), odd]), 'utf8')).toBe('not utf-8 name');
    const audit = (await listAuditEvents(stack.deps.db)).filter((e) => e.action === 'archive.download');
    expect(audit).toHaveLength(2);
    expect(audit.map((e) => e.actor)).toEqual(['operator', 'operator']);
    expect(audit.map((e) => (e.detail as { paths: string[] }).paths).flat()).toContain(`${top()}/docs`);
  });

  it(`streams a ${BIG_MB} MB folder with the web process's and the repository service's memory bounded; a paused reader holds no lock`, async () => {
    const rssOf = (pid: number | undefined) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
    const rss = () => rssOf(web.proc.pid);
    const before = rss();
    let peak = before;
    const serviceBefore = rssOf(stack.storage.pid);
    let servicePeak = serviceBefore;
    const r = await api('operator', `/archives/${archiveId}/download?path=${encodeURIComponent(`${top()}/big`)}`);
    expect(r.status).toBe(200);
    const expected = Number(r.headers.get('content-length'));
    expect(expected).toBeGreaterThan(BIG_MB * 1024 * 1024);
    const reader = (r.body as ReadableStream<Uint8Array>).getReader();
    let got = 0;
    let paused = false;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      got += value.length;
      peak = Math.max(peak, rss());
      servicePeak = Math.max(servicePeak, rssOf(stack.storage.pid));
      if (!paused && got > 20 * 1024 * 1024) {
        paused = true;
        // Without back-pressure the service would push the rest into the web process meanwhile.
        for (let i = 0; i < 6; i++) {
          await new Promise((res) => setTimeout(res, 500));
          peak = Math.max(peak, rss());
        }
        // A paused download holds nothing repository-wide (DESIGN §4 invariant 10): the
        // repository's lock is free for a server-side borg command meanwhile.
        const t0 = Date.now();
        const list = await stack.cli(['borg', 'r1', '--', 'list', '--short'], { timeoutMs: 60_000 });
        expect(list.code, list.err).toBe(0);
        expect(list.out).toContain(archiveName);
        expect(Date.now() - t0).toBeLessThan(30_000);
      }
    }
    expect(got).toBe(expected);
    const mib = (n: number) => Math.round(n / 2 ** 20);
    console.log(`download of ${mib(got)} MiB: web RSS ${mib(before)} → peak ${mib(peak)} MiB; repository service RSS ${mib(serviceBefore)} → peak ${mib(servicePeak)} MiB`);
    expect(peak - before).toBeLessThan(100 * 1024 * 1024);
    expect(servicePeak - serviceBefore).toBeLessThan(SERVICE_RSS_GROWTH_BOUND);
  });

  it('console: client → archives → tree with breadcrumbs, metadata, picks and downloads (escaped)', async () => {
    const pages = async (who: string) => {
      const jar: string[] = [];
      const get = async (path: string) => {
        const r = await fetch(`${web.url}${path}`, { headers: { cookie: jar.join('; ') }, redirect: 'manual' });
        for (const c of r.headers.getSetCookie()) jar.push(c.split(';')[0]!);
        return r;
      };
      const form = await (await get('/login')).text();
      const csrf = /name="_csrf" value="([^"]+)"/.exec(form)![1]!;
      const login = await fetch(`${web.url}/login`, { method: 'POST', redirect: 'manual', headers: { cookie: jar.join('; '), 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ _csrf: csrf, username: who, password: `${who}-password-123`, next: '/' }) });
      expect(login.status).toBe(303);
      for (const c of login.headers.getSetCookie()) jar.push(c.split(';')[0]!);
      return async (path: string) => {
        const r = await get(path);
        expect(r.status, path).toBe(200);
        return r.text();
      };
    };
    const op = await pages('operator');
    expect(await op('/clients/c1')).toContain('href="/clients/c1/archives"');
    expect(await op('/clients/c1/archives')).toContain(`href="/archives/${archiveId}"`);
    const bin = await op(`/archives/${archiveId}?path=${encodeURIComponent(`${top()}/bin`)}`);
    expect(bin).toContain('id="restore-paths"');
    expect(bin).toContain(`name="path" value="${top()}/bin/tool"`);
    expect(bin).toContain('&lt;b onmouseover=&quot;alert(1)&quot;&gt;&amp;.txt');
    expect(bin).not.toContain('<b onmouseover');
    expect(bin).toMatch(/id="breadcrumbs".*>bin<\/a><\/nav>/s);
    expect(bin).toContain('-rwxr-x---');
    expect(bin).toContain(`/api/v1/archives/${archiveId}/download?path=${encodeURIComponent(`${top()}/bin/tool`)}&amp;gzip=1`);
    const data = await op(`/archives/${archiveId}?path=${encodeURIComponent(top())}`);
    expect(data).toContain('odd-\\xff\\xfe.bin');
    expect(data).toContain(`name="pathB64" value="${Buffer.concat([Buffer.from(`${top()}/`), odd]).toString('base64')}"`);
    expect(await op(`/archives/${archiveId}?find=${encodeURIComponent('*.bin')}`)).toContain('part-0.bin');
    const viewer = await pages('viewer');
    const asViewer = await viewer(`/archives/${archiveId}?path=${encodeURIComponent(`${top()}/bin`)}`);
    expect(asViewer).toContain('tool');
    expect(asViewer).not.toContain('/download?');
  });

  it('bad input gets one clear error', async () => {
    const unknown = await json('viewer', '/archives/no-such-archive/tree');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error!.message).toBe('archive "no-such-archive" does not exist');
    const missing = await json('viewer', `/archives/${archiveId}/tree?path=nope/not/here`);
    expect(missing.status).toBe(404);
    expect(missing.body.error!.message).toContain('nope/not/here: no such path in the archive');
    const missingDl = await json('operator', `/archives/${archiveId}/download?path=nope`);
    expect(missingDl.status).toBe(404);
    const viewerDl = await json('viewer', `/archives/${archiveId}/download`);
    expect(viewerDl.status).toBe(403);
    expect(viewerDl.body.error!.message).toBe('this needs the operator role; you are viewer');
    const cli = await stack.cli(['ls', 'no-such-archive']);
    expect(cli.code).toBe(1);
    expect(cli.err.trim().split('\n')).toHaveLength(1);
  });
});
