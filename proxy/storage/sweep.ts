// What an ended session leaves behind (sweepPutLog, called by a backup session's close and by the job's cleanup): the objects its job stored that
// no archive references and no other live session claims are deleted — what borg's own rollback
// would have discarded had the transaction not been shared with other sessions.
import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import type { Mutex } from './mutex.js';
import { deleteIfPresent, type Upstream } from './upstream.js';

/** What a sweep needs of its repository (RepositoryHandle). */
export interface SweptRepository {
  readonly commitLock: Mutex;
  readonly chunks: { has(idHex: string): boolean };
  claimedByOthers(idHex: string, exceptJobId: string): boolean;
  commit(up: Upstream): Promise<void>;
}

/** Put-log ids checked and deleted per hold of the commit lock. */
const SWEEP_BATCH = 1024;

/**
 * The put log is read a batch at a time and each batch holds the commit lock only for its own
 * deletes, so another tenant's commit waits for at most one batch, not for the removal of a
 * flood's millions of objects; nor is the whole log held in memory. A batch's deletes are sent in
 * the same turn as its check, so a put of the same id that starts after the check reaches borg
 * serve after the delete. Returns how many objects were deleted.
 */
export async function sweepPutLog(repo: SweptRepository, up: Upstream, putLogPath: string, jobId: string): Promise<number> {
  if (!existsSync(putLogPath)) return 0;
  const fd = openSync(putLogPath, 'r');
  let removed = 0;
  try {
    const buf = Buffer.alloc(32 * SWEEP_BATCH);
    for (let pos = 0; ; ) {
      const n = readSync(fd, buf, 0, buf.length, pos);
      const whole = n - (n % 32);
      if (whole === 0) break;
      pos += whole;
      const batch = new Set<string>();
      for (let o = 0; o < whole; o += 32) batch.add(buf.toString('hex', o, o + 32));
      removed += await repo.commitLock.run(async () => {
        const victims = [...batch].filter((h) => !repo.chunks.has(h) && !repo.claimedByOthers(h, jobId));
        // Some are gone already (the client-id copy of an accepted archive is deleted with the
        // commit that publishes it): only real removals count.
        const gone = await Promise.all(victims.map((h) => deleteIfPresent(up, Buffer.from(h, 'hex'))));
        return gone.filter(Boolean).length;
      });
    }
  } finally {
    closeSync(fd);
  }
  // One commit at the end (it rewrites the repository index); a commit of another session in
  // between has carried the earlier batches' deletes already, which is as good.
  if (removed) await repo.commitLock.run(() => repo.commit(up));
  return removed;
}
