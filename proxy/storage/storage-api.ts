// The StorageApi (api.ts) over a running repository service, for the storage host's activities.
import { existsSync, rmSync } from 'node:fs';
import { deleteJobKey } from '../../db/queries/job-keys.js';
import type { Job } from '../../db/schema.js';
import * as jobsQ from '../../db/queries/jobs.js';
import { filesCachePath, jobPulledFilesCachePath, jobServerDir } from '../../infra/storage-layout.js';
import type { StorageApi } from './api.js';
import { finalizeJob } from './finalize-job.js';
import { FilesCaches } from './files-caches.js';
import { dropEntries, ownEntries, recordCheckpoints, refreshRepositoryStats } from './job-archives.js';
import { putLogPath, readJobState } from './job-state.js';
import { prepareJob } from './prepare-job.js';
import { prepareRestore, prepareRestoreStart, restoreSelection } from './prepare-restore.js';
import type { RepositoryService } from './service.js';
import { sweepPutLog } from './sweep.js';

export function createStorageApi(service: RepositoryService): StorageApi {
  const filesCaches = new FilesCaches(service.deps.log);
  return {
    prepareJob: (jobId) => prepareJob(service, filesCaches, jobId),
    prepareRestore: (jobId, form) => prepareRestore(service, jobId, form),
    prepareRestoreStart: (jobId, form) => prepareRestoreStart(service, jobId, form),
    restoreSelection: (jobId) => restoreSelection(service, jobId),
    finalizeJob: (jobId) => finalizeJob(service, jobId),
    async revokeJob(jobId) {
      await jobsQ.revokeJobCredentials(service.deps.db, jobId);
      service.sessions.abortJob(jobId, 'the job ended');
    },
    cleanupJob: (jobId, succeeded, progress) => cleanupJob(service, filesCaches, jobId, succeeded, progress),
    async exclusive(repositoryId, fn, signal) {
      return (await service.repository(repositoryId)).exclusive(fn, signal);
    },
    async refreshRepository(repositoryId) {
      const handle = await service.repository(repositoryId);
      return handle.use(async () => {
        const liveArchiveIds = new Set([...handle.manifest.parsed.archives.values()].map((a) => a.id.toString('hex')));
        await refreshRepositoryStats(service.deps.db, handle);
        service.catalog.dropGone(repositoryId, liveArchiveIds);
        return { liveArchiveIds };
      });
    },
  };
}

/** A backup's unreferenced objects (and a violating job's archives) out of the repository; how many. */
async function cleanupRepository(service: RepositoryService, job: Job, succeeded: boolean, progress?: () => void): Promise<number> {
  const { db, config } = service.deps;
  // A restore stored nothing (its session allows no write): there is nothing in the repository to clean up.
  if (!existsSync(jobServerDir(config, job.id)) || job.kind !== 'backup') return 0;
  const repo = await service.repository(job.repositoryId);
  const violation = job.state === 'violation' || (await jobsQ.listViolations(db, job.id)).length > 0;
  const removed = await repo.use(async (up) => {
    if (job.archiveName) {
      const mine = new Set(Object.values(readJobState(config, job.id)?.idMap ?? {}));
      const entries = ownEntries(repo, job.archiveName).filter(([, a]) => mine.has(a.id.toString('hex')));
      if (violation) await dropEntries(repo, up, entries);
      else if (!succeeded) await recordCheckpoints(db, job, entries);
    }
    return sweepPutLog(repo, up, putLogPath(config, job.id), job.id);
  });
  progress?.();
  return removed;
}

/**
 * After any job: objects it stored that no archive references are removed (with the repository's
 * commit lock, never while another session may still reference them); a job that ended in a
 * violation loses its archives too. A succeeded job's files cache, pulled back from the client,
 * becomes the client's for its next job. Then its server folder and key are deleted.
 */
async function cleanupJob(service: RepositoryService, filesCaches: FilesCaches, jobId: string, succeeded: boolean, progress?: () => void): Promise<{ removedObjects: number }> {
  const { db, config, log } = service.deps;
  const job = await jobsQ.findJob(db, jobId);
  if (!job) return { removedObjects: 0 };
  const dir = jobServerDir(config, jobId);
  service.sessions.abortJob(jobId, 'the job ended');
  // A restore's walk stops, and a prepare of it arriving late (a cancelled workflow's) prepares nothing.
  if (job.kind === 'restore') {
    await service.restoreSelections.stop(jobId, true);
    // A prepare that was still running may have issued a credential after the workflow revoked the job's.
    await jobsQ.revokeJobCredentials(db, jobId);
  }
  for (let i = 0; i < 60 && service.sessions.has(jobId); i++) await new Promise((r) => setTimeout(r, 500));
  let removed = 0;
  try {
    removed = await cleanupRepository(service, job, succeeded, progress);
  } finally {
    // Also when the repository part failed: the job's hold keeps its borg serve open for nobody.
    if (job.repositoryId) service.endHold(job.repositoryId, jobId);
  }
  if (succeeded && job.clientId && job.kind === 'backup') filesCaches.adopt(jobPulledFilesCachePath(config, jobId), filesCachePath(config, job.clientId, job.repositoryId));
  rmSync(dir, { recursive: true, force: true });
  await deleteJobKey(db, jobId);
  service.forgetJobStats(jobId);
  if (removed) log.info({ job: jobId, removed, succeeded }, 'unreferenced objects of the job removed');
  return { removedObjects: removed };
}
