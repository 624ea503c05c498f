// Preparing a restore job (DESIGN.md §3, issue 20 point 4): what its client gets — the job key, a
// fresh SSH credential — and what its read-only session may serve, all in the job's server folder:
//  * the fake manifest, listing only the archive being restored, under the id of that archive
//    object re-signed (TAM) with the job key, so that borg ≥ 1.2.5 verifies it too;
//  * allowed.ids: the archive's items chunks and the data chunks `borg extract` reads for the
//    selected paths (restore-selection.ts), sorted (id-set.ts). Every other object keeps its id:
//    the job key has the repository's id key and chunk seed.
// The selection takes a walk of the archive's items (0.3–0.5 s for 28,000 here, minutes for
// millions). prepareRestoreStart writes the rest, an empty allowed.ids, and leaves the walk
// running in the service while the client's borg starts (Python, SSH, the manifest and the
// archive: ~0.7 s here); the session holds back every other get until the walk has checked each
// item's path and written the full allowed.ids (sessions/restore.ts).
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
import { StorageJobError, type PreparedRestore, type PreparedRestoreStart, type RestoreCounts, type RestoreStart } from './api.js';
import { openArchive, type ArchiveReader } from './archive-items.js';
import { issueJobCredential } from './credentials.js';
import { IdCollector } from './id-set.js';
import { ensureJobKey, isAuthenticatedJobKey, type JobKeyForm } from './job-key.js';
import { allowedIdsPath, readJobState, servedArchivePath, writeJobState } from './job-state.js';
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

type LoadedRestore = Awaited<ReturnType<typeof loadRestoreJob>>;

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

/**
 * Runs `fn` with reads from the segment files (borg serve as the fallback), closed afterwards;
 * `signal` also ends a wait for borg serve (behind a prune or check).
 */
async function withReads<T>(service: RepositoryService, repo: RepositoryHandle, jobId: string, signal: AbortSignal, fn: (reads: Reads) => Promise<T>): Promise<T> {
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
      signal.throwIfAborted();
      repo.holdFor(jobId);
      return repo.use(fn, signal);
    },
  };
  try {
    return await fn(reads);
  } finally {
    reader?.close();
  }
}

/** The repository's archive `archiveId`, its objects read through `reads`. */
function openArchiveFrom(repo: RepositoryHandle, reads: Reads, archiveId: Buffer) {
  // Through borg serve, one object per hold of the repository: a big archive's item stream takes a while to read.
  const read = async (id: Buffer) =>
    (await reads.segment(id, async (o) => ({ plaintext: (await verifyChunk(repo.key, id, o, MAX_PLAINTEXT)).plaintext, csize: o.length }))) ??
    reads.upstream((up) => repo.readObject(up, id));
  return openArchive(read, repo.key, archiveId);
}

/** Everything of the restore, the selection included, before it returns (StorageApi.prepareRestore). */
export function prepareRestore(service: RepositoryService, jobId: string, form: JobKeyForm = 'keyfile'): Promise<PreparedRestore> {
  // A prepare that arrives after the job's cleanup (a cancelled workflow's) prepares nothing; one
  // that runs while the cleanup starts is waited for by it.
  return service.restoreSelections.preparing(jobId, async (signal) => {
    const loaded = await loadRestoreJob(service, jobId);
    const repo = await service.repository(loaded.job.repositoryId);
    await service.restoreSelections.stop(jobId);
    return withReads(service, repo, jobId, signal, async (reads) => {
      const { start, archive } = await prepareServed(service, loaded, repo, reads, form, false);
      return { ...start, ...(await walkSelection(service, loaded, archive, signal)) };
    });
  });
}

/**
 * What the client needs, written before the selection is made; the walk goes on in the service
 * (StorageApi.prepareRestoreStart). A dump restore is prepared whole: its entry must be a single
 * file before anything streams into a database.
 */
export function prepareRestoreStart(service: RepositoryService, jobId: string, form: JobKeyForm = 'keyfile'): Promise<PreparedRestore | PreparedRestoreStart> {
  return service.restoreSelections.preparing(jobId, async (signal) => {
    const loaded = await loadRestoreJob(service, jobId);
    if (loaded.spec.dump) return prepareRestore(service, jobId, form);
    const repo = await service.repository(loaded.job.repositoryId);
    await service.restoreSelections.stop(jobId);
    const { start } = await withReads(service, repo, jobId, signal, (reads) => prepareServed(service, loaded, repo, reads, form, true));
    // Before the credential can reach the client: a session that finds the selection pending waits
    // for this walk; its failure goes to the session and to restoreSelection (the registry keeps it).
    service.restoreSelections.start(jobId, (signal) => selectRestore(service, jobId, signal)).catch(() => {});
    return { ...start, selecting: true as const };
  });
}

/** The counts of the job's selection: from the walk in this service, the job's state, or a walk started now. */
export async function restoreSelection(service: RepositoryService, jobId: string): Promise<RestoreCounts> {
  const running = service.restoreSelections.get(jobId);
  if (running) return running;
  const st = readJobState(service.deps.config, jobId);
  if (!st) throw new StorageJobError('JobGone', `restore job ${jobId} was not prepared on this storage host, or was cleaned up`);
  if (st.selected) return st.selected;
  // The walk was lost with the service that ran it, or failed for a reason that may pass.
  return service.restoreSelections.start(jobId, (signal) => selectRestore(service, jobId, signal));
}

async function selectRestore(service: RepositoryService, jobId: string, signal: AbortSignal): Promise<RestoreCounts> {
  try {
    // A walk chained behind one that was stopped may have been stopped itself meanwhile.
    signal.throwIfAborted();
    const loaded = await loadRestoreJob(service, jobId);
    const repo = await service.repository(loaded.job.repositoryId);
    return await withReads(service, repo, jobId, signal, async (reads) => walkSelection(service, loaded, await openArchiveFrom(repo, reads, Buffer.from(loaded.spec.archiveBorgId, 'hex')), signal));
  } catch (err) {
    if (!signal.aborted) service.deps.log.warn({ job: jobId, err: (err as Error).message }, 'the selection of a restore failed');
    throw err;
  }
}

/**
 * The job's folders, job key, served archive and manifest, credential. The session may serve the
 * manifest and the archive from here on; with `selecting` it holds back every other get until the
 * walk (walkSelection) has replaced allowed.ids.
 */
async function prepareServed(
  service: RepositoryService,
  { job, client, spec }: LoadedRestore,
  repo: RepositoryHandle,
  reads: Reads,
  form: JobKeyForm,
  selecting: boolean,
): Promise<{ start: RestoreStart; archive: ArchiveReader }> {
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
  const archive = await openArchiveFrom(repo, reads, entry.id);

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
  writeJobState(config, jobId, {
    fakeRepoId: jobKey.row.fakeRepoId,
    servedManifest: manifest.toString('base64'),
    idMap: { [servedId.toString('hex')]: entry.id.toString('hex') },
    ...(selecting ? { selecting: true } : {}),
  });
  // Nothing but the manifest and the archive until the walk has checked every item's path
  // (restore-safety.ts): no item of a crafted archive reaches the client before. Right after the
  // state, with no await in between: a session reads both at once (sessions/restore.ts).
  new IdCollector().writeSorted(allowedIdsPath(config, jobId));

  // Every job folder has a key file: the worker checks for it to tell a pushed folder (and a
  // hacked client's borg finds the folder through BORG_KEY_FILE). An authenticated job key is a
  // repokey, which borg reads through load_key instead; the proxy answers with this same text.
  writeFileSync(join(clientDir, 'key'), jobKey.keyText, { mode: 0o600 });
  writeFileSync(join(clientDir, 'passphrase'), `${jobKey.passphrase}\n`, { mode: 0o600 });
  writeFileSync(join(clientDir, 'id'), await issueJobCredential(db, jobId, client.id), { mode: 0o600 });
  const authenticatedKey = isAuthenticatedJobKey(jobKey.key);
  log.info({ job: jobId, archive: spec.archiveName, jobKey: authenticatedKey ? 'authenticated' : 'keyfile', selecting }, 'restore prepared');
  return { start: { archiveName: archiveNameText(entry.name), authenticatedKey }, archive };
}

/**
 * Walks the archive's items for the selected paths: allowed.ids replaced by the items chunks and
 * the selection's data chunks, the counts kept in the job's state. An unsafe path or a path not in
 * the archive fails the walk (StorageJobError); so does `signal` (the job's cleanup, a new round).
 */
async function walkSelection(service: RepositoryService, { job, spec }: LoadedRestore, archive: ArchiveReader, signal: AbortSignal): Promise<RestoreCounts> {
  const { db, config, log } = service.deps;
  const jobId = job.id;
  const ids = new IdCollector();
  for (const id of archive.meta.items) ids.add(id);
  const selector = new RestoreSelector(spec.paths, spec.stripComponents, ids);
  const guard = new RestorePathGuard();
  // The walk runs beside the push of the job's folder to the client, in the same process: the
  // items' walk gives the event loop its turns (archive-items.ts).
  try {
    for await (const item of archive.items()) {
      signal.throwIfAborted();
      guard.check(item);
      selector.add(item);
    }
  } catch (err) {
    if (err instanceof UnsafeArchivePath) throw new StorageJobError('UnsafeArchive', `archive ${spec.archiveName} is not restored: ${err.message}; it was crafted, not made by borg create`);
    throw err;
  }
  if (selector.missingMasters.size) {
    for await (const item of archive.items()) {
      signal.throwIfAborted();
      selector.addMissingMaster(item);
    }
  }
  const unmatched = selector.unmatchedPaths();
  if (unmatched.length) throw new StorageJobError('PathNotInArchive', `path ${unmatched[0]} is not in archive ${spec.archiveName}`);
  signal.throwIfAborted();
  const allowed = ids.writeSorted(allowedIdsPath(config, jobId));
  const { items, files, dirs, nondirs, bytes } = selector.finish();
  const counts = { items, files, dirs, nondirs, bytes };
  const st = readJobState(config, jobId);
  if (!st) throw new StorageJobError('JobGone', `restore job ${jobId} was cleaned up while its selection was made`);
  writeJobState(config, jobId, { ...st, selecting: undefined, selected: counts });
  log.info({ job: jobId, archive: spec.archiveName, items, files, dirs, nondirs, bytes, allowed }, 'restore selection made');
  const what = spec.paths.length ? `${spec.paths.length} path(s) of archive ${spec.archiveName}` : `archive ${spec.archiveName}`;
  // The selection stands without its log line: a session waiting for it must not fail on the log.
  await appendJobLog(db, jobId, `prepared: restoring ${what}: ${items} items, ${files} files, ${bytes} bytes; the client may read ${allowed + 1} objects`).catch((err: Error) =>
    log.warn({ job: jobId, err: err.message }, 'could not write to the job log'),
  );
  return counts;
}
