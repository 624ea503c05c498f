// Job-key counters (BORG_PROTOCOL.md §9.3): answered here from the job key's row, never forwarded
// to borg serve. Calls for one job are serialized, so a reservation and an allocation never race.
import type { Db } from '../../db/client.js';
import { jobKeyNextNonce, setJobKeyNextNonce } from '../../db/queries/job-keys.js';
import type { ProxyRequest } from '../protocol/requests.js';
import { SessionError } from './sessions/errors.js';

export class JobNonces {
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(private readonly db: Db) {}

  /** Reserves `blocks` counter values for an object the service encrypts with the job key. */
  allocate(jobId: string, blocks: bigint): Promise<bigint> {
    return this.serialize(jobId, async () => {
      const n = await this.current(jobId);
      await setJobKeyNextNonce(this.db, jobId, n + blocks);
      return n;
    });
  }

  /** The client's get_free_nonce / commit_nonce_reservation. */
  answer(jobId: string, req: Extract<ProxyRequest, { t: 'nonce' }>): Promise<{ int: string } | null> {
    return this.serialize(jobId, async () => {
      const n = await this.current(jobId);
      if (req.op === 'get') return { int: n.toString() };
      if (req.next === undefined) throw new SessionError('TypeError', 'commit_nonce_reservation without next_unreserved');
      // RepositoryServer.commit_nonce_reservation: the caller must have seen the current value.
      if (req.start != null && BigInt(req.start) !== n) throw new SessionError('Exception', 'nonce space reservation with mismatched previous state');
      const next = BigInt(req.next);
      if (next < n) throw new SessionError('Exception', 'nonce reservation goes backwards');
      await setJobKeyNextNonce(this.db, jobId, next);
      return null;
    });
  }

  private async current(jobId: string): Promise<bigint> {
    const n = await jobKeyNextNonce(this.db, jobId);
    if (n === undefined) throw new SessionError('Exception', 'job key is gone');
    return n;
  }

  private serialize<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    this.locks.set(key, next.catch(() => {}));
    return next;
  }
}
