// What a policy's Temporal Schedules start (services/policies.ts). A schedule can only start a
// workflow with fixed arguments, but every job needs its row first and its workflow id = job id:
// so the schedule starts a small parent here, whose first activity reserves the job (or says why
// it must not run now), and the job's own workflow (`backup`, `prune`, `check`) runs as a child
// with workflow id = job id. After a successful backup the parent runs the policy's prune.
//
// Overlap: the schedules use ScheduleOverlapPolicy.SKIP, and a run lasts until its backup and
// prune end — so the next run of the same policy is skipped while one is going; runs of other
// policies (or manual backups) of the same client are skipped by reservePolicyJob.
import { ApplicationFailure, ChildWorkflowFailure, ParentClosePolicy, executeChild, isCancellation, proxyActivities, uuid4, workflowInfo } from '@temporalio/workflow';
import type { PolicyActivities } from '../activities/policies.js';
import type { BackupInput, BackupResult } from './backup.js';
import type { CheckInput } from './check.js';
import type { MaintenanceJobResult } from './maintenance.js';
import type { PruneInput } from './prune.js';
import type { JobFinalState } from './messages.js';

export interface ScheduledBackupInput {
  policyId: string;
}

export interface ScheduledMaintenanceInput {
  policyId: string;
  kind: 'prune' | 'check';
}

export interface ScheduledRunResult {
  /** Why nothing ran (policy gone, client busy, no retention rules). */
  skipped?: string;
  jobs: Array<{ kind: 'backup' | 'prune' | 'check'; jobId: string; state: JobFinalState }>;
}

const policyActs = proxyActivities<PolicyActivities>({
  startToCloseTimeout: '1m',
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 10 },
});

type Reserved = Exclude<Awaited<ReturnType<PolicyActivities['reservePolicyJob']>>, { skipped: string }>;

/** Runs a job's workflow as a child; its failure is the job's state, not this workflow's. */
async function runJob(workflowType: 'backup' | 'prune' | 'check', r: Reserved, args: [BackupInput] | [PruneInput] | [CheckInput]): Promise<JobFinalState> {
  try {
    const result = await executeChild<(a: unknown) => Promise<BackupResult | MaintenanceJobResult>>(workflowType, {
      workflowId: r.jobId,
      args,
      searchAttributes: r.searchAttributes,
      // Ending this run (terminate, cancel) cancels the job, whose cleanup then still runs.
      parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
    });
    return result.state;
  } catch (err) {
    if (isCancellation(err)) return 'cancelled';
    if (err instanceof ChildWorkflowFailure && err.cause instanceof ApplicationFailure && err.cause.type === 'Violation') return 'violation';
    return 'failed';
  }
}

function maintenanceArgs(r: Reserved): [PruneInput] | [CheckInput] {
  const base = { jobId: r.jobId, repositoryId: r.repositoryId, storageHost: r.storageHost };
  return r.kind === 'check' ? [{ ...base, verifyData: r.verifyData }] : [base];
}

export async function scheduledBackup(input: ScheduledBackupInput): Promise<ScheduledRunResult> {
  const by = `schedule ${workflowInfo().workflowId}`;
  // uuid4() is deterministic in a workflow: a retried reserve finds the row it inserted.
  const r = await policyActs.reservePolicyJob({ policyId: input.policyId, kind: 'backup', triggeredBy: by, jobId: uuid4() });
  if (r.skipped !== undefined) return { skipped: r.skipped, jobs: [] };
  const backupInput: BackupInput = { jobId: r.jobId, clientId: r.clientId!, repositoryId: r.repositoryId, storageHost: r.storageHost, policyId: r.policyId, triggeredBy: r.triggeredBy };
  const jobs: ScheduledRunResult['jobs'] = [{ kind: 'backup', jobId: r.jobId, state: await runJob('backup', r, [backupInput]) }];
  if (jobs[0]!.state !== 'succeeded') return { jobs };
  const p = await policyActs.reservePolicyJob({ policyId: input.policyId, kind: 'prune', triggeredBy: `after backup ${r.jobId}`, jobId: uuid4() });
  if (p.skipped === undefined) jobs.push({ kind: 'prune', jobId: p.jobId, state: await runJob('prune', p, maintenanceArgs(p)) });
  return { jobs };
}

export async function scheduledMaintenance(input: ScheduledMaintenanceInput): Promise<ScheduledRunResult> {
  const r = await policyActs.reservePolicyJob({ policyId: input.policyId, kind: input.kind, triggeredBy: `schedule ${workflowInfo().workflowId}`, jobId: uuid4() });
  if (r.skipped !== undefined) return { skipped: r.skipped, jobs: [] };
  return { jobs: [{ kind: input.kind, jobId: r.jobId, state: await runJob(input.kind, r, maintenanceArgs(r)) }] };
}
