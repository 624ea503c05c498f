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

  /** Keeps a healthy connection for reuse; closes it when the pool is full or after idleMs. */
  give(key: string, conn: SshConnection): void {
    if (conn.isClosed) return;
    const list = this.idle.get(key) ?? [];
    if (list.length >= this.maxIdlePerKey) {
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
    for (const list of this.idle.values()) {
      for (const e of list) {
        clearTimeout(e.timer);
        e.conn.close();
      }
    }
    this.idle.clear();
  }
}
