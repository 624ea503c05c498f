// Activities that touch a repository (the storage host's task queue): they run inside the
// repository service's process, which holds the real keys and the upstream borg sessions.
//  * prepareBackup: the job key, the fake manifest, the client's cache (BORG_PROTOCOL.md §6.6),
//    the job's SSH credential — everything the client gets, written to the job's server folder;
//  * finalizeBackup: the archive is in the real manifest → record it; drop the job's checkpoints;
//  * cleanupJob: remove what a job left that no archive references; forget the job's secrets;
//  * revokeCredential: the credential stops opening the proxy, live sessions end.
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApplicationFailure, heartbeat } from '@temporalio/activity';
import { and, eq, isNull } from 'drizzle-orm';
import { generateEd25519 } from '../infra/ssh-keygen.js';
import type { Db } from '../db/client.js';
import * as jobsQ from '../db/queries/jobs.js';
import { appendJobLog, revokeJobCredentials } from '../db/queries/jobs.js';
import { findClientById } from '../db/queries/clients.js';
import { archivesTable, jobCredentialsTable, jobKeysTable, type JobStats } from '../db/schema.js';
import type { Config } from '../infra/config.js';
import type { EventPublisher } from '../infra/events.js';
import type { Logger } from '../infra/logger.js';
import type { MasterKey } from '../infra/secrets.js';
import { fingerprintOfPublicKey, normalizeKey } from '../infra/ssh.js';
import { filesCachePath, jobClientFilesDir, jobPulledFilesCachePath, jobRepositoryUrl, jobServerDir } from '../infra/storage-layout.js';
import { writeClientCache } from '../proxy/borg/cache-config.js';
import { asKeyType, createJobKey, isBlake2, loadKey, renderKeyfile, type BorgKey } from '../proxy/borg/keys.js';
import { archiveName, manifestId, packManifest, parseManifest } from '../proxy/borg/manifest.js';
import { handedFilesOf, type HandedFiles } from '../proxy/storage/chunk-store.js';
import { jobKeyContext, type RepositoryService } from '../proxy/storage/service.js';
import type { RepositoryHandle } from '../proxy/storage/repository.js';
import { nowBorgTime, parseBorgTime } from '../proxy/borg/timestamps.js';
import { UpstreamError, type Upstream } from '../proxy/storage/upstream.js';
import { parseArchive } from '../proxy/borg/archive.js';
import { updateRepositoryStats } from '../db/queries/repositories.js';
import { FilesCaches } from '../proxy/storage/files-caches.js';
import { recordPhase } from './jobs.js';

export interface StorageActivityDeps {
  db: Db;
  config: Config;
  log: Logger;
  masterKey: MasterKey;
  service: RepositoryService;
  /** Live job events (phase changes); none in the benchmark's service host. */
  events?: EventPublisher;
}

/** How long a job credential may live at most, whatever happens to the job. */
const CREDENTIAL_TTL_MS = 48 * 3600 * 1000;
/** PBKDF2 rounds of the job key: its passphrase is 256 random bits, so few rounds suffice (§2.2). */
const JOB_KEY_ITERATIONS = 1000;

/** The job key's type: a key file (read through BORG_KEY_FILE) of the real key's id-hash family. */
export function jobKeyType(real: BorgKey): 0x00 | 0x04 {
  return isBlake2(real.type) ? 0x04 : 0x00;
}

export function createStorageActivities(deps: StorageActivityDeps) {
  const { db, config, log, masterKey, service } = deps;
  const filesCaches = new FilesCaches(log);

  /** The client's archives in the repository's committed manifest (dedup scope `client`). */
  async function clientArchiveIds(repo: RepositoryHandle, clientId: string, repositoryId: string): Promise<Set<string>> {
    const live = new Set([...repo.manifest.parsed.archives.values()].map((a) => a.id.toString('hex')));
    const mine = await db
      .select({ borgId: archivesTable.borgId })
      .from(archivesTable)
      .where(and(eq(archivesTable.clientId, clientId), eq(archivesTable.repositoryId, repositoryId), isNull(archivesTable.deletedAt)));
    return new Set(mine.map((a) => a.borgId).filter((h) => live.has(h)));
  }

  async function loadJob(jobId: string) {
    const job = await jobsQ.findJob(db, jobId);
    if (!job) throw ApplicationFailure.nonRetryable(`job ${jobId} does not exist`, 'JobGone');
    const client = job.clientId ? await findClientById(db, job.clientId) : undefined;
    if (!client) throw ApplicationFailure.nonRetryable('the client of this job was removed', 'JobGone');
    if (!job.archiveName) throw ApplicationFailure.nonRetryable('the job has no reserved archive name', 'JobGone');
    return { job, client, archiveName: job.archiveName };
  }

  /** The job's own entries in the real manifest (its archive and checkpoints from earlier rounds). */
  function ownEntries(repo: RepositoryHandle, name: string) {
    const prefix = archiveName(name);
    return [...repo.manifest.parsed.archives].filter(([n]) => n === prefix || (n.startsWith(prefix) && /^\.checkpoint(\.\d+)?$/.test(n.slice(prefix.length))));
  }

  return {
    async prepareBackup({ jobId }: { jobId: string }): Promise<{ archiveName: string; handedObjects: number }> {
      const { job, client, archiveName: name } = await loadJob(jobId);
      const repo = await service.repository(job.repositoryId);
      const dir = jobServerDir(config, jobId);
      const clientDir = jobClientFilesDir(config, jobId);
      return repo.use(async () => {
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        // Rebuilt from scratch each round: what the client gets is derived, never patched.
        rmSync(clientDir, { recursive: true, force: true });
        mkdirSync(clientDir, { mode: 0o700 });
        chmodSync(dir, 0o700);

        // 1. The job key (kept across rounds, so the client's counters and cache stay consistent).
        let keyRow = (await db.select().from(jobKeysTable).where(eq(jobKeysTable.jobId, jobId)))[0];
        let keyText: string;
        let passphrase: string;
        if (!keyRow) {
          const fakeRepoId = randomBytes(32);
          const jk = createJobKey(repo.key, jobKeyType(repo.key));
          passphrase = jk.passphrase;
          keyText = renderKeyfile({ ...jk.key, repositoryId: fakeRepoId }, passphrase, JOB_KEY_ITERATIONS);
          keyRow = (
            await db
              .insert(jobKeysTable)
              .values({ jobId, keyType: jk.key.type, keySealed: masterKey.seal(JSON.stringify({ keyText, passphrase }), jobKeyContext(jobId)), fakeRepoId: fakeRepoId.toString('hex') })
              .returning()
          )[0]!;
        } else {
          ({ keyText, passphrase } = JSON.parse(masterKey.openText(keyRow.keySealed, jobKeyContext(jobId))) as { keyText: string; passphrase: string });
        }
        const jobKey = loadKey(keyText, passphrase, asKeyType(keyRow.keyType));

        // 2. The manifest the client is served: its own last write, or a fresh one listing only this
        //    job's checkpoints from earlier rounds (the client may see nothing else, §4.2).
        let state = service.readJobState(jobId);
        if (!state) {
          const real = repo.manifest.parsed;
          // Stamped now, not with the real manifest's time, which would tell the client when
          // anyone last wrote to the repository.
          const fake = packManifest(jobKey, { archives: new Map(ownEntries(repo, name)), timestamp: nowBorgTime(), itemKeys: real.itemKeys.length ? real.itemKeys : undefined });
          state = { fakeRepoId: keyRow.fakeRepoId, servedManifest: fake.toString('base64'), idMap: {} };
          service.writeJobState(jobId, state);
        }
        const served = Buffer.from(state.servedManifest, 'base64');
        const servedParsed = parseManifest(jobKey, served);

        // 3. The chunks this client may know: its own archives (default), or every chunk (opt-in).
        let handed: HandedFiles;
        if (client.dedupScope === 'repository') handed = handedFilesOf(repo.chunks.masterIndex());
        else {
          const ids = await clientArchiveIds(repo, client.id, job.repositoryId);
          for (const [, a] of ownEntries(repo, name)) ids.add(a.id.toString('hex'));
          handed = repo.chunks.handedFiles(ids);
        }
        // Objects of archives written outside BorgCube have no verified size here (the item stream
        // gives none we trust); borg would refuse a cache entry with a wrong size, so they are left
        // out above and the client simply uploads them again (the service then stores nothing new).
        writeFileSync(join(dir, 'handed.idx'), handed.refsFile, { mode: 0o600 });
        if (!existsSync(join(dir, 'puts.log'))) writeFileSync(join(dir, 'puts.log'), '', { mode: 0o600 });

        // 4. The client's cache folder, so that stock borg does no cache sync (§6.6).
        const filesCache = await filesCaches.read(filesCachePath(config, client.id, job.repositoryId));
        await writeClientCache(join(clientDir, 'cache'), {
          repositoryId: Buffer.from(state.fakeRepoId, 'hex'),
          manifestId: manifestId(jobKey, served),
          timestamp: servedParsed.timestamp,
          keyType: keyRow.keyType,
          previousLocation: jobRepositoryUrl(config, jobId),
          chunks: handed.chunksFile,
          files: filesCache.data,
        });
        writeFileSync(join(clientDir, 'key'), keyText, { mode: 0o600 });
        writeFileSync(join(clientDir, 'passphrase'), `${passphrase}\n`, { mode: 0o600 });

        // 5. The job's SSH credential: a fresh key pair per round; earlier ones stop working.
        const pair = generateEd25519(`borgcube-job-${jobId}`);
        writeFileSync(join(clientDir, 'id'), pair.private, { mode: 0o600 });
        const publicKey = normalizeKey(pair.public);
        await revokeJobCredentials(db, jobId);
        await db.insert(jobCredentialsTable).values({
          jobId,
          clientId: client.id,
          publicKey,
          fingerprint: fingerprintOfPublicKey(publicKey),
          expiresAt: new Date(Date.now() + CREDENTIAL_TTL_MS),
        });
        log.info({ job: jobId, handed: handed.entries, scope: client.dedupScope, filesCacheEntries: filesCache.entries }, 'backup prepared');
        await appendJobLog(db, jobId, `prepared: the client may reference ${handed.entries} objects it already backed up (dedup scope ${client.dedupScope}); its files cache has ${filesCache.entries} entries`);
        return { archiveName: name, handedObjects: handed.entries };
      });
    },

    /** The archive must be in the real manifest under its reserved name; record it. */
    async finalizeBackup({ jobId }: { jobId: string }): Promise<{ stats: JobStats }> {
      await recordPhase(deps, jobId, 'finalize');
      const { job, client, archiveName: name } = await loadJob(jobId);
      const repo = await service.repository(job.repositoryId);
      const result = await repo.use(async (up) => {
        const entry = repo.manifest.parsed.archives.get(archiveName(name));
        if (!entry) throw ApplicationFailure.nonRetryable(`archive ${name} is not in the repository`, 'ArchiveMissing');
        const { plaintext } = await repo.readObject(up, entry.id);
        const meta = parseArchive(repo.key, plaintext);
        // Leftover checkpoints of this job (from rounds that were cut short) are superseded now.
        await dropEntries(repo, up, ownEntries(repo, name).filter(([n]) => n !== archiveName(name)));
        return { entry, meta };
      });
      const { entry, meta } = result;
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
      await db
        .insert(archivesTable)
        .values({
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
        })
        .onConflictDoNothing();
      await refreshRepositoryStats(db, repo);
      if (client.dedupScope === 'client') {
        // The client's next job is handed what this one left: built now, while the client is
        // cleaned up, rather than when that job prepares (ChunkStore.handedFiles keeps it).
        void clientArchiveIds(repo, client.id, job.repositoryId)
          .then(async (ids) => {
            await new Promise((resolve) => setImmediate(resolve));
            repo.chunks.handedFiles(ids);
          })
          .catch((err: Error) => log.warn({ job: jobId, err: err.message }, 'building the client\'s next chunk index failed'));
      }
      log.info({ job: jobId, archive: name, ...jobStats }, 'backup finalized');
      return { stats: jobStats };
    },

    async revokeCredential({ jobId }: { jobId: string }): Promise<void> {
      await revokeJobCredentials(db, jobId);
      service.abortJob(jobId, 'the job ended');
    },

    /**
     * After any job: objects it stored that no archive references are removed (with the
     * repository's commit lock, never while another session may still reference them); a job that
     * ended in a violation loses its archives too. A succeeded job's files cache, pulled back from
     * the client, becomes the client's for its next job. Then its server folder and key are deleted.
     */
    async cleanupJob({ jobId, succeeded }: { jobId: string; succeeded: boolean }): Promise<{ removedObjects: number }> {
      const job = await jobsQ.findJob(db, jobId);
      if (!job) return { removedObjects: 0 };
      const dir = jobServerDir(config, jobId);
      service.abortJob(jobId, 'the job ended');
      for (let i = 0; i < 60 && service.hasLiveSession(jobId); i++) await new Promise((r) => setTimeout(r, 500));
      let removed = 0;
      if (existsSync(dir)) {
        const repo = await service.repository(job.repositoryId);
        const violation = job.state === 'violation' || (await jobsQ.listViolations(db, jobId)).length > 0;
        removed = await repo.use(async (up) => {
          if (job.archiveName) {
            const state = service.readJobState(jobId);
            const mine = new Set(Object.values(state?.idMap ?? {}));
            const entries = ownEntries(repo, job.archiveName).filter(([, a]) => mine.has(a.id.toString('hex')));
            if (violation) await dropEntries(repo, up, entries);
            else if (!succeeded) await recordCheckpoints(db, job, entries);
          }
          return repo.sweepJob(up, join(dir, 'puts.log'), jobId);
        });
        heartbeat();
      }
      if (succeeded && job.clientId) filesCaches.adopt(jobPulledFilesCachePath(config, jobId), filesCachePath(config, job.clientId, job.repositoryId));
      rmSync(dir, { recursive: true, force: true });
      await db.delete(jobKeysTable).where(eq(jobKeysTable.jobId, jobId));
      service.forgetJobStats(jobId);
      if (removed) log.info({ job: jobId, removed, succeeded }, 'unreferenced objects of the job removed');
      return { removedObjects: removed };
    },
  };
}

export type StorageActivities = ReturnType<typeof createStorageActivities>;

/**
 * A job that failed after committing checkpoints leaves a partial backup (borg keeps those too):
 * recorded as the client's archives, so prune sees them and the client's next job dedups against
 * what they hold.
 */
async function recordCheckpoints(db: Db, job: { id: string; clientId: string | null; repositoryId: string }, entries: Array<[string, { id: Buffer; time: string }]>) {
  for (const [name, a] of entries) {
    await db
      .insert(archivesTable)
      .values({ repositoryId: job.repositoryId, borgId: a.id.toString('hex'), name: Buffer.from(name, 'latin1').toString('utf8'), clientId: job.clientId, jobId: job.id, time: new Date(parseBorgTime(a.time) / 1000) })
      .onConflictDoNothing();
  }
}

/** Removes manifest entries (and their archive objects) in one committed transaction. */
async function dropEntries(repo: RepositoryHandle, up: Upstream, entries: Array<[string, { id: Buffer }]>): Promise<void> {
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

async function deleteIfPresent(up: Upstream, id: Buffer) {
  try {
    await up.call('delete', { id });
  } catch (err) {
    if (!(err instanceof UpstreamError && err.cls === 'ObjectNotFound')) throw err;
  }
}

export async function refreshRepositoryStats(db: Db, repo: RepositoryHandle) {
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
