// What a policy's Temporal Schedules start (services/policy-schedules.ts). A schedule can only
// start a workflow with fixed arguments, but every job needs its row first and its workflow id = job id:
// so the schedule starts a small parent here, whose first activity reserves the job (or says why
// it must not run now), and the job's own workflow (`backup`, `prune`, `check`) runs as a child
// with workflow id = job id. After a successful backup the parent runs the policy's prune.
//
// Overlap: the schedules use ScheduleOverlapPolicy.SKIP, and a run lasts until its backup and
// prune end — so the next run of the same policy is skipped while one is going; runs of other
// policies (or manual backups) of the same client are skipped by reservePolicyJob.
import { ApplicationFailure, ChildWorkflowFailure, ParentClosePolicy, executeChild, isCancellation, proxyActivities, uuid4, workflowInfo } from '@temporalio/workflow';
import type { PolicyActivities } from '../activities/policies.js';
import { backup, type BackupInput } from './backup.js';
import { check, type CheckInput } from './check.js';
import type { JobFinalState } from './messages.js';
import { prune, type PruneInput } from './prune.js';

/** Input of `scheduledBackup`, as the policy's backup schedule passes it. */
export interface ScheduledBackupInput {
  policyId: string;
}

/** Input of `scheduledMaintenance`, as the policy's check and prune schedules pass it. */
export interface ScheduledMaintenanceInput {
  policyId: string;
  kind: 'prune' | 'check';
}

type Reserved = Exclude<Awaited<ReturnType<PolicyActivities['reservePolicyJob']>>, { skipped: string }>;

export interface ScheduledRunResult {
  /** Why nothing ran (policy gone, client busy, no retention rules). */
  skipped?: string;
  jobs: Array<{ kind: Reserved['kind']; jobId: string; state: JobFinalState }>;
}

const policyActs = proxyActivities<PolicyActivities>({
  startToCloseTimeout: '1m',
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 10 },
});

/** Runs a job's workflow as a child; its failure is the job's state, not this workflow's. */
async function runChild(start: () => Promise<{ state: JobFinalState }>): Promise<JobFinalState> {
  try {
    return (await start()).state;
  } catch (err) {
    if (isCancellation(err)) return 'cancelled';
    if (err instanceof ChildWorkflowFailure && err.cause instanceof ApplicationFailure && err.cause.type === 'Violation') return 'violation';
    return 'failed';
  }
}

function childOptions(r: Reserved) {
  return {
    workflowId: r.jobId,
    searchAttributes: r.searchAttributes,
    // Ending this run (terminate, cancel) cancels the job, whose cleanup then still runs.
    parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
  };
}

function runMaintenance(r: Reserved): Promise<JobFinalState> {
  const base: PruneInput = { jobId: r.jobId, repositoryId: r.repositoryId, storageHost: r.storageHost };
  if (r.kind === 'check') {
    const args: [CheckInput] = [{ ...base, verifyData: r.verifyData }];
    return runChild(() => executeChild(check, { ...childOptions(r), args }));
  }
  return runChild(() => executeChild(prune, { ...childOptions(r), args: [base] }));
}

export async function scheduledBackup(input: ScheduledBackupInput): Promise<ScheduledRunResult> {
  const by = `schedule ${workflowInfo().workflowId}`;
  // uuid4() is deterministic in a workflow: a retried reserve finds the row it inserted.
  const r = await policyActs.reservePolicyJob({ policyId: input.policyId, kind: 'backup', triggeredBy: by, jobId: uuid4() });
  if (r.skipped !== undefined) return { skipped: r.skipped, jobs: [] };
  const backupInput: BackupInput = { jobId: r.jobId, clientId: r.clientId!, repositoryId: r.repositoryId, storageHost: r.storageHost, policyId: r.policyId, triggeredBy: r.triggeredBy };
  const jobs: ScheduledRunResult['jobs'] = [{ kind: 'backup', jobId: r.jobId, state: await runChild(() => executeChild(backup, { ...childOptions(r), args: [backupInput] })) }];
  if (jobs[0]!.state !== 'succeeded') return { jobs };
  const p = await policyActs.reservePolicyJob({ policyId: input.policyId, kind: 'prune', triggeredBy: `after backup ${r.jobId}`, jobId: uuid4() });
  if (p.skipped === undefined) jobs.push({ kind: 'prune', jobId: p.jobId, state: await runMaintenance(p) });
  return { jobs };
}

export async function scheduledMaintenance(input: ScheduledMaintenanceInput): Promise<ScheduledRunResult> {
  const r = await policyActs.reservePolicyJob({ policyId: input.policyId, kind: input.kind, triggeredBy: `schedule ${workflowInfo().workflowId}`, jobId: uuid4() });
  if (r.skipped !== undefined) return { skipped: r.skipped, jobs: [] };
  return { jobs: [{ kind: input.kind, jobId: r.jobId, state: await runMaintenance(r) }] };
}
