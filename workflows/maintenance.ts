// What the prune and check workflows share: one long storage activity inside a job (workflow id =
// job id), then — always, also after a cancellation — the job's final state and its alerts.
import { ActivityFailure, ApplicationFailure, CancellationScope, isCancellation, proxyActivities } from '@temporalio/workflow';
import type { AlertActivities } from '../activities/alerts.js';
import type { JobActivities } from '../activities/jobs.js';
import type { MaintenanceActivities } from '../activities/maintenance.js';
import type { JobFinalState } from './messages.js';
import { storageTaskQueue } from './task-queues.js';

/** Input of `prune` and `check`: ids only; the activities load the job, its policy and repository. */
export interface MaintenanceJobInput {
  jobId: string;
  repositoryId: string;
  storageHost: string;
}

export interface MaintenanceJobResult {
  state: JobFinalState;
  error?: string;
}

type JobStats = NonNullable<Parameters<JobActivities['completeJob']>[0]['stats']>;

const retry = { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 6 } as const;
const jobActs = proxyActivities<JobActivities>({ startToCloseTimeout: '1m', retry });
const alertActs = proxyActivities<AlertActivities>({ startToCloseTimeout: '2m', retry });

/**
 * The storage activities of a repository's host. A check with --verify-data of a large repository
 * runs for hours; the activity heartbeats every few seconds (also while it waits for running
 * backups to leave the repository), so a dead storage process is noticed within a minute.
 */
export function storageMaintenanceActivities(storageHost: string) {
  return proxyActivities<MaintenanceActivities>({
    taskQueue: storageTaskQueue(storageHost),
    startToCloseTimeout: '48h',
    heartbeatTimeout: '1m',
    retry: { ...retry, maximumAttempts: 3 },
  });
}

export async function runMaintenanceJob(
  input: MaintenanceJobInput,
  phase: 'prune' | 'check',
  body: () => Promise<{ stats?: JobStats; error?: string }>,
): Promise<MaintenanceJobResult> {
  let state: JobFinalState = 'failed';
  let error: string | undefined;
  let stats: JobStats | undefined;
  try {
    await jobActs.setPhase({ jobId: input.jobId, phase });
    const r = await body();
    stats = r.stats;
    error = r.error;
    state = r.error ? 'failed' : 'succeeded';
  } catch (err) {
    if (isCancellation(err)) {
      state = 'cancelled';
      error = 'cancelled';
    } else {
      state = 'failed';
      error = describeFailure(err);
    }
  }
  await CancellationScope.nonCancellable(async () => {
    await jobActs.completeJob({ jobId: input.jobId, state, error, stats });
    try {
      await alertActs.jobEnded({ jobId: input.jobId });
    } catch {
      /* logged by the activity; the sweep delivers what is pending */
    }
  });
  // Fail the workflow too, so the Temporal UI shows what the console shows.
  if (state === 'failed') throw ApplicationFailure.nonRetryable(error ?? 'failed', phase === 'check' ? 'CheckFailed' : 'PruneFailed');
  return { state, error };
}

export function describeFailure(err: unknown): string {
  let e: unknown = err;
  while (e instanceof ActivityFailure && e.cause) e = e.cause;
  return e instanceof Error ? e.message : String(e);
}
