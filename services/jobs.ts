// Jobs: start a backup, list and show jobs, follow their logs, cancel them. The job row is
// written before the workflow starts (so it shows up at once); the workflow id is the job id.
// Prune and check jobs of a policy start in services/policy-jobs.ts.
import { randomUUID } from 'node:crypto';
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import { z } from 'zod';
import * as jobsQ from '../db/queries/jobs.js';
import { clientNamesByIds, repositoryNamesByIds } from '../db/queries/names.js';
import type { Job } from '../db/schema.js';
import { temporalWorkflowUrl } from '../infra/temporal.js';
import { backup, type BackupInput } from '../workflows/backup.js';
import { statusQuery, type BackupProgress, type BackupStatus } from '../workflows/messages.js';
import { getClient } from './clients.js';
import type { ServiceDeps } from './deps.js';
import { conflict, invalid, notFound } from './errors.js';
import { queuePositions } from './admission.js';
import { endOrphanedJob, workflowGone } from './orphaned-jobs.js';
import { getRepository } from './repositories.js';

export const { jobKinds, jobStates } = jobsQ;

export const startBackupInput = z.object({
  client: z.string().min(1),
  repository: z.string().min(1),
  policyId: z.string().uuid().nullable().optional(),
  triggeredBy: z.string().max(200).optional(),
});

export async function startBackup(deps: ServiceDeps, raw: z.input<typeof startBackupInput>): Promise<Job> {
  const input = startBackupInput.parse(raw);
  const client = await getClient(deps, input.client);
  const repo = await getRepository(deps, input.repository);
  const id = randomUUID();
  let job: Job;
  try {
    // Queued until its workflow's first step gets it a slot (services/admission.ts).
    job = await jobsQ.insertJob(deps.db, { id, kind: 'backup', state: 'queued', phase: 'queued', clientId: client.id, repositoryId: repo.id, policyId: input.policyId ?? null, triggeredBy: input.triggeredBy ?? null });
  } catch (err) {
    if (err instanceof jobsQ.ClientBusyError) throw conflict(`client ${client.name} already has a ${err.state} backup (job ${err.runningId})`);
    throw err;
  }
  const wfInput: BackupInput = { jobId: id, clientId: client.id, repositoryId: repo.id, storageHost: repo.storageHost, policyId: input.policyId ?? null, triggeredBy: input.triggeredBy };
  try {
    const temporal = await deps.temporal();
    await temporal.workflow.start(backup, {
      workflowId: id,
      taskQueue: deps.config.temporal.taskQueue,
      args: [wfInput],
      searchAttributes: { BorgcubeJobKind: ['backup'], BorgcubeClient: [client.name], BorgcubeRepository: [repo.name] },
    });
  } catch (err) {
    await jobsQ.completeJob(deps.db, id, 'failed', `could not start the workflow: ${(err as Error).message}`, null);
    if (err instanceof WorkflowExecutionAlreadyStartedError) throw conflict(`job ${id} already exists`);
    throw err;
  }
  deps.log.info({ job: id, client: client.name, repository: repo.name }, 'backup started');
  return job;
}

export const listJobsInput = z.object({
  client: z.string().optional(),
  repository: z.string().optional(),
  state: z.enum(jobStates).optional(),
  kind: z.enum(jobKinds).optional(),
  /** Opaque cursor from the previous page. */
  cursor: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
});

export interface JobView extends Job {
  clientName: string | null;
  repositoryName: string | null;
  temporalUrl: string;
  /** A queued backup's place in its storage host's queue (1 = next); null otherwise. */
  queuePosition: number | null;
}

export async function listJobs(deps: ServiceDeps, raw: z.input<typeof listJobsInput>): Promise<{ jobs: JobView[]; nextCursor: string | null }> {
  const input = listJobsInput.parse(raw);
  const clientId = input.client ? (await getClient(deps, input.client)).id : undefined;
  const repositoryId = input.repository ? (await getRepository(deps, input.repository)).id : undefined;
  let before: { createdAtMicros: bigint; id: string } | undefined;
  if (input.cursor) {
    const m = /^(\d{1,18})_([0-9a-f-]{36})$/.exec(input.cursor);
    if (!m) throw invalid('cursor: not a cursor from a previous page');
    before = { createdAtMicros: BigInt(m[1]!), id: m[2]! };
  }
  const rows = await jobsQ.listJobs(deps.db, { clientId, repositoryId, state: input.state, kind: input.kind, before, limit: input.limit + 1 });
  const page = rows.slice(0, input.limit).map(({ createdAtMicros: _, ...job }) => job);
  const last = rows.length > input.limit ? rows[input.limit - 1] : undefined;
  return {
    jobs: await withNames(deps, page),
    nextCursor: last ? `${last.createdAtMicros}_${last.id}` : null,
  };
}

async function withNames(deps: ServiceDeps, rows: Job[]): Promise<JobView[]> {
  // Two queries per page, not two per row: a page of 50 jobs names few distinct clients.
  const [clientNames, repoNames, positions] = await Promise.all([
    clientNamesByIds(deps.db, rows.flatMap((r) => (r.clientId ? [r.clientId] : []))),
    repositoryNamesByIds(deps.db, rows.map((r) => r.repositoryId)),
    queuePositions(deps.db, rows),
  ]);
  return rows.map((r) => ({
    ...r,
    clientName: r.clientId ? (clientNames.get(r.clientId) ?? null) : null,
    repositoryName: repoNames.get(r.repositoryId) ?? null,
    temporalUrl: temporalWorkflowUrl(deps.config, r.id),
    queuePosition: positions.get(r.id) ?? null,
  }));
}

const uuid = z.string().uuid('not a job id');

export async function getJob(deps: ServiceDeps, id: string): Promise<JobView> {
  const parsed = uuid.safeParse(id);
  if (!parsed.success) throw invalid(`${JSON.stringify(id)} is not a job id`);
  const job = await jobsQ.findJob(deps.db, id);
  if (!job) throw notFound('job', id);
  return (await withNames(deps, [job]))[0]!;
}

export interface JobDetails extends JobView {
  violations: Awaited<ReturnType<typeof jobsQ.listViolations>>;
  /** Live: the workflow's phase and the latest progress heartbeated by the run activity. */
  live?: { status?: BackupStatus; progress?: BackupProgress };
}

export async function getJobDetails(deps: ServiceDeps, id: string): Promise<JobDetails> {
  const job = await getJob(deps, id);
  const violations = await jobsQ.listViolations(deps.db, id);
  const details: JobDetails = { ...job, violations };
  if (job.state === 'running') details.live = await liveStatus(deps, id).catch(() => undefined);
  return details;
}

/**
 * The workflow's phase (status query) and the newest progress, which lives only in the run
 * activity's heartbeat details — never in the workflow's history.
 */
export async function liveStatus(deps: ServiceDeps, id: string): Promise<{ status?: BackupStatus; progress?: BackupProgress }> {
  const temporal = await deps.temporal();
  const handle = temporal.workflow.getHandle(id);
  const [status, desc] = await Promise.all([handle.query(statusQuery).catch(() => undefined), handle.describe()]);
  let progress: BackupProgress | undefined;
  for (const a of desc.raw.pendingActivities ?? []) {
    const payload = a.heartbeatDetails?.payloads?.[0];
    if (!payload?.data) continue;
    try {
      const details = JSON.parse(Buffer.from(payload.data).toString('utf8')) as { progress?: { originalSize: number; compressedSize: number; deduplicatedSize: number; nfiles: number; path: string; time: number } };
      if (details.progress) progress = { ...details.progress };
    } catch {
      /* not ours */
    }
  }
  return { status, progress };
}

/**
 * Cancels a queued or running job: a running one's workflow stops the remote borg and still
 * cleans up; a queued one's stops waiting and ends `cancelled` with nothing done. A job whose
 * workflow is gone (terminated in Temporal's UI, never started because its starter died between
 * row and workflow, or ended without being able to record its state) is ended here instead —
 * otherwise its row stays `running` and every later backup of the client is refused. Returns
 * whether a cancel was requested ('requested') or the orphaned row was ended ('ended').
 */
export async function cancelJob(deps: ServiceDeps, id: string): Promise<'requested' | 'ended'> {
  const job = await getJob(deps, id);
  if (!jobsQ.isActive(job.state)) throw conflict(`job ${id} already ended (${job.state})`);
  const handle = (await deps.temporal()).workflow.getHandle(id);
  const gone = await workflowGone(handle);
  if (gone) {
    await endOrphanedJob(deps, id, gone);
    return 'ended';
  }
  try {
    await handle.cancel();
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
    await endOrphanedJob(deps, id, 'does not exist');
    return 'ended';
  }
  deps.log.info({ job: id }, 'cancel requested');
  return 'requested';
}

export async function jobLogTail(deps: ServiceDeps, id: string, limit = 200) {
  await getJob(deps, id);
  return jobsQ.lastLogLines(deps.db, id, limit);
}

export async function jobLogAfter(deps: ServiceDeps, id: string, afterSeq: number, limit = 1000) {
  return jobsQ.logLinesAfter(deps.db, id, afterSeq, limit);
}
