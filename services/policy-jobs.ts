// The jobs of a policy: the scheduled workflows' first activity reserves the job row (or says why
// it must not run now), so that the job's own workflow can run with workflow id = job id; and the
// prune-now and check-now calls, which start that workflow themselves.
import { randomUUID } from 'node:crypto';
import type { Client as TemporalClient } from '@temporalio/client';
import { z } from 'zod';
import type { Db } from '../db/client.js';
import * as jobsQ from '../db/queries/jobs.js';
import * as policiesQ from '../db/queries/policies.js';
import type { Job } from '../db/schema.js';
import type { Logger } from '../infra/logger.js';
import { check, type CheckInput } from '../workflows/check.js';
import { prune, type PruneInput } from '../workflows/prune.js';
import type { ServiceDeps } from './deps.js';
import { invalid, notFound } from './errors.js';
import { getRepository } from './repositories.js';
import { hasRetention } from './retention.js';

/** The kinds of job a policy runs. */
export type PolicyJobKind = Extract<Job['kind'], 'backup' | 'prune' | 'check'>;

/** What a scheduled workflow needs to start the job's own workflow (workflow id = job id). */
export interface ReservedJob {
  jobId: string;
  kind: PolicyJobKind;
  policyId: string | null;
  clientId: string | null;
  repositoryId: string;
  storageHost: string;
  verifyData: boolean;
  triggeredBy: string;
  /** For the Temporal UI's search (BorgcubeJobKind, BorgcubeClient, BorgcubeRepository). */
  searchAttributes: Record<string, string[]>;
}

export interface ReservePolicyJobInput {
  policyId: string;
  kind: PolicyJobKind;
  triggeredBy: string;
  /** Chosen by the caller (a workflow: deterministic), so that a retry finds its own row. */
  jobId?: string;
}

export type ReservePolicyJobResult = ({ skipped?: undefined } & ReservedJob) | { skipped: string };

/**
 * Inserts the job row of a policy's backup, prune or check, unless it must not run now: the
 * policy is gone, a backup of the client is already running (checked under an advisory lock on
 * the client, so two starters cannot both pass), or there are no retention rules to prune by.
 */
export async function reservePolicyJob(deps: { db: Db; log: Logger }, input: ReservePolicyJobInput): Promise<ReservePolicyJobResult> {
  const p = await policiesQ.findPolicyById(deps.db, input.policyId);
  if (!p) return { skipped: `policy ${input.policyId} no longer exists` };
  if (input.kind === 'prune' && !hasRetention(p.retention)) return { skipped: `policy ${p.name} has no retention rules` };
  const jobId = input.jobId ?? randomUUID();
  const base: ReservedJob = {
    jobId,
    kind: input.kind,
    policyId: p.id,
    clientId: input.kind === 'check' ? null : p.clientId,
    repositoryId: p.repositoryId,
    storageHost: p.storageHost,
    verifyData: p.checkVerifyData,
    triggeredBy: input.triggeredBy,
    searchAttributes: {
      BorgcubeJobKind: [input.kind],
      BorgcubeRepository: [p.repositoryName],
      ...(input.kind === 'check' ? {} : { BorgcubeClient: [p.clientName] }),
    },
  };
  // A retried activity finds the row it inserted before.
  if (input.jobId && (await jobsQ.findJob(deps.db, input.jobId))) return base;
  // Prune and check start in their own phase; a backup waits for a slot first (services/admission.ts).
  const started = input.kind === 'backup' ? ({ state: 'queued', phase: 'queued' } as const) : { startedAt: new Date(), phase: input.kind };
  try {
    await jobsQ.insertJob(deps.db, { id: jobId, kind: input.kind, clientId: base.clientId, repositoryId: p.repositoryId, policyId: p.id, triggeredBy: input.triggeredBy, ...started });
  } catch (err) {
    if (!(err instanceof jobsQ.ClientBusyError)) throw err;
    const skipped = `client ${p.clientName} already has a ${err.state} backup (job ${err.runningId})`;
    deps.log.info({ policy: p.name, reason: skipped }, 'scheduled backup skipped');
    return { skipped };
  }
  return base;
}

/** Starts the job's workflow (workflow id = job id); a start that fails ends the row. */
async function startJobWorkflow(deps: ServiceDeps, r: ReservedJob, start: (temporal: TemporalClient, options: { workflowId: string; taskQueue: string; searchAttributes: Record<string, string[]> }) => Promise<unknown>): Promise<Job> {
  try {
    await start(await deps.temporal(), { workflowId: r.jobId, taskQueue: deps.config.temporal.taskQueue, searchAttributes: r.searchAttributes });
  } catch (err) {
    await jobsQ.completeJob(deps.db, r.jobId, 'failed', `could not start the workflow: ${(err as Error).message}`, null);
    throw err;
  }
  return (await jobsQ.findJob(deps.db, r.jobId))!;
}

/** Prunes the policy's client now with its rules (a `prune` job, outside the schedule). */
export async function startPrune(deps: ServiceDeps, name: string, triggeredBy?: string): Promise<Job> {
  const p = await policiesQ.findPolicyByName(deps.db, name);
  if (!p) throw notFound('policy', name);
  const r = await reservePolicyJob(deps, { policyId: p.id, kind: 'prune', triggeredBy: triggeredBy ?? 'manual' });
  if (r.skipped !== undefined) throw invalid(r.skipped);
  const args: [PruneInput] = [{ jobId: r.jobId, repositoryId: r.repositoryId, storageHost: r.storageHost }];
  return startJobWorkflow(deps, r, (temporal, options) => temporal.workflow.start(prune, { ...options, args }));
}

export const startCheckInput = z.object({
  repository: z.string().min(1),
  verifyData: z.boolean().default(false),
  triggeredBy: z.string().max(200).optional(),
});

/** `borg check` of a repository now (a `check` job). */
export async function startCheck(deps: ServiceDeps, raw: z.input<typeof startCheckInput>): Promise<Job> {
  const input = startCheckInput.parse(raw);
  const repo = await getRepository(deps, input.repository);
  const jobId = randomUUID();
  const triggeredBy = input.triggeredBy ?? 'manual';
  await jobsQ.insertJob(deps.db, { id: jobId, kind: 'check', clientId: null, repositoryId: repo.id, policyId: null, triggeredBy, startedAt: new Date(), phase: 'check' });
  const r: ReservedJob = {
    jobId,
    kind: 'check',
    policyId: null,
    clientId: null,
    repositoryId: repo.id,
    storageHost: repo.storageHost,
    verifyData: input.verifyData,
    triggeredBy,
    searchAttributes: { BorgcubeJobKind: ['check'], BorgcubeRepository: [repo.name] },
  };
  const args: [CheckInput] = [{ jobId, repositoryId: repo.id, storageHost: repo.storageHost, verifyData: input.verifyData }];
  return startJobWorkflow(deps, r, (temporal, options) => temporal.workflow.start(check, { ...options, args }));
}
