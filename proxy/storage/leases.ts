// The control socket: `borgcube borg` (lease-client.ts) asks for a repository's lock. The service
// lets running sessions finish, closes its borg serve and holds new sessions back until the
// requester closes the connection.
import type { Socket } from 'node:net';
import { FrameDecoder, frameBytes } from '../protocol/frames.js';
import type { RepositoryHandle } from './repository.js';

export function serveLeases(sock: Socket, repository: (id: string) => Promise<RepositoryHandle>): void {
  const decoder = new FrameDecoder(64 * 1024);
  sock.on('error', () => {});
  let release: (() => void) | undefined;
  // A requester that goes away while it waits leaves the queue (see RepositoryHandle.exclusive).
  const gone = new AbortController();
  sock.on('close', () => {
    gone.abort();
    release?.();
  });
  sock.on('data', (chunk: Buffer) => {
    let frames;
    try {
      frames = decoder.push(chunk);
    } catch {
      sock.destroy();
      return;
    }
    for (const f of frames) {
      const h = f.header as { t?: unknown; repositoryId?: unknown };
      if (h.t !== 'lease' || typeof h.repositoryId !== 'string' || release) {
        sock.destroy();
        return;
      }
      const held = () =>
        new Promise<void>((resolve) => {
          release = resolve;
          if (sock.destroyed) resolve();
          else sock.write(frameBytes({ t: 'granted' }));
        });
      void repository(h.repositoryId).then(
        (repo) => repo.exclusive(held, gone.signal).catch(() => sock.destroy()),
        (err: Error) => sock.end(frameBytes({ t: 'error', message: err.message })),
      );
    }
  });
}
