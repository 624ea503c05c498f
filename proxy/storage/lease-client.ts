// Client side of the repository service's control socket: `borgcube borg` asks for the
// repository's lock (the service lets running sessions finish, closes its borg serve, and holds
// new sessions back) and gives it back by closing the connection.
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { FrameDecoder, encodeFrame } from '../protocol/frames.js';

export interface Lease {
  release(): void;
}

/**
 * Resolves once the repository is free for a borg command of the server. Without a running
 * repository service (no socket, or nobody listening) there is nothing to coordinate with.
 */
export function acquireRepositoryLease(socketPath: string, repositoryId: string, opts: { onWaiting?: () => void; timeoutMs?: number; signal?: AbortSignal } = {}): Promise<Lease> {
  const none: Lease = { release: () => {} };
  if (!existsSync(socketPath)) return Promise.resolve(none);
  if (opts.signal?.aborted) return Promise.reject(new Error('gave up waiting for the repository'));
  return new Promise((resolve, reject) => {
    const sock = connect(socketPath);
    const decoder = new FrameDecoder(64 * 1024);
    let settled = false;
    const waiting = setTimeout(() => opts.onWaiting?.(), 1500);
    const timeout = setTimeout(() => done(new Error('timed out waiting for the repository to become free')), opts.timeoutMs ?? 30 * 60_000);
    // Giving up closes the connection: the service then drops this request from its queue.
    const onAbort = () => done(new Error('gave up waiting for the repository'));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const done = (err?: Error, lease?: Lease) => {
      if (settled) return;
      settled = true;
      clearTimeout(waiting);
      clearTimeout(timeout);
      opts.signal?.removeEventListener('abort', onAbort);
      if (err) {
        sock.destroy();
        reject(err);
      } else resolve(lease!);
    };
    sock.on('connect', () => {
      for (const p of encodeFrame({ t: 'lease', repositoryId })) sock.write(p);
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED' || err.code === 'ENOENT') done(undefined, none);
      else done(err);
    });
    sock.on('close', () => done(new Error('the repository service closed the connection')));
    sock.on('data', (chunk: Buffer) => {
      try {
        for (const f of decoder.push(chunk)) {
          const h = f.header as { t?: string; message?: string };
          if (h.t === 'granted') done(undefined, { release: () => sock.end() });
          else done(new Error(h.message ?? 'the repository service refused the lease'));
        }
      } catch (err) {
        done(err as Error);
      }
    });
  });
}
