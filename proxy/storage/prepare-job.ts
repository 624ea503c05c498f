// Preparing a backup job (BORG_PROTOCOL.md §6.6): everything its client gets, written to the job's
// server folder — the job key, the fake manifest, the client's Borg cache and a fresh SSH
// credential. Derived from the repository each round, never patched.
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { appendJobLog } from '../../db/queries/jobs.js';
import type { Client } from '../../db/schema.js';
import { filesCachePath, jobClientFilesDir, jobRepositoryUrl, jobServerDir } from '../../infra/storage-layout.js';
import { manifestId, packManifest, parseManifest } from '../borg/manifest.js';
import { nowBorgTime } from '../borg/timestamps.js';
import type { PreparedJob } from './api.js';
import { handedFilesOf, type HandedFiles } from './chunk-store.js';
import { writeClientCache } from './client-cache.js';
import { issueJobCredential } from './credentials.js';
import type { FilesCaches } from './files-caches.js';
import { clientArchiveIds, loadBackupJob, ownEntries } from './job-archives.js';
import { ensureJobKey, type OpenedJobKey } from './job-key.js';
import { writeJobLimits } from './job-quota.js';
import { handedPath, putLogPath, readJobState, writeJobState, type JobStateFile } from './job-state.js';
import type { RepositoryHandle } from './repository.js';
import type { RepositoryService } from './service.js';

export async function prepareJob(service: RepositoryService, filesCaches: FilesCaches, jobId: string): Promise<PreparedJob> {
  const { db, config, log, masterKey } = service.deps;
  const { job, client, archiveName: name } = await loadBackupJob(db, jobId);
  const repo = await service.repository(job.repositoryId);
  // The job's session, finalize and cleanup use the borg serve this opens (RepositoryHandle.holdFor).
  repo.holdFor(jobId);
  const dir = jobServerDir(config, jobId);
  const clientDir = jobClientFilesDir(config, jobId);
  return repo.use(async () => {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // Rebuilt from scratch each round: what the client gets is derived, never patched.
    rmSync(clientDir, { recursive: true, force: true });
    mkdirSync(clientDir, { mode: 0o700 });
    chmodSync(dir, 0o700);

    // 1. The job key (kept across rounds, so the client's counters and cache stay consistent).
    const jobKey = await ensureJobKey(db, masterKey, jobId, repo.key, 'keyfile');
    // 2. The manifest the client is served.
    const state = servedState(service, repo, jobKey, jobId, name);
    const served = Buffer.from(state.servedManifest, 'base64');
    // 3. The chunks this client may know.
    const handed = await handedTo(service, repo, client, job.repositoryId, name);
    writeFileSync(handedPath(config, jobId), handed.refsFile, { mode: 0o600 });
    if (!existsSync(putLogPath(config, jobId))) writeFileSync(putLogPath(config, jobId), '', { mode: 0o600 });
    // The client's cost bounds as they are now, for the job's sessions (job-quota.ts).
    writeJobLimits(config, jobId, client.limits);

    // 4. The client's cache folder, so that stock borg does no cache sync (§6.6).
    const filesCopy = join(clientDir, 'files-cache.tmp');
    const filesCache = await filesCaches.copy(filesCachePath(config, client.id, job.repositoryId), filesCopy);
    await writeClientCache(join(clientDir, 'cache'), {
      repositoryId: Buffer.from(state.fakeRepoId, 'hex'),
      manifestId: manifestId(jobKey.key, served),
      timestamp: parseManifest(jobKey.key, served).timestamp,
      keyType: jobKey.row.keyType,
      previousLocation: jobRepositoryUrl(config, jobId),
      chunks: handed.chunksFile,
      files: filesCache.entries ? { path: filesCopy } : undefined,
    });
    writeFileSync(join(clientDir, 'key'), jobKey.keyText, { mode: 0o600 });
    writeFileSync(join(clientDir, 'passphrase'), `${jobKey.passphrase}\n`, { mode: 0o600 });

    // 5. The job's SSH credential: a fresh key pair per round; earlier ones stop working.
    writeFileSync(join(clientDir, 'id'), await issueJobCredential(db, jobId, client.id), { mode: 0o600 });
    log.info({ job: jobId, handed: handed.entries, scope: client.dedupScope, filesCacheEntries: filesCache.entries }, 'backup prepared');
    await appendJobLog(db, jobId, `prepared: the client may reference ${handed.entries} objects it already backed up (dedup scope ${client.dedupScope}); its files cache has ${filesCache.entries} entries`);
    return { archiveName: name, handedObjects: handed.entries };
  });
}

/**
 * The manifest the client is served: its own last write, or a fresh one listing only this job's
 * checkpoints from earlier rounds (the client may see nothing else, §4.2).
 */
function servedState(service: RepositoryService, repo: RepositoryHandle, jobKey: OpenedJobKey, jobId: string, name: string): JobStateFile {
  const { config } = service.deps;
  const existing = readJobState(config, jobId);
  if (existing) return existing;
  const real = repo.manifest.parsed;
  // Stamped now, not with the real manifest's time, which would tell the client when anyone last
  // wrote to the repository.
  const fake = packManifest(jobKey.key, { archives: new Map(ownEntries(repo, name)), timestamp: nowBorgTime(), itemKeys: real.itemKeys.length ? real.itemKeys : undefined });
  const state = { fakeRepoId: jobKey.row.fakeRepoId, servedManifest: fake.toString('base64'), idMap: {} };
  writeJobState(config, jobId, state);
  return state;
}

/**
 * The chunks this client may know: its own archives (default), or every chunk (opt-in). Objects of
 * archives written outside BorgCube have no verified size here (the item stream gives none we
 * trust); borg would refuse a cache entry with a wrong size, so they are left out and the client
 * simply uploads them again (the service then stores nothing new).
 */
async function handedTo(service: RepositoryService, repo: RepositoryHandle, client: Client, repositoryId: string, name: string): Promise<HandedFiles> {
  if (client.dedupScope === 'repository') return handedFilesOf(repo.chunks.masterIndex());
  const ids = await clientArchiveIds(service.deps.db, repo, client.id, repositoryId);
  for (const [, a] of ownEntries(repo, name)) ids.add(a.id.toString('hex'));
  return repo.chunks.handedFiles(ids);
}
