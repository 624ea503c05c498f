// Finalizing a backup job: its archive must be in the real manifest under its reserved name; it is
// recorded with the job's figures, and the job's leftover checkpoints are dropped.
import { insertArchiveOnce } from '../../db/queries/archives.js';
import type { JobStats } from '../../db/schema.js';
import { parseArchive } from '../borg/archive.js';
import { archiveName } from '../borg/manifest.js';
import { parseBorgTime } from '../borg/timestamps.js';
import { StorageJobError } from './api.js';
import { clientArchiveIds, dropEntries, loadBackupJob, ownEntries, refreshRepositoryStats } from './job-archives.js';
import type { RepositoryService } from './service.js';

export async function finalizeJob(service: RepositoryService, jobId: string): Promise<{ stats: JobStats }> {
  const { db, log } = service.deps;
  const { job, client, archiveName: name } = await loadBackupJob(db, jobId);
  const repo = await service.repository(job.repositoryId);
  const { entry, meta } = await repo.use(async (up) => {
    const entry = repo.manifest.parsed.archives.get(archiveName(name));
    if (!entry) throw new StorageJobError('ArchiveMissing', `archive ${name} is not in the repository`);
    const { plaintext } = await repo.readObject(up, entry.id);
    const meta = parseArchive(repo.key, plaintext);
    // Leftover checkpoints of this job (from rounds that were cut short) are superseded now.
    await dropEntries(repo, up, ownEntries(repo, name).filter(([n]) => n !== archiveName(name)));
    return { entry, meta };
  });
  const stats = service.jobStats(jobId);
  const refs = repo.chunks.readArchiveIndex(entry.id.toString('hex'));
  const jobStats: JobStats = {
    originalSize: meta.stats?.size,
    compressedSize: meta.stats?.csize,
    nfiles: meta.stats?.nfiles,
    deduplicatedSize: stats.newBytes,
    uploadedBytes: stats.uploadedBytes,
    uploadedObjects: stats.uploadedObjects,
    referencedObjects: refs?.size,
  };
  await insertArchiveOnce(db, {
    repositoryId: job.repositoryId,
    borgId: entry.id.toString('hex'),
    name,
    clientId: client.id,
    jobId,
    time: new Date(parseBorgTime(entry.time) / 1000),
    originalSize: meta.stats?.size ?? null,
    compressedSize: meta.stats?.csize ?? null,
    deduplicatedSize: stats.newBytes,
    nfiles: meta.stats?.nfiles ?? null,
  });
  await refreshRepositoryStats(db, repo);
  if (client.dedupScope === 'client') {
    // The client's next job is handed what this one left: built now, while the client is cleaned
    // up, rather than when that job prepares (ChunkStore.handedFiles keeps it).
    void clientArchiveIds(db, repo, client.id, job.repositoryId)
      .then(async (ids) => {
        await new Promise((resolve) => setImmediate(resolve));
        repo.chunks.handedFiles(ids);
      })
      .catch((err: Error) => log.warn({ job: jobId, err: err.message }, "building the client's next chunk index failed"));
  }
  log.info({ job: jobId, archive: name, ...jobStats }, 'backup finalized');
  return { stats: jobStats };
}
