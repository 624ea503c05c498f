// Driving policies in tests: their jobs, their Temporal Schedules, waiting for what a schedule
// started. Schedules live in the Temporal server the test files share, so every file removes
// the ones its stack made (policies and the alert sweep) when it ends.
import { ScheduleNotFoundError } from '@temporalio/client';
import { and, asc, eq } from 'drizzle-orm';
import { jobsTable, type Job } from '../../db/schema.js';
import { alertSweepScheduleId } from '../../services/alert-schedule.js';
import { getPolicy } from '../../services/policies.js';
import { policyScheduleId, scheduleKinds } from '../../services/policy-schedules.js';
import { describeJob, waitForJob } from './backup.js';
import { registerCleanup } from './cleanup.js';
import type { TestStack } from './stack.js';

/** Removes this stack's schedules when the file ends (and now, if called). */
export function cleanUpSchedules(stack: TestStack): () => Promise<void> {
  return registerCleanup('Temporal schedules of the stack', async () => {
    const ids = [alertSweepScheduleId(stack.config)];
    const rows = await stack.db.handle.db.query.policiesTable.findMany({ columns: { id: true } }).catch(() => []);
    for (const p of rows) for (const k of scheduleKinds) ids.push(policyScheduleId(p.id, k));
    for (const id of ids) {
      try {
        await stack.temporal.schedule.getHandle(id).delete();
      } catch (err) {
        if (!(err instanceof ScheduleNotFoundError)) throw err;
      }
    }
  });
}

export async function policyJobs(stack: TestStack, policy: string, kind?: Job['kind']): Promise<Job[]> {
  const p = await getPolicy(stack.deps, policy);
  return stack.db.handle.db
    .select()
    .from(jobsTable)
    .where(and(eq(jobsTable.policyId, p.id), kind ? eq(jobsTable.kind, kind) : undefined))
    .orderBy(asc(jobsTable.createdAt));
}

/** Waits until the policy has more than `count` jobs of a kind; returns the newest. */
export async function waitForPolicyJob(stack: TestStack, policy: string, kind: Job['kind'], count: number, timeoutMs = 60_000): Promise<Job> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const jobs = await policyJobs(stack, policy, kind);
    if (jobs.length > count) return jobs.at(-1)!;
    if (Date.now() > deadline) throw new Error(`no ${kind} job #${count + 1} of policy ${policy} after ${timeoutMs / 1000} s\n--- worker\n${stack.worker.tail(30)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Waits for a job and fails with its log unless it ended as expected. */
export async function expectJobEnds(stack: TestStack, id: string, expected: Job['state'], timeoutMs = 180_000): Promise<Job> {
  const job = await waitForJob(stack, id, timeoutMs);
  if (job.state !== expected) throw new Error(`job ${id} (${job.kind}) ended ${job.state} (${job.error}), expected ${expected}\n${await describeJob(stack, id)}`);
  return job;
}

/** Waits until no job of the stack is running. */
export async function waitForIdle(stack: TestStack, timeoutMs = 180_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const running = await stack.db.handle.db.select({ id: jobsTable.id }).from(jobsTable).where(eq(jobsTable.state, 'running'));
    if (!running.length) return;
    if (Date.now() > deadline) throw new Error(`jobs still running after ${timeoutMs / 1000} s: ${running.map((r) => r.id).join(', ')}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Waits until none of the policy's schedules has a run going (its backup, prune or check included). */
export async function waitForPolicyIdle(stack: TestStack, policy: string, timeoutMs = 180_000): Promise<void> {
  const p = await getPolicy(stack.deps, policy);
  const deadline = Date.now() + timeoutMs;
  for (const kind of scheduleKinds) {
    for (;;) {
      let running = 0;
      try {
        running = (await stack.temporal.schedule.getHandle(policyScheduleId(p.id, kind)).describe()).info.runningActions.length;
      } catch (err) {
        if (!(err instanceof ScheduleNotFoundError)) throw err;
      }
      if (running === 0) break;
      if (Date.now() > deadline) throw new Error(`the ${kind} schedule of ${policy} still has a run going after ${timeoutMs / 1000} s`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  await waitForIdle(stack, Math.max(1000, deadline - Date.now()));
}
