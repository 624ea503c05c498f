// Issue 6 acceptance, checks: `borg check` runs as a job on the storage host (with and without
// --verify-data, scheduled or on demand) and its result is recorded per repository and shown by
// `borgcube repo show`; a check of a repository the test damaged fails, is recorded with the
// problems borg reported, and raises a `check-failed` alert at the configured webhook.
import { closeSync, openSync, readdirSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RepositoryCheck } from '../../db/schema.js';
import { addClient } from '../../services/clients.js';
import { jobLogTail } from '../../services/jobs.js';
import { listRepositoryChecks } from '../../services/policies.js';
import { startCheck } from '../../services/policy-jobs.js';
import { backup } from '../harness/backup.js';
import { startWebhookReceiver, type WebhookReceiver } from '../harness/alert-sinks.js';
import { runCleanups } from '../harness/cleanup.js';
import { createClientHost, type ClientHost } from '../harness/client-host.js';
import { waitFor } from '../harness/net.js';
import { cleanUpSchedules, expectJobEnds, waitForPolicyJob } from '../harness/policies.js';
import { startClientSshd, type ClientSshd } from '../harness/sshd.js';
import { expectCli, startStack, type TestStack } from '../harness/stack.js';

describe('checks', () => {
  let stack: TestStack;
  let sshd: ClientSshd;
  let host: ClientHost;
  let hook: WebhookReceiver;
  const repoPath = () => `${stack.dataDir}-repos/r1`;

  const cli = (args: string[], expectCode = 0) => expectCli(stack, args, expectCode);

  beforeAll(async () => {
    stack = await startStack();
    cleanUpSchedules(stack);
    [sshd, hook] = await Promise.all([startClientSshd(), startWebhookReceiver()]);
    host = await createClientHost({ authorizedKeys: [stack.serverPublicKey], tree: { 'data/big.bin': { type: 'file', size: 3 * 1024 * 1024, seed: 'c' }, 'data/a.txt': 'alpha\n' } });
    await cli(['repo', 'add', 'r1', '--path', repoPath()]);
    await addClient(stack.deps, { name: 'web', host: sshd.host, port: sshd.port, user: host.username, paths: [host.path('data')] });
    await cli(['alert', 'add-webhook', hook.url]);
    await backup(stack, 'web', 'r1');
  });
  afterAll(runCleanups);

  it('a scheduled check and an on-demand --verify-data check pass and are recorded', async () => {
    await cli(['repo', 'show', 'r1']).then((r) => expect(r.out).toMatch(/last check\s+never/));
    // Checks every 2 s (second-level cron: seconds field first), paused again after the first run.
    await cli(['policy', 'add', 'web-checked', '--client', 'web', '--repo', 'r1', '--check-cron', '*/2 * * * * * *']);
    const scheduled = await expectJobEnds(stack, (await waitForPolicyJob(stack, 'web-checked', 'check', 0, 30_000)).id, 'succeeded');
    await cli(['policy', 'pause', 'web-checked']);
    expect(scheduled.triggeredBy).toMatch(/^schedule policy-.*-check-run/);

    const job = await startCheck(stack.deps, { repository: 'r1', verifyData: true, triggeredBy: 'test' });
    const done = await expectJobEnds(stack, job.id, 'succeeded');
    expect(done.stats).toMatchObject({ checkErrors: 0, verifyData: 'yes' });
    const checks = await listRepositoryChecks(stack.deps, 'r1');
    const mine = checks.find((c) => c.jobId === job.id)!;
    expect(mine).toMatchObject({ result: 'ok', verifyData: true, exitCode: 0, errorCount: 0, errors: [] });
    expect(mine.durationMs).toBeGreaterThan(0);
    expect(checks.find((c) => c.jobId === scheduled.id)).toMatchObject({ result: 'ok', verifyData: false });

    const show = await cli(['repo', 'show', 'r1']);
    expect(show.out).toMatch(/last check\s+ok at \S+ \(with --verify-data, \d+ s\)/);
    const json = JSON.parse((await cli(['repo', 'show', 'r1', '--json'])).out) as { lastCheck: RepositoryCheck };
    expect(json.lastCheck).toMatchObject({ result: 'ok', jobId: job.id });
    expect(hook.accepted).toEqual([]);
  });

  it('a check of a damaged repository fails, records what borg found, and raises an alert', async () => {
    // Flip bytes in the middle of the largest segment: its entries' CRCs no longer match.
    const dataDir = join(repoPath(), 'data');
    const segments = readdirSync(dataDir).flatMap((d) => readdirSync(join(dataDir, d)).map((f) => join(dataDir, d, f)));
    const largest = segments.sort((a, b) => statSync(b).size - statSync(a).size)[0]!;
    const fd = openSync(largest, 'r+');
    try {
      writeSync(fd, Buffer.alloc(64, 0xa5), 0, 64, Math.floor(statSync(largest).size / 2));
    } finally {
      closeSync(fd);
    }

    const r = await cli(['policy', 'check', 'web-checked', '--wait'], 1);
    const jobId = r.out.split('\n')[0]!;
    expect(r.out).toMatch(/failed: borg check reported \d+ problem\(s\)/);
    const check = (await listRepositoryChecks(stack.deps, 'r1')).find((c) => c.jobId === jobId)!;
    expect(check).toMatchObject({ result: 'failed', exitCode: 1 });
    expect(check.errorCount).toBeGreaterThan(0);
    expect(check.errors.join('\n')).toMatch(/segment|checksum|CRC|integrity/i);
    const log = (await jobLogTail(stack.deps, jobId, 500)).map((l) => `${l.level} ${l.message}`);
    expect(log.some((l) => l.startsWith('ERROR'))).toBe(true);
    await cli(['repo', 'show', 'r1']).then((s) => expect(s.out).toMatch(/last check\s+failed at/));

    await waitFor('the check-failed alert', () => hook.accepted.length >= 1, { timeoutMs: 60_000 });
    expect(hook.accepted.map((a) => a.body)).toMatchObject([
      { kind: 'check-failed', state: 'firing', subject: 'repository r1', link: `${stack.config.web.publicUrl}/jobs/${jobId}` },
    ]);
    expect(hook.accepted[0]!.body.summary).toMatch(/^borg check of r1 failed: borg check reported \d+ problem\(s\)/);
  });
});
