// Issue 6 acceptance, schedules: a policy's Temporal Schedule starts a backup (trigger-now and
// second-level intervals, no long sleeps) followed by a prune; a run overlapping a running backup
// of the same client is skipped (Temporal's SKIP for the same schedule, BorgCube's rule for any
// other backup of the client); pause stops runs and resume restarts them; editing a policy
// updates its schedules; the CLI drives all of it.
import { ScheduleNotFoundError, ScheduleOverlapPolicy } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addClient } from '../../services/clients.js';
import { startBackup } from '../../services/jobs.js';
import { getPolicy, getPolicyDetails, type PolicyDetails } from '../../services/policies.js';
import { policyScheduleId } from '../../services/policy-schedules.js';
import type { ScheduledRunResult } from '../../workflows/scheduled.js';
import { runCleanups } from '../harness/cleanup.js';
import { createClientHost, gatedBorg, type ClientHost } from '../harness/client-host.js';
import { cleanUpSchedules, expectJobEnds, policyJobs, waitForIdle, waitForPolicyIdle, waitForPolicyJob } from '../harness/policies.js';
import { startClientSshd, type ClientSshd } from '../harness/sshd.js';
import { expectCli, startStack, type TestStack } from '../harness/stack.js';
import { waitFor } from '../harness/net.js';

describe('policies and their schedules', () => {
  let stack: TestStack;
  let sshd: ClientSshd;
  let host: ClientHost;
  let gate: ReturnType<typeof gatedBorg>;

  const cli = (args: string[], expectCode = 0) => expectCli(stack, args, expectCode);

  /** The runs a schedule started, with what each returned. */
  async function scheduledRuns(scheduleId: string): Promise<ScheduledRunResult[]> {
    const d = await stack.temporal.schedule.getHandle(scheduleId).describe();
    return Promise.all(d.info.recentActions.map((a) => stack.temporal.workflow.getHandle(a.action.workflow.workflowId).result() as Promise<ScheduledRunResult>));
  }

  beforeAll(async () => {
    stack = await startStack();
    cleanUpSchedules(stack);
    sshd = await startClientSshd();
    host = await createClientHost({ authorizedKeys: [stack.serverPublicKey], tree: { 'data/a.txt': 'alpha\n', 'data/b.bin': { type: 'file', size: 256 * 1024, seed: 'b' } } });
    gate = gatedBorg(host);
    await cli(['repo', 'add', 'r1', '--path', `${stack.dataDir}-repos/r1`]);
    await addClient(stack.deps, { name: 'web', host: sshd.host, port: sshd.port, user: host.username, paths: [host.path('data')], borgPath: gate.path });
  });
  afterAll(runCleanups);

  it('add creates a Temporal Schedule with overlap SKIP; trigger runs a backup and then a prune', async () => {
    await cli(['policy', 'add', 'nightly', '--client', 'web', '--repo', 'r1', '--cron', '0 3 * * *', '--keep-daily', '7', '--stale-after', '48']);
    const p = await getPolicy(stack.deps, 'nightly');
    expect(p).toMatchObject({ backupCrons: ['0 3 * * *'], timezone: 'UTC', retention: { daily: 7 }, staleAfterHours: 48, paused: false });
    const d = await stack.temporal.schedule.getHandle(policyScheduleId(p.id, 'backup')).describe();
    expect(d.policies.overlap).toBe(ScheduleOverlapPolicy.SKIP);
    expect(d.action).toMatchObject({ type: 'startWorkflow', workflowType: 'scheduledBackup', taskQueue: stack.config.temporal.taskQueue, args: [{ policyId: p.id }] });
    // 03:00 plus the server's default jitter (BORGCUBE_SCHEDULE_JITTER, 5m): Temporal adds 0–5 min.
    expect(d.spec.jitter).toBe(stack.config.schedules.jitterSeconds * 1000);
    expect(d.info.nextActionTimes[0]!.toISOString()).toMatch(/T03:0[0-4]:\d\d\.\d{3}Z$/);
    // The policy's own jitter replaces the default on the existing schedule; 0 removes it.
    expect((await cli(['policy', 'edit', 'nightly', '--jitter', '10m'])).code).toBe(0);
    expect((await stack.temporal.schedule.getHandle(policyScheduleId(p.id, 'backup')).describe()).spec.jitter).toBe(600_000);
    expect((await cli(['policy', 'show', 'nightly'])).out).toMatch(/jitter\s+600 s/);
    await cli(['policy', 'edit', 'nightly', '--jitter', '0']);
    expect((await stack.temporal.schedule.getHandle(policyScheduleId(p.id, 'backup')).describe()).spec.jitter ?? 0).toBe(0);
    await cli(['policy', 'edit', 'nightly', '--jitter', 'default']);
    // No check or prune crons: no such schedules.
    await expect(stack.temporal.schedule.getHandle(policyScheduleId(p.id, 'check')).describe()).rejects.toBeInstanceOf(ScheduleNotFoundError);

    await cli(['policy', 'trigger', 'nightly']);
    const job = await waitForPolicyJob(stack, 'nightly', 'backup', 0, 30_000);
    expect(job.triggeredBy).toMatch(/^schedule policy-/);
    await expectJobEnds(stack, job.id, 'succeeded');
    const prune = await waitForPolicyJob(stack, 'nightly', 'prune', 0, 30_000);
    expect(prune.triggeredBy).toBe(`after backup ${job.id}`);
    const pruned = await expectJobEnds(stack, prune.id, 'succeeded');
    expect(pruned.stats).toMatchObject({ pruned: 0, kept: 1 });
    await waitForPolicyIdle(stack, 'nightly');

    const show = await cli(['policy', 'show', 'nightly']);
    expect(show.out).toMatch(/backup schedule\s+policy-\S+, 1 run\(s\)/);
    expect(show.out).toMatch(/last backup\s+succeeded/);
    const list = await cli(['policy', 'list', '--json']);
    expect((JSON.parse(list.out) as Array<{ name: string }>).map((x) => x.name)).toEqual(['nightly']);
  });

  it('a run that would overlap a running backup of the same client is skipped', async () => {
    const p = await getPolicy(stack.deps, 'nightly');
    const scheduleId = policyScheduleId(p.id, 'backup');
    const before = (await policyJobs(stack, 'nightly', 'backup')).length;

    // 1. Two triggers back to back: the second comes while the first run is going (SKIP).
    await cli(['policy', 'trigger', 'nightly']);
    await cli(['policy', 'trigger', 'nightly']);
    const job = await waitForPolicyJob(stack, 'nightly', 'backup', before, 30_000);
    await expectJobEnds(stack, job.id, 'succeeded');
    await waitForPolicyIdle(stack, 'nightly');
    const d = await stack.temporal.schedule.getHandle(scheduleId).describe();
    expect(d.info.numActionsSkippedOverlap).toBeGreaterThanOrEqual(1);
    expect((await policyJobs(stack, 'nightly', 'backup')).length).toBe(before + 1);

    // 2. A manual backup of the client is running (held at `borg create` until the scheduled
    // run has answered: a backup this small could otherwise end before the run reserves): the
    // scheduled run starts but skips.
    gate.hold();
    let manualId = '';
    try {
      // Two manual starts at the same moment: exactly one gets a job.
      const starts = await Promise.allSettled([0, 1].map(() => startBackup(stack.deps, { client: 'web', repository: 'r1', triggeredBy: 'test' })));
      const started = starts.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      const refused = starts.flatMap((r) => (r.status === 'rejected' ? [r.reason as Error] : []));
      expect(started).toHaveLength(1);
      const manual = started[0]!;
      manualId = manual.id;
      // Queued until its workflow's admission step, running after: whichever the second start saw.
      expect(refused[0]?.message).toMatch(new RegExp(`^client web already has a (queued|running) backup \\(job ${manual.id}\\)$`));
      const handle = stack.temporal.schedule.getHandle(scheduleId);
      const runsBefore = (await handle.describe()).info.numActionsTaken;
      await cli(['policy', 'trigger', 'nightly']);
      await waitFor('the triggered run', async () => (await handle.describe()).info.numActionsTaken > runsBefore, { timeoutMs: 20_000 });
      // (A run that did not skip would wait at the hold as well: the test would time out.)
      const results = await scheduledRuns(scheduleId);
      expect(results.at(-1)?.jobs).toEqual([]);
      expect(results.at(-1)?.skipped).toMatch(new RegExp(`^client web already has a (queued|running) backup \\(job ${manual.id}\\)$`));
    } finally {
      gate.release();
    }
    await expectJobEnds(stack, manualId, 'succeeded');
    await waitForIdle(stack);
    expect((await policyJobs(stack, 'nightly', 'backup')).length).toBe(before + 1);
  });

  it('pause stops the runs of a second-level schedule and resume restarts them', async () => {
    // Trigger-only policies need no cron; this one fires every 2 s and has no retention (no prune).
    await cli(['policy', 'add', 'often', '--client', 'web', '--repo', 'r1', '--cron', '@every 2s']);
    const first = await waitForPolicyJob(stack, 'often', 'backup', 0, 30_000);
    await expectJobEnds(stack, first.id, 'succeeded');
    await waitForPolicyJob(stack, 'often', 'backup', 1, 30_000);

    await cli(['policy', 'pause', 'often']);
    const p = await getPolicy(stack.deps, 'often');
    expect(p.paused).toBe(true);
    expect((await stack.temporal.schedule.getHandle(policyScheduleId(p.id, 'backup')).describe()).state.paused).toBe(true);
    await waitForPolicyIdle(stack, 'often');
    const paused = (await policyJobs(stack, 'often', 'backup')).length;
    await new Promise((r) => setTimeout(r, 7000));
    expect((await policyJobs(stack, 'often', 'backup')).length).toBe(paused);

    await cli(['policy', 'resume', 'often']);
    expect((await stack.temporal.schedule.getHandle(policyScheduleId(p.id, 'backup')).describe()).state.paused).toBe(false);
    const resumed = await waitForPolicyJob(stack, 'often', 'backup', paused, 30_000);
    await expectJobEnds(stack, resumed.id, 'succeeded');
    await cli(['policy', 'pause', 'often']);
    await waitForPolicyIdle(stack, 'often');
    // Every backup of the policy ended well, and none overlapped another.
    const jobs = await policyJobs(stack, 'often', 'backup');
    expect(jobs.every((j) => j.state === 'succeeded')).toBe(true);
    for (let i = 1; i < jobs.length; i++) expect(jobs[i]!.createdAt.getTime()).toBeGreaterThanOrEqual(jobs[i - 1]!.finishedAt!.getTime());
    await cli(['policy', 'remove', 'often']);
    await expect(stack.temporal.schedule.getHandle(policyScheduleId(p.id, 'backup')).describe()).rejects.toBeInstanceOf(ScheduleNotFoundError);
  });

  it('editing a policy updates its schedules; bad input is refused with one line', async () => {
    const p = await getPolicy(stack.deps, 'nightly');
    await cli(['policy', 'edit', 'nightly', '--timezone', 'Asia/Tokyo', '--check-cron', '30 4 * * 0', '--verify-data', '--keep-weekly', '4', '--keep-daily', '0']);
    const d: PolicyDetails = await getPolicyDetails(stack.deps, 'nightly');
    expect(d).toMatchObject({ timezone: 'Asia/Tokyo', retention: { weekly: 4 }, checkCrons: ['30 4 * * 0'], checkVerifyData: true });
    expect(d.retention.daily).toBeUndefined();
    // 03:00 in Tokyo is 18:00 UTC.
    expect(d.schedules.backup!.nextRuns[0]).toMatch(/T18:0[0-4]:\d\d\.\d{3}Z$/ /* the default 5 min schedule jitter */);
    expect(d.schedules.check).toMatchObject({ exists: true, id: policyScheduleId(p.id, 'check') });
    const check = await stack.temporal.schedule.getHandle(policyScheduleId(p.id, 'check')).describe();
    expect(check.action).toMatchObject({ workflowType: 'scheduledMaintenance', args: [{ policyId: p.id, kind: 'check' }] });

    await cli(['policy', 'edit', 'nightly', '--check-cron', 'none', '--prune-cron', '0 5 * * *']);
    await expect(stack.temporal.schedule.getHandle(policyScheduleId(p.id, 'check')).describe()).rejects.toBeInstanceOf(ScheduleNotFoundError);
    const prune = await stack.temporal.schedule.getHandle(policyScheduleId(p.id, 'prune')).describe();
    expect(prune.action).toMatchObject({ workflowType: 'scheduledMaintenance', args: [{ policyId: p.id, kind: 'prune' }] });
    expect(prune.info.nextActionTimes[0]!.toISOString()).toMatch(/T20:0[0-4]:\d\d\.\d{3}Z$/ /* the default 5 min schedule jitter */);
    await cli(['policy', 'edit', 'nightly', '--prune-cron', 'none']);
    await expect(stack.temporal.schedule.getHandle(policyScheduleId(p.id, 'prune')).describe()).rejects.toBeInstanceOf(ScheduleNotFoundError);

    const bad = await cli(['policy', 'edit', 'nightly', '--cron', '99 * * * *'], 2);
    expect(bad.err.trim().split('\n')).toHaveLength(1);
    expect(bad.err).toMatch(/backup schedule/);
    // The refused edit left row and schedule as they were.
    expect((await getPolicy(stack.deps, 'nightly')).backupCrons).toEqual(['0 3 * * *']);
    expect((await getPolicyDetails(stack.deps, 'nightly')).schedules.backup!.nextRuns[0]).toMatch(/T18:0[0-4]:\d\d\.\d{3}Z$/ /* the default 5 min schedule jitter */);
    await cli(['policy', 'add', 'x', '--client', 'web', '--repo', 'r1', '--timezone', 'Mars/Olympus'], 2);
    await cli(['policy', 'add', 'x', '--client', 'nobody', '--repo', 'r1'], 1);
  });
});
