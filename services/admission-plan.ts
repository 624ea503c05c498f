// Which queued backups of one storage host may start now, and in which order the rest wait: pure
// logic, so that the fair order is tested without a database (services/admission.ts applies it
// under the host's lock). See README "Concurrency limits and queueing".

/** A backup waiting for a slot. */
export interface QueuedBackup {
  id: string;
  clientId: string | null;
  repositoryId: string;
  createdAt: Date;
}

/** Everything the plan needs about one storage host, read in one transaction. */
export interface HostQueueState {
  /** Backups that may run at once on the host. */
  hostLimit: number;
  /** Each repository's limit (its override or the server default). */
  repositoryLimit(repositoryId: string): number;
  /** Running backups on the host, per repository. */
  runningPerRepository: ReadonlyMap<string, number>;
  queued: readonly QueuedBackup[];
  /** When each queued job's client last had a backup admitted (null = never). */
  lastAdmittedAt: ReadonlyMap<string, Date | null>;
}

/**
 * The order queued backups are considered in: round robin over clients, not first come first
 * served. A client's n-th queued job comes after every other client's (n-1)-th; among clients at
 * the same depth, the one whose last backup was admitted longest ago (or never) goes first, so a
 * client whose many policies keep it busy cannot take turns from clients that rarely back up.
 * Creation time and id break ties, which keeps the order total and stable across calls.
 */
export function fairOrder(queued: readonly QueuedBackup[], lastAdmittedAt: ReadonlyMap<string, Date | null>): QueuedBackup[] {
  const byAge = [...queued].sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || cmp(a.id, b.id));
  const depth = new Map<string, number>();
  const seen = new Map<string, number>();
  for (const q of byAge) {
    const key = q.clientId ?? `job:${q.id}`;
    const n = seen.get(key) ?? 0;
    seen.set(key, n + 1);
    depth.set(q.id, n);
  }
  const last = (q: QueuedBackup) => (q.clientId ? (lastAdmittedAt.get(q.clientId)?.getTime() ?? -Infinity) : -Infinity);
  return byAge.sort((a, b) => depth.get(a.id)! - depth.get(b.id)! || last(a) - last(b) || a.createdAt.getTime() - b.createdAt.getTime() || cmp(a.id, b.id));
}

export interface AdmissionPlan {
  /** Jobs to start now, in fair order. */
  admit: string[];
  /** The others' places in the queue, from 1 (next to be considered). */
  positions: Map<string, number>;
}

/**
 * Walks the queue in fair order and admits every job whose host and repository both have a free
 * slot. A job whose repository is full is passed over, not waited for: it would otherwise hold
 * up jobs of other repositories on the same host (head-of-line blocking).
 */
export function planAdmissions(s: HostQueueState): AdmissionPlan {
  let hostRunning = 0;
  for (const n of s.runningPerRepository.values()) hostRunning += n;
  const running = new Map(s.runningPerRepository);
  const admit: string[] = [];
  const positions = new Map<string, number>();
  for (const q of fairOrder(s.queued, s.lastAdmittedAt)) {
    const inRepo = running.get(q.repositoryId) ?? 0;
    if (hostRunning < s.hostLimit && inRepo < s.repositoryLimit(q.repositoryId)) {
      admit.push(q.id);
      running.set(q.repositoryId, inRepo + 1);
      hostRunning++;
    } else {
      positions.set(q.id, positions.size + 1);
    }
  }
  return { admit, positions };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
