// Jobs: start a backup, list and show jobs, follow their logs, cancel them. The job row is
// written before the workflow starts (so it shows up at once); the workflow id is the job id.
import { randomUUID } from 'node:crypto';
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import { z } from 'zod';
import * as jobsQ from '../db/queries/jobs.js';
import { clientNamesByIds, repositoryNamesByIds } from '../db/queries/names.js';
import type { Job } from '../db/schema.js';
import { temporalWorkflowUrl } from '../infra/temporal.js';
import type { BackupInput } from '../workflows/backup.js';
import { statusQuery, type BackupProgress, type BackupStatus } from '../workflows/messages.js';
import { getClient } from './clients.js';
import type { ServiceDeps } from './deps.js';
import { conflict, invalid, notFound } from './errors.js';
import { getRepository } from './repositories.js';

export const jobStates = ['running', 'succeeded', 'failed', 'violation', 'cancelled'] as const;
export const jobKinds = ['backup', 'restore', 'prune', 'check'] as const;

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
  const r = await jobsQ.insertBackupUnlessRunning(deps.db, { id, clientId: client.id, repositoryId: repo.id, policyId: input.policyId ?? null, triggeredBy: input.triggeredBy ?? null });
  if ('runningId' in r) throw conflict(`client ${client.name} already has a running backup (job ${r.runningId})`);
  const { job } = r;
  const wfInput: BackupInput = { jobId: id, clientId: client.id, repositoryId: repo.id, storageHost: repo.storageHost, policyId: input.policyId ?? null, triggeredBy: input.triggeredBy };
  try {
    const temporal = await deps.temporal();
    await temporal.workflow.start('backup', {
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
}

export async function listJobs(deps: ServiceDeps, raw: z.input<typeof listJobsInput>): Promise<{ jobs: JobView[]; nextCursor: string | null }> {
  const input = listJobsInput.parse(raw);
  const clientId = input.client ? (await getClient(deps, input.client)).id : undefined;
  const repositoryId = input.repository ? (await getRepository(deps, input.repository)).id : undefined;
  let before: { createdAt: Date; id: string } | undefined;
  if (input.cursor) {
    const m = /^(\d+)_([0-9a-f-]{36})$/.exec(input.cursor);
    if (!m) throw invalid('cursor: not a cursor from a previous page');
    before = { createdAt: new Date(Number(m[1]) / 1000), id: m[2]! };
  }
  const rows = await jobsQ.listJobs(deps.db, { clientId, repositoryId, state: input.state, kind: input.kind, before, limit: input.limit + 1 });
  const page = rows.slice(0, input.limit);
  const last = page.at(-1);
  return {
    jobs: await withNames(deps, page),
    nextCursor: rows.length > input.limit && last ? `${last.createdAt.getTime() * 1000}_${last.id}` : null,
  };
}

async function withNames(deps: ServiceDeps, rows: Job[]): Promise<JobView[]> {
  // Two queries per page, not two per row: a page of 50 jobs names few distinct clients.
  const [clientNames, repoNames] = await Promise.all([
    clientNamesByIds(deps.db, rows.flatMap((r) => (r.clientId ? [r.clientId] : []))),
    repositoryNamesByIds(deps.db, rows.map((r) => r.repositoryId)),
  ]);
  return rows.map((r) => ({
    ...r,
    clientName: r.clientId ? (clientNames.get(r.clientId) ?? null) : null,
    repositoryName: repoNames.get(r.repositoryId) ?? null,
    temporalUrl: temporalWorkflowUrl(deps.config, r.id),
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

export async function cancelJob(deps: ServiceDeps, id: string): Promise<void> {
  const job = await getJob(deps, id);
  if (job.state !== 'running') throw conflict(`job ${id} already ended (${job.state})`);
  try {
    await (await deps.temporal()).workflow.getHandle(id).cancel();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw conflict(`job ${id} has no running workflow`);
    throw err;
  }
  deps.log.info({ job: id }, 'cancel requested');
}

export async function jobLogTail(deps: ServiceDeps, id: string, limit = 200) {
  await getJob(deps, id);
  return jobsQ.lastLogLines(deps.db, id, limit);
}

export async function jobLogAfter(deps: ServiceDeps, id: string, afterSeq: number, limit = 1000) {
  return jobsQ.logLinesAfter(deps.db, id, afterSeq, limit);
}
