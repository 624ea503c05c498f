// A job's server folder (infra/storage-layout.ts jobServerDir): state.json (what the client was
// served, kept across sessions and rounds), handed.idx (the objects it may reference without
// uploading them) and puts.log (every id it stored, so a failed job's leftovers can be found).
// A restore's folder has, instead of the last two, allowed.ids (the objects its session may
// serve, id-set.ts) and archive.served (the archive object re-signed with the job key).
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../../infra/config.js';
import { jobServerDir } from '../../infra/storage-layout.js';
import type { RestoreCounts } from './api.js';

/** The persistent part of a job's context. */
export interface JobStateFile {
  fakeRepoId: string;
  /** The manifest plaintext the client is served, base64. */
  servedManifest: string;
  /** Archive ids as the client knows them → ids in the real repository. */
  idMap: Record<string, string>;
  /** A restore whose selection is still walked (prepare-restore.ts): its session holds back gets beyond the manifest and the archive. */
  selecting?: boolean;
  /** A restore's selection, once made. */
  selected?: RestoreCounts;
}

export const handedPath = (config: Config, jobId: string) => join(jobServerDir(config, jobId), 'handed.idx');
export const putLogPath = (config: Config, jobId: string) => join(jobServerDir(config, jobId), 'puts.log');
export const allowedIdsPath = (config: Config, jobId: string) => join(jobServerDir(config, jobId), 'allowed.ids');
export const servedArchivePath = (config: Config, jobId: string) => join(jobServerDir(config, jobId), 'archive.served');

export function readJobState(config: Config, jobId: string): JobStateFile | undefined {
  const p = join(jobServerDir(config, jobId), 'state.json');
  if (!existsSync(p)) return undefined;
  return JSON.parse(readFileSync(p, 'utf8')) as JobStateFile;
}

/** Replaced atomically: a crash leaves the old state or the new one. */
export function writeJobState(config: Config, jobId: string, st: JobStateFile): void {
  const p = join(jobServerDir(config, jobId), 'state.json');
  writeFileSync(`${p}.tmp`, JSON.stringify(st), { mode: 0o600 });
  renameSync(`${p}.tmp`, p);
}
