// Preparing a restore job (DESIGN.md §3, issue 20 point 4): what its client gets — the job key, a
// fresh SSH credential — and what its read-only session may serve, all in the job's server folder:
//  * the fake manifest, listing only the archive being restored, under the id of that archive
//    object re-signed (TAM) with the job key, so that borg ≥ 1.2.5 verifies it too;
//  * allowed.ids: the archive's items chunks and the data chunks `borg extract` reads for the
//    selected paths (restore-selection.ts), sorted (id-set.ts). Every other object keeps its id:
//    the job key has the repository's id key and chunk seed.
// No Borg cache: extract needs none. The repository is held for one object read at a time.
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findClientById } from '../../db/queries/clients.js';
import { appendJobLog, findJob } from '../../db/queries/jobs.js';
import type { RestoreSpec } from '../../db/schema.js';
import { jobClientFilesDir, jobServerDir } from '../../infra/storage-layout.js';
import { archiveNameText, packManifest, parseManifest, type Manifest } from '../borg/manifest.js';
import { decryptUnchecked, idHash, MANIFEST_ID, verifyChunk } from '../borg/objects.js';
import { packWithTam } from '../borg/tam.js';
import { nowBorgTime } from '../borg/timestamps.js';
import { StorageJobError, type PreparedRestore } from './api.js';
import { openArchive } from './archive-items.js';
import { issueJobCredential } from './credentials.js';
import { IdCollector } from './id-set.js';
import { ensureJobKey, isAuthenticatedJobKey, type JobKeyForm } from './job-key.js';
import { allowedIdsPath, servedArchivePath, writeJobState } from './job-state.js';
import { MAX_PLAINTEXT, type RepositoryHandle } from './repository.js';
import { RestorePathGuard, UnsafeArchivePath } from './restore-safety.js';
import { RestoreSelector } from './restore-selection.js';
import { SegmentReader } from './segment-reader.js';
import type { Upstream } from './upstream.js';
import type { RepositoryService } from './service.js';

/** A restore job with its target client and spec, or StorageJobError. */
async function loadRestoreJob(service: RepositoryService, jobId: string) {
  const { db } = service.deps;
  const job = await findJob(db, jobId);
  if (!job) throw new StorageJobError('JobGone', `job ${jobId} does not exist`);
  if (job.kind !== 'restore') throw new StorageJobError('JobGone', `job ${jobId} is a ${job.kind} job, not a restore`);
  if (!job.restore) throw new StorageJobError('JobGone', `restore job ${jobId} has no restore spec`);
  const client = job.clientId ? await findClientById(db, job.clientId) : undefined;
  if (!client) throw new StorageJobError('JobGone', 'the target client of this restore was removed');
  return { job, client, spec: job.restore };
}

type LiveEntry = { name: string; time: string; id: Buffer; itemKeys: readonly string[] };

function entryIn(manifest: Manifest, spec: RestoreSpec): LiveEntry | undefined {
  for (const [name, a] of manifest.archives) if (a.id.toString('hex') === spec.archiveBorgId) return { name, time: a.time, id: a.id, itemKeys: manifest.itemKeys };
  return undefined;
}

/** A repository read from the segment files, with borg serve as the fallback. */
interface Reads {
  /** The segment files' answer, or undefined when they have none or it does not check out. */
  segment<T>(id: Buffer, open: (stored: Buffer) => Promise<T>): Promise<T | undefined>;
  /** Through borg serve (a hold keeps it open until the job's cleanup, for the session too). */
  upstream<T>(fn: (up: Upstream) => Promise<T>): Promise<T>;
}

/**
 * The archive's entry in the committed manifest (by its id: a rename gives a new id), or
 * StorageJobError. From the segment files' snapshot when it has the archive; otherwise borg
 * serve's word is final (the snapshot may predate the archive if borg did not write its index).
 */
async function liveEntry(repo: RepositoryHandle, spec: RestoreSpec, reads: Reads): Promise<LiveEntry> {
  const found = await reads.segment(MANIFEST_ID, async (o) => entryIn(parseManifest(repo.key, (await decryptUnchecked(repo.key, o, { maxOutput: MAX_PLAINTEXT })).data), spec));
  if (found) return found;
  return reads.upstream(() => {
    const found = entryIn(repo.manifest.parsed, spec);
    if (found) return Promise.resolve(found);
    return Promise.reject(new StorageJobError('ArchiveMissing', `archive ${spec.archiveName} is no longer in repository ${repo.info.name}`));
  });
}

export async function prepareRestore(service: RepositoryService, jobId: string, form: JobKeyForm = 'keyfile'): Promise<PreparedRestore> {
  const loaded = await loadRestoreJob(service, jobId);
  const { job } = loaded;
  const repo = await service.repository(job.repositoryId);
  // Read from the segment files when the repository's index allows it: a restore then starts no
  // `borg serve` at all (its session reads the same way), which cost 0.5–0.8 s before the client's
  // borg could start. Each object falls back to borg serve on its own, when the files have no
  // answer or it does not check out.
  const reader = SegmentReader.open(repo.info.path, service.deps.log);
  const reads: Reads = {
    segment: async (id, open) => {
      const stored = reader?.read(id);
      if (!stored) return undefined;
      try {
        return await open(stored.object);
      } catch (err) {
        service.deps.log.warn({ job: jobId, object: id.toString('hex'), err: (err as Error).message }, 'an object read from a segment file did not check out; asking borg serve');
        return undefined;
      }
    },
    upstream: (fn) => {
      // The borg serve this opens stays open until the job's cleanup (RepositoryHandle.holdFor).
      repo.holdFor(jobId);
      return repo.use(fn);
    },
  };
  try {
    return await prepareFrom(service, loaded, repo, reads, form);
  } finally {
    reader?.close();
  }
}

async function prepareFrom(
  service: RepositoryService,
  { job, client, spec }: Awaited<ReturnType<typeof loadRestoreJob>>,
  repo: RepositoryHandle,
  reads: Reads,
  form: JobKeyForm,
): Promise<PreparedRestore> {
  const { db, config, log, masterKey } = service.deps;
  const jobId = job.id;
  const entry = await liveEntry(repo, spec, reads);
  const dir = jobServerDir(config, jobId);
  const clientDir = jobClientFilesDir(config, jobId);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  // Rebuilt from scratch each round: what the client gets is derived, never patched.
  rmSync(clientDir, { recursive: true, force: true });
  mkdirSync(clientDir, { mode: 0o700 });

  const jobKey = await ensureJobKey(db, masterKey, jobId, repo.key, form);
  // Through borg serve, one object per hold of the repository: a big archive's item stream takes a while to read.
  const read = async (id: Buffer) =>
    (await reads.segment(id, async (o) => ({ plaintext: (await verifyChunk(repo.key, id, o, MAX_PLAINTEXT)).plaintext, csize: o.length }))) ??
    reads.upstream((up) => repo.readObject(up, id));
  const archive = await openArchive(read, repo.key, entry.id);
  const ids = new IdCollector();
  for (const id of archive.meta.items) ids.add(id);
  const selector = new RestoreSelector(spec.paths, spec.stripComponents, ids);
  const guard = new RestorePathGuard();
  try {
    for await (const item of archive.items()) {
      guard.check(item);
      selector.add(item);
    }
  } catch (err) {
    if (err instanceof UnsafeArchivePath) throw new StorageJobError('UnsafeArchive', `archive ${spec.archiveName} is not restored: ${err.message}; it was crafted, not made by borg create`);
    throw err;
  }
  if (selector.missingMasters.size) for await (const item of archive.items()) selector.addMissingMaster(item);
  const unmatched = selector.unmatchedPaths();
  if (unmatched.length) throw new StorageJobError('PathNotInArchive', `path ${unmatched[0]} is not in archive ${spec.archiveName}`);
  const allowed = ids.writeSorted(allowedIdsPath(config, jobId));

  // Archives written before BorgCube re-signed them may carry no TAM (openArchive reads them
  // anyway); the client gets every archive signed with its job key: borg ≥ 1.2.5, 1.4 included,
  // refuses an archive whose TAM is present but invalid (borg 1.4.0 archive.py:474-477 _load_meta,
  // crypto/key.py:296-340 unpack_and_verify_archive).
  const served = packWithTam(jobKey.key, archive.meta.value, 'archive');
  const servedId = idHash(jobKey.key, served);
  writeFileSync(servedArchivePath(config, jobId), served, { mode: 0o600 });
  const manifest = packManifest(jobKey.key, {
    archives: new Map([[entry.name, { id: servedId, time: entry.time }]]),
    // Now, not the real manifest's time, which would tell the client when anyone last wrote.
    timestamp: nowBorgTime(),
    itemKeys: entry.itemKeys.length ? entry.itemKeys : undefined,
  });
  writeJobState(config, jobId, { fakeRepoId: jobKey.row.fakeRepoId, servedManifest: manifest.toString('base64'), idMap: { [servedId.toString('hex')]: entry.id.toString('hex') } });

  // Every job folder has a key file: the worker checks for it to tell a pushed folder (and a
  // hacked client's borg finds the folder through BORG_KEY_FILE). An authenticated job key is a
  // repokey, which borg reads through load_key instead; the proxy answers with this same text.
  writeFileSync(join(clientDir, 'key'), jobKey.keyText, { mode: 0o600 });
  writeFileSync(join(clientDir, 'passphrase'), `${jobKey.passphrase}\n`, { mode: 0o600 });
  writeFileSync(join(clientDir, 'id'), await issueJobCredential(db, jobId, client.id), { mode: 0o600 });

  const { items, files, dirs, nondirs, bytes } = selector.finish();
  const authenticatedKey = isAuthenticatedJobKey(jobKey.key);
  log.info({ job: jobId, archive: spec.archiveName, items, files, dirs, nondirs, bytes, allowed, jobKey: authenticatedKey ? 'authenticated' : 'keyfile' }, 'restore prepared');
  const what = spec.paths.length ? `${spec.paths.length} path(s) of archive ${spec.archiveName}` : `archive ${spec.archiveName}`;
  await appendJobLog(db, jobId, `prepared: restoring ${what}: ${items} items, ${files} files, ${bytes} bytes; the client may read ${allowed + 1} objects`);
  return { archiveName: archiveNameText(entry.name), items, files, dirs, nondirs, bytes, authenticatedKey };
}
