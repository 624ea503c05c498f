// Driving backups in tests: start one through the service layer, wait for its end, read the
// result back with the real key (admin `borgcube borg`), compare trees.
import { expect } from 'vitest';
import type { Job } from '../../db/schema.js';
import { getJob, jobLogTail, startBackup } from '../../services/jobs.js';
import { workflowGone } from '../../services/orphaned-jobs.js';
import { describeTree } from './client-host.js';
import type { TestStack } from './stack.js';
import { tempDir } from './temp-dir.js';

/**
 * Waits until the job has ended and its workflow has closed: the workflow records the final
 * state first and then still runs its last steps (the job's alert incidents), which a test that
 * looks at those must not race.
 */
export async function waitForJob(stack: TestStack, id: string, timeoutMs = 180_000): Promise<Job> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const j = await getJob(stack.deps, id);
    if (j.state !== 'running' && j.state !== 'queued' && (await workflowGone(stack.temporal.workflow.getHandle(id)))) return j;
    if (Date.now() > deadline) throw new Error(`job ${id} still running after ${timeoutMs / 1000} s (phase ${j.phase})\n${await describeJob(stack, id)}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** The job's log and the tails of the stack's process logs, for failure messages. */
export async function describeJob(stack: TestStack, id: string): Promise<string> {
  const lines = await jobLogTail(stack.deps, id, 60);
  return [`--- job ${id} log`, ...lines.map((l) => `${l.level} ${l.message}`), '--- worker', stack.worker.tail(30), '--- storage', stack.storage.tail(30)].join('\n');
}

/** Starts a backup and waits for it; fails the test with the job's log unless it ends as expected. */
export async function backup(stack: TestStack, client: string, repository: string, expected: Job['state'] = 'succeeded'): Promise<Job> {
  const started = await startBackup(stack.deps, { client, repository, triggeredBy: 'test' });
  const job = await waitForJob(stack, started.id);
  if (job.state !== expected) throw new Error(`job ended ${job.state} (${job.error}), expected ${expected}\n${await describeJob(stack, job.id)}`);
  return job;
}

/** Extracts an archive with the real key into a fresh folder (as root, so owners are kept). */
export async function extract(stack: TestStack, repository: string, archive: string): Promise<string> {
  const dir = tempDir('borgcube-test-extract');
  const r = await stack.cli(['borg', repository, '--', 'extract', `::${archive}`], { cwd: dir });
  if (r.code !== 0) throw new Error(`extract failed: ${r.err}`);
  return dir;
}

export function expectSameTree(original: string, restored: string) {
  expect(describeTree(restored)).toEqual(describeTree(original));
}

export async function borgCheck(stack: TestStack, repository: string, ...args: string[]): Promise<void> {
  const r = await stack.cli(['borg', repository, '--', 'check', ...args]);
  expect(r.code, `borg check ${args.join(' ')} failed:\n${r.err}`).toBe(0);
}

export async function archiveNames(stack: TestStack, repository: string): Promise<string[]> {
  const r = await stack.cli(['borg', repository, '--', 'list', '--short']);
  if (r.code !== 0) throw new Error(`borg list failed: ${r.err}`);
  return r.out.split('\n').filter(Boolean);
}
