// Idle SSH connections to clients, kept a little while for the next activity of the same job.
// A backup opens the client three times (push, run, cleanup); the SSH handshake alone costs
// ~0.2 s on loopback, most of a small job's fixed cost. Each connection serves one activity at a
// time (sshd limits sessions per connection, and an activity that failed may leave channels in
// any state: such a connection is closed, never returned).
import type { SshConnection } from './ssh.js';

interface Idle {
  conn: SshConnection;
  timer: NodeJS.Timeout;
}

export class SshPool {
  private readonly idle = new Map<string, Idle[]>();
  /** Connections being opened ahead of need (open), by key. */
  private readonly opening = new Map<string, Promise<SshConnection | undefined>>();
  /** After closeAll (shutdown): nothing is kept or opened any more. */
  private closed = false;

  constructor(
    private readonly idleMs = 30_000,
    private readonly maxIdlePerKey = 4,
  ) {}

  /** An idle, still open connection for `key`, or undefined. */
  take(key: string): SshConnection | undefined {
    const list = this.idle.get(key);
    let found: SshConnection | undefined;
    while (list?.length && !found) {
      const e = list.pop()!;
      clearTimeout(e.timer);
      if (!e.conn.isClosed) found = e.conn;
    }
    if (list && !list.length) this.idle.delete(key);
    return found;
  }

  /**
   * An idle connection for `key`, else the one being opened for it ahead of need (waited for
   * until `signal` aborts; one that arrives later goes idle), else undefined.
   */
  async claim(key: string, signal?: AbortSignal): Promise<SshConnection | undefined> {
    const kept = this.take(key);
    if (kept) return kept;
    const pending = this.opening.get(key);
    if (!pending || signal?.aborted) return undefined;
    this.opening.delete(key);
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<'aborted'>((resolve) => {
      onAbort = () => resolve('aborted');
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    try {
      const conn = await Promise.race([pending, aborted]);
      if (conn === 'aborted') {
        void pending.then((late) => late && this.give(key, late));
        return undefined;
      }
      return conn && !conn.isClosed ? conn : undefined;
    } finally {
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Opens a connection for `key` ahead of need (the next job step's), unless one is idle or being
   * opened: the next claim waits for it instead of opening its own; unclaimed, it goes idle like
   * one given back. `open` settles to undefined when it failed (the step then connects itself and
   * reports why).
   */
  open(key: string, open: () => Promise<SshConnection | undefined>): void {
    if (this.closed || this.opening.has(key) || this.idle.get(key)?.some((e) => !e.conn.isClosed)) return;
    const p = Promise.resolve()
      .then(open)
      .catch(() => undefined);
    this.opening.set(key, p);
    void p.then((conn) => {
      if (this.opening.get(key) !== p) return;
      this.opening.delete(key);
      if (conn) this.give(key, conn);
    });
  }

  /** Keeps a healthy connection for reuse; closes it when the pool is full or after idleMs. */
  give(key: string, conn: SshConnection): void {
    if (conn.isClosed) return;
    const list = this.idle.get(key) ?? [];
    if (this.closed || list.length >= this.maxIdlePerKey) {
      conn.close();
      return;
    }
    const entry: Idle = {
      conn,
      timer: setTimeout(() => {
        const l = this.idle.get(key);
        const i = l?.indexOf(entry) ?? -1;
        if (l && i !== -1) l.splice(i, 1);
        if (l && !l.length) this.idle.delete(key);
        conn.close();
      }, this.idleMs),
    };
    entry.timer.unref();
    list.push(entry);
    this.idle.set(key, list);
  }

  get size(): number {
    let n = 0;
    for (const l of this.idle.values()) n += l.length;
    return n;
  }

  closeAll(): void {
    this.closed = true;
    for (const list of this.idle.values()) {
      for (const e of list) {
        clearTimeout(e.timer);
        e.conn.close();
      }
    }
    this.idle.clear();
    for (const p of this.opening.values()) void p.then((conn) => conn?.close());
    this.opening.clear();
  }
}
