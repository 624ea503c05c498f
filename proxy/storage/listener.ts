// The repository service's two Unix sockets: the storage socket, shared by the forced commands
// and the AuthorizedKeysCommand (group of the proxy account), and the control socket for leases
// (the storage account only).
import { chmodSync, chownSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import type { Config } from '../../infra/config.js';
import type { Logger } from '../../infra/logger.js';
import { FrameDecoder, frameBytes, type FrameError } from '../protocol/frames.js';
import { authorizedKeysRequest } from '../protocol/requests.js';

export interface ListenerHandlers {
  config: Config;
  log: Logger;
  /** Group that may connect to the storage socket (the proxy account's group). */
  proxyGid?: number;
  authorizedKeys(user: string, fingerprint: string): Promise<string[]>;
  /** A forced command's connection, from its first frame on. */
  connection(sock: Socket): { readonly opened: boolean; onFrame(header: unknown, payload: Buffer, owned: boolean): void; onClose(): Promise<void> };
  control(sock: Socket): void;
}

export async function listen(h: ListenerHandlers): Promise<Server[]> {
  const { paths } = h.config;
  mkdirSync(paths.runDir, { recursive: true });
  const servers = [await listenOn(paths.storageSocket, 0o660, (sock) => onStorageConnection(h, sock))];
  // The run folder is setgid to the proxy account's group, so the socket is born in that group;
  // otherwise only root could hand it over.
  const gid = h.proxyGid;
  if (gid !== undefined && statSync(paths.storageSocket).gid !== gid) {
    try {
      chownSync(paths.storageSocket, process.getuid!(), gid);
    } catch {
      throw new Error(`${paths.storageSocket} must belong to the proxy account's group: make ${paths.runDir} group-owned by it with the setgid bit (chmod 2750)`);
    }
  }
  servers.push(await listenOn(paths.controlSocket, 0o600, (sock) => h.control(sock)));
  return servers;
}

function listenOn(path: string, mode: number, onConn: (s: Socket) => void): Promise<Server> {
  rmSync(path, { force: true });
  const server = createServer(onConn);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      chmodSync(path, mode);
      resolve(server);
    });
  });
}

/** The first frame tells an AuthorizedKeysCommand question from a forced command's session. */
function onStorageConnection(h: ListenerHandlers, sock: Socket): void {
  const decoder = new FrameDecoder();
  let conn: ReturnType<ListenerHandlers['connection']> | undefined;
  let first = true;
  // A connection that never opens its job holds nothing, but it is not kept either: closed after
  // the timeout, it cannot outlive its job (the forced command then ends, and with it the SSH
  // session).
  const openTimer = setTimeout(() => {
    if (conn?.opened) return;
    h.log.info('a proxy connection did not open a job in time: closed');
    sock.destroy();
  }, h.config.proxy.openTimeoutMs);
  openTimer.unref();
  const onData = (chunk: Buffer) => {
    let frames;
    try {
      frames = decoder.push(chunk);
    } catch (err) {
      h.log.warn({ err: (err as FrameError).message }, 'malformed frame from a proxy');
      sock.destroy();
      return;
    }
    for (const f of frames) {
      if (first) {
        first = false;
        const ak = authorizedKeysRequest.safeParse(f.header);
        if (ak.success) {
          clearTimeout(openTimer);
          void h.authorizedKeys(ak.data.user, ak.data.fingerprint).then(
            (lines) => sock.end(frameBytes({ lines })),
            () => sock.end(frameBytes({ lines: [] })),
          );
          return;
        }
        conn = h.connection(sock);
      }
      conn!.onFrame(f.header, f.payload, f.owned);
    }
  };
  sock.on('error', () => {});
  sock.on('data', (chunk: Buffer) => {
    try {
      onData(chunk);
    } catch (err) {
      // One connection's bad luck never takes the service down.
      h.log.error({ err: (err as Error).message }, 'proxy connection failed');
      sock.destroy();
    }
  });
  sock.on('close', () => clearTimeout(openTimer));
  sock.on('close', () => void conn?.onClose().catch((err: Error) => h.log.error({ err: err.message }, 'closing a session failed')));
}
