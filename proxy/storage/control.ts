// The repository service's control socket (0600, the storage account; root's web and CLI reach
// it, the proxy account never does): one request per connection, its first frame says which —
// a lease (leases.ts) or a catalog request (catalog/serve.ts), validated with zod here.
import type { Socket } from 'node:net';
import type { Logger } from '../../infra/logger.js';
import { FrameDecoder } from '../protocol/frames.js';
import type { Catalog } from './catalog/catalog.js';
import { catalogRequest } from './catalog/messages.js';
import { serveCatalog } from './catalog/serve.js';
import { grantLease } from './leases.js';
import type { RepositoryHandle } from './repository.js';

export interface ControlDeps {
  log: Logger;
  repository(id: string): Promise<RepositoryHandle>;
  catalog: Catalog;
}

export function serveControl(sock: Socket, deps: ControlDeps): void {
  const decoder = new FrameDecoder(1024 * 1024);
  let first = true;
  sock.on('error', () => {});
  sock.on('data', (chunk: Buffer) => {
    let frames;
    try {
      frames = decoder.push(chunk);
    } catch {
      sock.destroy();
      return;
    }
    for (const f of frames) {
      // A second frame on a connection is not part of any request.
      if (!first) {
        sock.destroy();
        return;
      }
      first = false;
      const h = f.header as { t?: unknown; repositoryId?: unknown };
      if (h.t === 'lease' && typeof h.repositoryId === 'string') {
        grantLease(sock, h.repositoryId, (id) => deps.repository(id));
        continue;
      }
      const req = catalogRequest.safeParse(f.header);
      if (!req.success) {
        deps.log.warn({ issues: req.error.issues.slice(0, 3).map((i) => `${i.path.join('.')}: ${i.message}`) }, 'malformed control request');
        sock.destroy();
        return;
      }
      void serveCatalog(sock, req.data, deps.catalog, deps.log);
    }
  });
}
