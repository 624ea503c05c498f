// Restores (issue 20 point 3): an operator or admin restores an archive — all of it or some paths —
// onto a client (the archive's own or another one) into a directory, or in place when asked
// explicitly. The job row (kind `restore`, client = the target) is written before the workflow
// starts; the workflow id is the job id. Checks that need the client host (the target is a file,
// the account cannot write it) happen in the workflow's first client step.
import { randomUUID } from 'node:crypto';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { z } from 'zod';
import { insertAuditEvent } from '../db/queries/audit.js';
import { findClientById } from '../db/queries/clients.js';
import * as jobsQ from '../db/queries/jobs.js';
import { findRepositoryById } from '../db/queries/repositories.js';
import type { DumpRestore, Job, RestoreSpec } from '../db/schema.js';
import { restore, type RestoreInput } from '../workflows/restore.js';
import { resolveArchive } from './archives.js';
import { getClient } from './clients.js';
import type { ServiceDeps } from './deps.js';
import { dumpEntryKind, dumpRestoreSchema } from './dumps.js';
import { conflict, forbidden, invalid, notFound } from './errors.js';
import type { Role } from './users.js';
import { absolutePathSchema, formatZodError } from './validation.js';

/** Where a restore goes when no target is given: a new directory named after the job. */
export const defaultRestoreTarget = (jobId: string) => `/var/tmp/borgcube-restore-${jobId}`;

/**
 * An archive path as the operator names it → borg's form (no leading slash). '..', '.' and empty
 * components are refused rather than normalised away: what is restored must be what was asked for.
 */
export const archivePathSchema = z
  .string()
  .min(1, 'a path must not be empty')
  .max(4096)
  .refine((p) => !p.includes('\0') && !/[\n\r]/.test(p), 'a path must not contain NUL or newlines')
  .transform((p) => p.replace(/^\/+/, '').replace(/\/+$/, ''))
  .refine((p) => p !== '', 'the path "/" is the whole archive: give no path instead')
  .refine((p) => p.split('/').every((c) => c !== '' && c !== '.' && c !== '..'), 'a path must not contain "..", "." or empty components');

export const startRestoreInput = z
  .object({
    archive: z.string().min(1, 'name an archive (its name or id)'),
    repository: z.string().min(1).optional(),
    /** The target client; the archive's own when not given. */
    client: z.string().min(1).optional(),
    target: absolutePathSchema.optional(),
    inPlace: z.boolean().default(false),
    paths: z.array(archivePathSchema).max(1000).default([]),
    stripComponents: z.number().int().min(0).max(255).default(0),
    /** Stream one database dump entry into a new database on the client instead of restoring files (issue 24). */
    dump: dumpRestoreSchema.optional(),
  })
  .strict()
  .refine((i) => !(i.inPlace && i.target !== undefined), { message: 'give either a target directory or in place, not both', path: ['target'] })
  .refine((i) => !i.dump || (!i.inPlace && i.target === undefined && i.paths.length === 0 && i.stripComponents === 0), {
    message: 'a dump restore goes into a database: give no target, paths, in place or strip components with it',
    path: ['dump'],
  });

export type StartRestoreInput = z.input<typeof startRestoreInput>;

/** The validated dump restore with its kind and format taken from the entry's name. */
function dumpRestoreOf(d: z.output<typeof dumpRestoreSchema>): DumpRestore {
  const k = dumpEntryKind(d.entry);
  if (!k) throw invalid(`${JSON.stringify(d.entry)} is not a dump entry`);
  return { ...d, ...k };
}

/**
 * A dump restore's `target`: what it writes into, so that the one-restore-per-target rule keeps
 * two restores out of the same database (or SQLite file) of a client.
 */
export function dumpTargetLabel(d: DumpRestore): string {
  return d.kind === 'sqlite' ? d.into : `${d.kind}:${d.host ?? 'localhost'}:${d.port ?? 'default'}:${d.into}`;
}

/** Who starts the restore: their role decides the dedup-scope rule; the audit log names them. */
export interface RestoreActor {
  /** As jobs.triggeredBy shows it (`cli:root`, `web:alice`, `api:bob`). */
  actor: string;
  userId: string | null;
  role: Role;
}

export async function startRestore(deps: ServiceDeps, by: RestoreActor, raw: StartRestoreInput): Promise<Job> {
  const parsed = startRestoreInput.safeParse(raw);
  if (!parsed.success) throw invalid(formatZodError(parsed.error));
  const input = parsed.data;
  if (by.role === 'viewer') throw forbidden('starting a restore needs the operator or admin role');
  const archive = await resolveArchive(deps, input.archive, input.repository);
  const source = archive.clientId ? await findClientById(deps.db, archive.clientId) : undefined;
  // In `repository` dedup scope a client may reference any chunk of the repository in its own
  // archives (BORG_PROTOCOL.md §9.7): restoring such an archive can hand out other tenants' data.
  if (by.role !== 'admin' && (!source || source.dedupScope === 'repository')) {
    throw forbidden(
      source
        ? `archive ${archive.name} is of client ${source.name}, which deduplicates across the whole repository: it may reference other clients' data, so only an admin may restore it`
        : `the client of archive ${archive.name} was removed, so its dedup scope is unknown: only an admin may restore it`,
    );
  }
  const target = input.client ? await getClient(deps, input.client) : source;
  if (!target) throw invalid(`the client of archive ${archive.name} was removed; name a target client`);
  const repo = await findRepositoryById(deps.db, archive.repositoryId);
  if (!repo) throw notFound('repository', archive.repositoryName);
  const id = randomUUID();
  const dump = input.dump ? dumpRestoreOf(input.dump) : undefined;
  const spec: RestoreSpec = {
    archiveId: archive.id,
    archiveBorgId: archive.borgId,
    archiveName: archive.name,
    sourceClientId: archive.clientId,
    paths: dump ? [dump.entry] : [...new Set(input.paths)],
    target: dump ? dumpTargetLabel(dump) : input.inPlace ? '/' : (input.target ?? defaultRestoreTarget(id)),
    inPlace: input.inPlace,
    stripComponents: input.stripComponents,
    ...(dump ? { dump } : {}),
  };
  let job: Job;
  try {
    job = await jobsQ.insertJob(deps.db, { id, kind: 'restore', clientId: target.id, repositoryId: repo.id, triggeredBy: by.actor, restore: spec });
  } catch (err) {
    if (err instanceof jobsQ.TargetBusyError) throw conflict(`a restore into ${spec.target} on client ${target.name} is already running (job ${err.runningId})`);
    throw err;
  }
  await insertAuditEvent(deps.db, {
    userId: by.userId,
    actor: by.actor,
    action: 'restore.start',
    target: archive.name,
    detail: { job: id, repository: repo.name, client: target.name, target: spec.target, paths: spec.paths, inPlace: spec.inPlace, stripComponents: spec.stripComponents, ...(dump ? { dump: dump.entry } : {}) },
  });
  const wfInput: RestoreInput = { jobId: id, clientId: target.id, repositoryId: repo.id, storageHost: repo.storageHost, triggeredBy: by.actor };
  try {
    const temporal = await deps.temporal();
    await temporal.workflow.start(restore, {
      workflowId: id,
      taskQueue: deps.config.temporal.taskQueue,
      args: [wfInput],
      searchAttributes: { BorgcubeJobKind: ['restore'], BorgcubeClient: [target.name], BorgcubeRepository: [repo.name] },
    });
  } catch (err) {
    await jobsQ.completeJob(deps.db, id, 'failed', `could not start the workflow: ${(err as Error).message}`, null);
    if (err instanceof WorkflowExecutionAlreadyStartedError) throw conflict(`job ${id} already exists`);
    throw err;
  }
  deps.log.info({ job: id, archive: archive.name, client: target.name, target: spec.target }, 'restore started');
  return job;
}
