// What a backup session knows of its job: the reserved archive name, the job key, the objects the
// client may reference without uploading them, and what it was served (from the job's state file).
import { existsSync, readFileSync } from 'node:fs';
import type { BorgKey } from '../../borg/keys.js';
import type { RefEntry } from '../archive-refs.js';
import { decodeRefs, type RefMap } from '../chunk-store.js';
import { handedPath, putLogPath } from '../job-state.js';
import type { SessionOpening } from './policy.js';

/** What the service prepared for and remembers about a job (persisted in the job's state file). */
export interface JobContext {
  jobId: string;
  clientId: string;
  repositoryId: string;
  /** Reserved archive name as a binary string (latin1 of the UTF-8 bytes), as manifests key it. */
  archiveName: string;
  jobKey: BorgKey;
  /** Objects this client may reference without uploading them (its dedup scope). */
  handed: RefMap;
  /** The manifest plaintext the client is served (byte-identical each time: its cache matches it). */
  servedManifest: Buffer;
  /** Archive ids as the client knows them → ids in the real repository (re-signed copies). */
  idMap: Map<string, string>;
  /** Put ids are appended here before any commit, so leftovers of a failed job can be found. */
  putLogPath: string;
}

const checkpointSuffix = /^\.checkpoint(\.\d+)?$/;

/** Names this job may create: its archive and that archive's checkpoints (BORG_PROTOCOL.md §5.4). */
export function isOwnName(ctx: Pick<JobContext, 'archiveName'>, name: string): boolean {
  return name === ctx.archiveName || (name.startsWith(ctx.archiveName) && checkpointSuffix.test(name.slice(ctx.archiveName.length)));
}

export function isCheckpointName(ctx: Pick<JobContext, 'archiveName'>, name: string): boolean {
  return name !== ctx.archiveName && isOwnName(ctx, name);
}

/** An archive name for messages (binary string → text, control characters escaped). */
export function show(name: string): string {
  return JSON.stringify(Buffer.from(name, 'latin1').toString('utf8'));
}

/** The context of a backup job being attached (its row was checked by backupPolicy.refuses). */
export function loadBackupContext({ job, jobKey, state, config, repo }: SessionOpening): JobContext {
  const handed = handedPath(config, job.id);
  const ctx: JobContext = {
    jobId: job.id,
    clientId: job.clientId!,
    repositoryId: job.repositoryId,
    archiveName: Buffer.from(job.archiveName!, 'utf8').toString('latin1'),
    jobKey: jobKey.key,
    handed: existsSync(handed) ? decodeRefs(readFileSync(handed)) : new Map<string, RefEntry>(),
    servedManifest: Buffer.from(state.servedManifest, 'base64'),
    idMap: new Map(Object.entries(state.idMap)),
    putLogPath: putLogPath(config, job.id),
  };
  // Archives this job already committed (checkpoints of an earlier borg run) are the client's
  // own: its cache knows their chunks, so it may reference them without uploading them again.
  for (const realHex of ctx.idMap.values()) {
    for (const [h, e] of repo.chunks.readArchiveIndex(realHex) ?? []) if (!ctx.handed.has(h)) ctx.handed.set(h, e);
  }
  return ctx;
}
