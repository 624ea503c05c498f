// What the prune and check workflows share: their input, and the storage activities of the
// repository's host that make up their body (activities/maintenance.ts).
import { proxyActivities } from '@temporalio/workflow';
import type { MaintenanceActivities } from '../activities/maintenance.js';
import { retry } from './failures.js';
import { jobSteps } from './job-lifecycle.js';
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

/** The starter inserted the row in the job's phase; the workflow records it again when it starts. */
export function reserveMaintenanceJob(jobId: string, phase: 'prune' | 'check'): Promise<void> {
  return jobSteps.setPhase({ jobId, phase });
}
