// The repository service's public API (DESIGN.md §6): the only file of proxy/storage/ that
// activities/ and services/ may import (lint enforces it). Types and the control-socket clients
// (leases, catalog) only, so that importing it pulls nothing of the service into the web or CLI
// process; the worker wires the implementation (storage-api.ts).
import type { JobStats } from '../../db/schema.js';
import type { StorageLayoutConfig } from '../../infra/storage-layout.js';
import type { RepairOutcome, RepairTarget } from './repair.js';
import type { JobKeyForm } from './job-key.js';

export { acquireRepositoryLease, type Lease } from './lease-client.js';
export { catalogFind, catalogList, catalogStat, catalogTar, CatalogRequestError, MAX_FIND, MAX_PAGE, MAX_TAR_PATHS, type CatalogArchiveRef, type CatalogEntryType, type CatalogItem } from './catalog-client.js';

export type { RepairOutcome, RepairTarget };

/**
 * `borgcube repo repair`'s storage side (repair.ts): loaded when called, so that the web and CLI
 * processes do not load the repository code for it.
 */
export async function repairRepositoryStorage(t: RepairTarget & StorageLayoutConfig, repair: () => Promise<number>): Promise<RepairOutcome> {
  const m = await import('./repair.js');
  return m.repairRepositoryStorage(t, repair);
}

/** How borg reports a write that failed with ENOSPC (the OSError it passes on, or its text). */
export const enospcPattern = /\[Errno 28\]|No space left on device/;

/**
 * The line a job fails with when the repository's disk is full — a backup's `borg serve`, a
 * prune's or compact's commit, a check's lock: where, what borg or the kernel said, what to do.
 */
export function diskFullMessage(storageHost: string, detail: string): string {
  return `the repository's disk on storage host ${storageHost} is full: ${detail}; free space and run the job again`;
}

/**
 * A job the storage side cannot work on (gone, not of the kind asked for, its archive missing, a
 * restore path not in its archive): not retryable.
 */
export class StorageJobError extends Error {
  override name = 'StorageJobError';
  constructor(
    readonly type: 'JobGone' | 'ArchiveMissing' | 'PathNotInArchive' | 'UnsafeArchive',
    message: string,
  ) {
    super(message);
  }
}

export interface PreparedJob {
  archiveName: string;
  /** Objects the client may reference without uploading them. */
  handedObjects: number;
}

/**
 * What borg extract will restore: items selected, regular files among them (hard links included),
 * the distinct paths of its directories and of everything else (restore-selection.ts), and bytes
 * as its progress total counts them (file contents, symlink targets).
 */
export interface RestoreCounts {
  items: number;
  files: number;
  dirs: number;
  nondirs: number;
  bytes: number;
}

/** What the client's side of a restore needs before borg starts. */
export interface RestoreStart {
  /** The archive name the client's borg names after `::` (the archive being restored). */
  archiveName: string;
  /**
   * The job key is `authenticated` (job-key.ts): the client's script must let borg read it.
   * Absent from a storage host that predates them (a key file).
   */
  authenticatedKey?: boolean;
}

export interface PreparedRestore extends RestoreStart, RestoreCounts {}

/**
 * prepareRestore asked to select later: everything the client needs is written, while the
 * archive's items are still walked for the selection (restoreSelection gives its counts).
 */
export interface PreparedRestoreStart extends RestoreStart {
  selecting: true;
}

export interface StorageApi {
  /**
   * Everything a backup's client gets, written to the job's server folder: the job key, the
   * manifest it is served, its Borg cache (BORG_PROTOCOL.md §6.6) and a fresh SSH credential.
   */
  prepareJob(jobId: string): Promise<PreparedJob>;
  /**
   * Everything a restore's client gets and its read-only session may serve, in the job's server
   * folder: the job key, a manifest listing only the archive restored, the ids of the objects
   * `borg extract` reads for the selected paths, and a fresh SSH credential. No Borg cache.
   * The job key is a key file unless `form` asks for `authenticated` (job-key.ts).
   */
  prepareRestore(jobId: string, form?: JobKeyForm): Promise<PreparedRestore>;
  /**
   * The same, returning before the selection is made: the archive's items are walked in the
   * service meanwhile, so that the client's borg starts while they are. The session serves the
   * manifest and the archive at once, and holds back other gets until the walk is done. A dump
   * restore (its entry checked first) is prepared whole.
   */
  prepareRestoreStart(jobId: string, form?: JobKeyForm): Promise<PreparedRestore | PreparedRestoreStart>;
  /** The counts of a restore's selection once its walk is done (started again after a restart of the service). */
  restoreSelection(jobId: string): Promise<RestoreCounts>;
  /** The archive is in the real manifest under its reserved name: record it, drop checkpoints. */
  finalizeJob(jobId: string): Promise<{ stats: JobStats }>;
  /** The job's credential stops opening sessions, and its live sessions end. */
  revokeJob(jobId: string): Promise<void>;
  /**
   * After any job: what it stored that no archive references is removed (a job that ended in a
   * violation loses its archives too), its files cache kept if it succeeded, its folder and key
   * deleted. `progress` is called once the repository work is done (heartbeats).
   */
  cleanupJob(jobId: string, succeeded: boolean, progress?: () => void): Promise<{ removedObjects: number }>;
  /**
   * The repository to itself for `fn` (server-side borg: prune, compact, check). While it waits
   * for running sessions to end it holds back new ones; `signal` leaves the queue at once.
   */
  exclusive<T>(repositoryId: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T>;
  /** Reloads the committed manifest, records the repository's figures, returns its archive ids. */
  refreshRepository(repositoryId: string): Promise<{ liveArchiveIds: Set<string> }>;
}
