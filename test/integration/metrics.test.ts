// Issue 6 acceptance, metrics: after real backups (one good, one failed) GET /metrics exposes the
// last successful backup time per client, job durations and bytes, the dedup ratio, failures and
// violations, running jobs and repository sizes — with the values the database holds. Access:
// the configured metrics token or an API token; without a configured token, loopback only.
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import type { AddressInfo } from 'node:net';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertViolation } from '../../db/queries/jobs.js';
import { repositoriesTable, type Job } from '../../db/schema.js';
import { createApiToken } from '../../services/auth.js';
import { addClient, getClient, updateClient } from '../../services/clients.js';
import { startBackup } from '../../services/jobs.js';
import { addUser } from '../../services/users.js';
import { createMetricsApp } from '../../web/metrics.js';
import { backup, waitForJob } from '../harness/backup.js';
import { registerCleanup, runCleanups } from '../harness/cleanup.js';
import { createClientHost, type ClientHost } from '../harness/client-host.js';
import { cleanUpSchedules } from '../harness/policies.js';
import { startClientSshd, type ClientSshd } from '../harness/sshd.js';
import { startStack, type TestStack } from '../harness/stack.js';

const token = 'metrics-token-0123456789abcdef';

/** Prometheus text format → "name{labels}" → value (labels as written, sorted by prom-client's order). */
function parseExposition(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^(\S+?(?:\{.*\})?) (\S+)$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

describe('/metrics', () => {
  let stack: TestStack;
  let sshd: ClientSshd;
  let host: ClientHost;
  let good: Job;
  let failed: Job;

  const app = (configToken?: string, trustedProxies: string[] = []) =>
    new Hono().route(
      '/metrics',
      createMetricsApp({ db: stack.deps.db, config: { ...stack.config, metrics: { token: configToken }, web: { ...stack.config.web, trustedProxies } } }, { processMetrics: false }),
    );

  async function scrape(headers: Record<string, string> = { authorization: `Bearer ${token}` }) {
    const res = await app(token).request('/metrics', { headers });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    return parseExposition(await res.text());
  }

  beforeAll(async () => {
    stack = await startStack();
    cleanUpSchedules(stack);
    sshd = await startClientSshd();
    host = await createClientHost({
      authorizedKeys: [stack.serverPublicKey],
      tree: {
        'data/random.bin': { type: 'file', size: 2 * 1024 * 1024, seed: 'm' },
        'data/again.bin': { type: 'file', size: 2 * 1024 * 1024, seed: 'm' },
        'data/text.txt': 'metrics\n'.repeat(50_000),
        'bin/oldborg': { type: 'file', content: '#!/bin/sh\necho "borg 1.1.0"\n', mode: 0o755 },
      },
    });
    const r = await stack.cli(['repo', 'add', 'r1', '--path', `${stack.dataDir}-repos/r1`]);
    expect(r.code, r.err).toBe(0);
    await addClient(stack.deps, { name: 'web', host: sshd.host, port: sshd.port, user: host.username, paths: [host.path('data')] });
    await addClient(stack.deps, { name: 'db', host: sshd.host, port: sshd.port, user: host.username, paths: [host.path('data')], borgPath: host.path('bin/oldborg') });
    good = await backup(stack, 'web', 'r1');
    failed = await backup(stack, 'db', 'r1', 'failed');
    await insertViolation(stack.deps.db, { jobId: failed.id, clientId: (await getClient(stack.deps, 'db')).id, repositoryId: failed.repositoryId, kind: 'test', detail: 'recorded by the test' });
  });
  afterAll(runCleanups);

  it('exposes the series with the values of the database after a backup', async () => {
    const m = await scrape();
    const stats = good.stats!;
    expect(m.get('borgcube_last_success_timestamp_seconds{client="web",repository="r1"}')).toBe(good.finishedAt!.getTime() / 1000);
    expect(m.has('borgcube_last_success_timestamp_seconds{client="db",repository="r1"}')).toBe(false);
    const duration = (good.finishedAt!.getTime() - good.startedAt!.getTime()) / 1000;
    expect(m.get('borgcube_last_backup_duration_seconds{client="web"}')).toBeCloseTo(duration, 3);
    expect(duration).toBeGreaterThan(0);
    expect(m.get('borgcube_last_backup_bytes{client="web",type="original"}')).toBe(stats.originalSize);
    expect(m.get('borgcube_last_backup_bytes{client="web",type="compressed"}')).toBe(stats.compressedSize);
    expect(m.get('borgcube_last_backup_bytes{client="web",type="deduplicated"}')).toBe(stats.deduplicatedSize);
    expect(m.get('borgcube_last_backup_bytes{client="web",type="uploaded"}')).toBe(stats.uploadedBytes);
    expect(m.get('borgcube_backup_bytes_total{client="web",type="original"}')).toBe(stats.originalSize);
    // Two identical 2 MiB files and repetitive text: the archive is well over twice what it added.
    const ratio = m.get('borgcube_last_backup_dedup_ratio{client="web"}')!;
    expect(ratio).toBeCloseTo(Number(stats.originalSize) / Number(stats.deduplicatedSize), 6);
    expect(ratio).toBeGreaterThan(2);

    expect(m.get('borgcube_jobs_total{kind="backup",state="succeeded",client="web"}')).toBe(1);
    expect(m.get('borgcube_jobs_total{kind="backup",state="failed",client="db"}')).toBe(1);
    expect(m.get('borgcube_job_failures_total{kind="backup",client="db"}')).toBe(1);
    expect(m.has('borgcube_job_failures_total{kind="backup",client="web"}')).toBe(false);
    expect(m.get('borgcube_violations_total{client="db"}')).toBe(1);
    expect(m.get('borgcube_job_duration_seconds_total{kind="backup"}')).toBeGreaterThanOrEqual(duration);
    expect(m.get('borgcube_running_jobs{kind="backup"}')).toBe(0);
    expect(m.get('borgcube_open_incidents{kind="job-failed"}')).toBe(1);

    const repo = (await stack.deps.db.select().from(repositoriesTable).where(eq(repositoriesTable.name, 'r1')))[0]!;
    expect(repo.stats).not.toBeNull();
    expect(m.get('borgcube_repository_archives{repository="r1"}')).toBe(1);
    expect(m.get('borgcube_repository_size_bytes{repository="r1",type="original"}')).toBe(repo.stats!.originalSize);
    expect(m.get('borgcube_repository_size_bytes{repository="r1",type="unique_compressed"}')).toBe(repo.stats!.uniqueCompressedSize);
    expect(m.get('borgcube_repository_dedup_ratio{repository="r1"}')).toBeCloseTo(repo.stats!.originalSize / repo.stats!.uniqueCompressedSize, 6);
  });

  it('counts a backup while it runs', async () => {
    await updateClient(stack.deps, 'web', { paths: [host.path('data')] });
    const job = await startBackup(stack.deps, { client: 'web', repository: 'r1', triggeredBy: 'test' });
    // Just started: waiting for its slot for a moment (queued), or already admitted.
    const during = await scrape();
    expect(during.get('borgcube_running_jobs{kind="backup"}')! + during.get('borgcube_queued_backups')!).toBe(1);
    await waitForJob(stack, job.id);
    const m = await scrape();
    expect(m.get('borgcube_running_jobs{kind="backup"}')).toBe(0);
    expect(m.get('borgcube_jobs_total{kind="backup",state="succeeded",client="web"}')).toBe(2);
  });

  it('answers only with the metrics token or an API token; loopback without a configured token', async () => {
    const withToken = app(token);
    expect((await withToken.request('/metrics')).status).toBe(401);
    expect((await withToken.request('/metrics', { headers: { authorization: 'Bearer wrong-token-0123456789' } })).status).toBe(401);
    const res = await withToken.request('/metrics', { headers: { authorization: 'Basic eDp5' } });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    const { user } = await addUser(stack.deps, { username: 'prometheus', role: 'viewer', password: 'a long enough password 123' });
    const api = await createApiToken(stack.deps, { user, via: 'token' }, { name: 'prometheus' });
    expect((await withToken.request('/metrics', { headers: { authorization: `Bearer ${api.token}` } })).status).toBe(200);

    // Over a real socket: loopback is enough without a configured token, never with one. A
    // request forwarded by a reverse proxy on this host is only local if a configured proxy
    // says so; an unconfigured proxy's forwarding headers make it refused.
    const cases: Array<[string | undefined, string[], Record<string, string>, number]> = [
      [undefined, [], {}, 200],
      [token, [], {}, 401],
      [undefined, [], { 'x-forwarded-for': '203.0.113.9' }, 401],
      [undefined, [], { forwarded: 'for=203.0.113.9' }, 401],
      [undefined, ['127.0.0.1'], { 'x-forwarded-for': '203.0.113.9' }, 401],
      [undefined, ['127.0.0.1'], { 'x-forwarded-for': '127.0.0.1' }, 200],
    ];
    for (const [configured, proxies, headers, status] of cases) {
      const server = serve({ fetch: app(configured, proxies).fetch, hostname: '127.0.0.1', port: 0 });
      const stop = registerCleanup('metrics server', () => new Promise<void>((r) => server.close(() => r())));
      await new Promise<void>((r) => (server.listening ? r() : server.once('listening', () => r())));
      const port = (server.address() as AddressInfo).port;
      const r = await fetch(`http://127.0.0.1:${port}/metrics`, { headers });
      expect(r.status, JSON.stringify({ proxies, headers })).toBe(status);
      if (status === 200) expect(await r.text()).toContain('borgcube_last_success_timestamp_seconds{client="web",repository="r1"}');
      await stop();
    }
  });
});
