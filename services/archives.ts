// Archives of a repository: what BorgCube recorded (PostgreSQL), and a live listing read on the
// server with the real key (`borg list --json` through runAdminBorg, so it waits for the
// repository service's lease like every server-side borg run). Archive names come from the
// server, but everything here is still shown as data, never interpreted.
import { z } from 'zod';
import * as archivesQ from '../db/queries/archives.js';
import type { ServiceDeps } from './deps.js';
import { failed, invalid, notFound, unavailable } from './errors.js';
import { getClient } from './clients.js';
import { getRepository, runAdminBorg } from './repositories.js';

export type { ArchiveDetail } from '../db/queries/archives.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The live archive an operator names: its id, or its name (unique per repository; `repository`
 * picks one when several repositories hold an archive of that name).
 */
export async function resolveArchive(deps: Pick<ServiceDeps, 'db'>, ref: string, repository?: string): Promise<archivesQ.ArchiveDetail> {
  if (UUID.test(ref)) {
    const a = await archivesQ.findLiveArchiveById(deps.db, ref.toLowerCase());
    if (a && (!repository || a.repositoryName === repository)) return a;
  }
  let found = await archivesQ.findLiveArchivesByName(deps.db, ref);
  if (repository) {
    await getRepository(deps, repository);
    found = found.filter((a) => a.repositoryName === repository);
  }
  if (found.length > 1) throw invalid(`archive ${JSON.stringify(ref)} exists in several repositories (${found.map((a) => a.repositoryName).join(', ')}); name one with --repo`);
  if (!found[0]) throw notFound('archive', ref);
  return found[0];
}

/** A client's live archives, newest first (optionally of one repository). */
export async function listClientArchives(deps: Pick<ServiceDeps, 'db'>, client: string, repository?: string, limit = 1000): Promise<archivesQ.ArchiveDetail[]> {
  const c = await getClient(deps, client);
  const repo = repository ? await getRepository(deps, repository) : undefined;
  return archivesQ.listClientArchives(deps.db, c.id, repo?.id, limit);
}

export async function listArchives(deps: Pick<ServiceDeps, 'db'>, repository: string, limit = 1000) {
  const repo = await getRepository(deps, repository);
  return archivesQ.listLiveArchives(deps.db, repo.id, limit);
}

/** `borg list --json` (BORG_PROTOCOL.md §8): only the fields we show. */
const borgListOutput = z.object({
  archives: z
    .array(z.object({ name: z.string(), id: z.string().regex(/^[0-9a-f]{64}$/), start: z.string(), time: z.string().optional() }))
    .max(100_000),
});

export interface LiveArchive {
  name: string;
  id: string;
  /** Borg's local-time ISO string without zone, as `borg list --json` prints it. */
  start: string;
  /** From BorgCube's records when it knows the archive. */
  originalSize: number | null;
  deduplicatedSize: number | null;
  nfiles: number | null;
  known: boolean;
}

const maxListingBytes = 32 << 20;

/** Lists the repository's archives with the real key; bounded in output and time. */
export async function listArchivesLive(deps: ServiceDeps, repository: string, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<LiveArchive[]> {
  const repo = await getRepository(deps, repository);
  const timeout = AbortSignal.timeout(opts.timeoutMs ?? 60_000);
  const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
  const out: Buffer[] = [];
  let outBytes = 0;
  let err = '';
  let tooBig = false;
  const code = await runAdminBorg(deps, repo.name, ['list', '--json'], {
    signal,
    onStdout: (c) => {
      outBytes += c.length;
      if (outBytes > maxListingBytes) tooBig = true;
      else out.push(c);
    },
    onStderr: (c) => {
      if (err.length < 4096) err += c.toString('utf8');
    },
  });
  if (timeout.aborted) throw unavailable('listing the archives took too long; try again when the repository is less busy');
  if (tooBig) throw failed('the archive listing is larger than 32 MiB');
  if (code !== 0) throw failed(`borg list failed: ${err.split('\n').find((l) => l.trim() && !l.startsWith('borgcube:'))?.slice(0, 300) ?? `exit ${code}`}`);
  let parsed: z.infer<typeof borgListOutput>;
  try {
    parsed = borgListOutput.parse(JSON.parse(Buffer.concat(out).toString('utf8')));
  } catch {
    throw failed('borg list printed something that is not its JSON listing');
  }
  const known = new Map((await archivesQ.listLiveArchives(deps.db, repo.id, 100_000)).map((a) => [a.borgId, a]));
  return parsed.archives
    .map((a) => {
      const k = known.get(a.id);
      return { name: a.name, id: a.id, start: a.start, originalSize: k?.originalSize ?? null, deduplicatedSize: k?.deduplicatedSize ?? null, nfiles: k?.nfiles ?? null, known: Boolean(k) };
    })
    .reverse();
}
