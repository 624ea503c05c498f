// Leases on the control socket: `borgcube borg` (lease-client.ts) asks for a repository's lock.
// The service lets running sessions finish, closes its borg serve and holds new sessions back
// until the requester closes the connection.
import type { Socket } from 'node:net';
import { frameBytes } from '../protocol/frames.js';
import type { RepositoryHandle } from './repository.js';

export function grantLease(sock: Socket, repositoryId: string, repository: (id: string) => Promise<RepositoryHandle>): void {
  let release: (() => void) | undefined;
  // A requester that goes away while it waits leaves the queue (see RepositoryHandle.exclusive).
  const gone = new AbortController();
  sock.on('close', () => {
    gone.abort();
    release?.();
  });
  const held = () =>
    new Promise<void>((resolve) => {
      release = resolve;
      if (sock.destroyed) resolve();
      else sock.write(frameBytes({ t: 'granted' }));
    });
  void repository(repositoryId).then(
    (repo) => repo.exclusive(held, gone.signal).catch(() => sock.destroy()),
    (err: Error) => sock.end(frameBytes({ t: 'error', message: err.message })),
  );
}
