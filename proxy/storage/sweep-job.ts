// Undoing what a job stored and no archive references (its put log), after its session or job ended.
import { existsSync, readFileSync } from 'node:fs';
import type { RepositoryHandle } from './repository.js';
import { deleteIfPresent, type Upstream } from './upstream.js';

/**
 * Deletes the objects a job stored (its put log) that no archive references and no other live
 * session claims — what borg's own rollback would have discarded had the transaction not been
 * shared with other sessions. Returns how many were deleted.
 */
export async function sweepJob(repo: RepositoryHandle, up: Upstream, putLogPath: string, jobId: string): Promise<number> {
  if (!existsSync(putLogPath)) return 0;
  const raw = readFileSync(putLogPath);
  const ids = new Set<string>();
  for (let o = 0; o + 32 <= raw.length; o += 32) ids.add(raw.toString('hex', o, o + 32));
  return repo.commitLock.run(async () => {
    const victims = [...ids].filter((h) => !repo.chunks.has(h) && !repo.claimedByOthers(h, jobId));
    // Some are gone already (the client-id copy of an accepted archive is deleted with the
    // commit that publishes it): only real removals are counted and need a commit, which
    // rewrites the repository index and holds up every other writer meanwhile.
    let removed = 0;
    for (const h of victims) {
      if (await deleteIfPresent(up, Buffer.from(h, 'hex'))) removed++;
    }
    if (removed) await repo.commit(up);
    return removed;
  });
}
