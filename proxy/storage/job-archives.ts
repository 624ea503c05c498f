// A backup job's archives in the real repository: its reserved name and that name's checkpoints
// (from earlier rounds), which the storage steps hand to the client, record, or drop.
import type { Db } from '../../db/client.js';
import { clientArchiveBorgIds, insertArchiveOnce } from '../../db/queries/archives.js';
import { findClientById } from '../../db/queries/clients.js';
import { findJob } from '../../db/queries/jobs.js';
import { updateRepositoryStats } from '../../db/queries/repositories.js';
import { archiveName } from '../borg/manifest.js';
import { parseBorgTime } from '../borg/timestamps.js';
import { StorageJobError } from './api.js';
import type { RepositoryHandle } from './repository.js';
import { deleteIfPresent, type Upstream } from './upstream.js';

type Entry = [string, { id: Buffer; time: string }];

/** A backup job with its client and reserved archive name, or StorageJobError. */
export async function loadBackupJob(db: Db, jobId: string) {
  const job = await findJob(db, jobId);
  if (!job) throw new StorageJobError('JobGone', `job ${jobId} does not exist`);
  const client = job.clientId ? await findClientById(db, job.clientId) : undefined;
  if (!client) throw new StorageJobError('JobGone', 'the client of this job was removed');
  if (!job.archiveName) throw new StorageJobError('JobGone', 'the job has no reserved archive name');
  return { job, client, archiveName: job.archiveName };
}

/** The job's own entries in the real manifest (its archive and checkpoints from earlier rounds). */
export function ownEntries(repo: RepositoryHandle, name: string): Entry[] {
  const prefix = archiveName(name);
  return [...repo.manifest.parsed.archives].filter(([n]) => n === prefix || (n.startsWith(prefix) && /^\.checkpoint(\.\d+)?$/.test(n.slice(prefix.length))));
}

/** The client's archives in the repository's committed manifest (dedup scope `client`). */
export async function clientArchiveIds(db: Db, repo: RepositoryHandle, clientId: string, repositoryId: string): Promise<Set<string>> {
  const live = new Set([...repo.manifest.parsed.archives.values()].map((a) => a.id.toString('hex')));
  const mine = await clientArchiveBorgIds(db, clientId, repositoryId);
  return new Set(mine.filter((h) => live.has(h)));
}

/**
 * A job that failed after committing checkpoints leaves a partial backup (borg keeps those too):
 * recorded as the client's archives, so prune sees them and the client's next job dedups against
 * what they hold.
 */
export async function recordCheckpoints(db: Db, job: { id: string; clientId: string | null; repositoryId: string }, entries: Entry[]): Promise<void> {
  for (const [name, a] of entries) {
    await insertArchiveOnce(db, { repositoryId: job.repositoryId, borgId: a.id.toString('hex'), name: Buffer.from(name, 'latin1').toString('utf8'), clientId: job.clientId, jobId: job.id, time: new Date(parseBorgTime(a.time) / 1000) });
  }
}

/** Removes manifest entries (and their archive objects) in one committed transaction. */
export async function dropEntries(repo: RepositoryHandle, up: Upstream, entries: Array<[string, { id: Buffer }]>): Promise<void> {
  if (!entries.length) return;
  await repo.commitLock.run(async () => {
    const archives = new Map(repo.manifest.parsed.archives);
    for (const [n] of entries) archives.delete(n);
    const next = await repo.writeManifest(up, archives);
    for (const [, a] of entries) await deleteIfPresent(up, a.id);
    await repo.commit(up);
    repo.setCommittedManifest(next);
    for (const [, a] of entries) repo.chunks.removeArchive(a.id.toString('hex'));
  });
}

/** The repository's figures in its row (archives, sizes with and without deduplication). */
export async function refreshRepositoryStats(db: Db, repo: RepositoryHandle): Promise<void> {
  let uniqueSize = 0;
  let uniqueCsize = 0;
  let totalSize = 0;
  let totalCsize = 0;
  for (const [, e] of repo.chunks.entries()) {
    uniqueSize += e.size;
    uniqueCsize += e.csize;
    totalSize += e.size * e.refcount;
    totalCsize += e.csize * e.refcount;
  }
  await updateRepositoryStats(db, repo.info.id, {
    archives: repo.manifest.parsed.archives.size,
    originalSize: totalSize,
    compressedSize: totalCsize,
    uniqueSize,
    uniqueCompressedSize: uniqueCsize,
    updatedAt: new Date().toISOString(),
  });
}
