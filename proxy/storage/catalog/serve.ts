// The catalog's side of the control socket: one validated request per connection (messages.ts).
// Downloads are written with back-pressure: the next object is read only when the socket has
// drained, and a requester that goes away stops the download at its next write.
import type { Socket } from 'node:net';
import type { Logger } from '../../../infra/logger.js';
import { frameBytes, writeFrame } from '../../protocol/frames.js';
import { type Catalog, CatalogError } from './catalog.js';
import { pathMatcher } from './glob.js';
import { toWire, type CatalogRequest } from './messages.js';
import { normalizePath, selectionOf } from './tar-select.js';
import { tarSize, writeTar } from './tar-stream.js';

const MAX_BODY = 16 * 1024 * 1024;

function sendBody(sock: Socket, body: unknown): void {
  const json = Buffer.from(JSON.stringify(body));
  if (json.length > MAX_BODY) return fail(sock, new CatalogError('invalid', 'the answer is too large; ask for fewer entries'));
  sock.end(frameBytes({ t: 'ok' }, json));
}

function fail(sock: Socket, err: unknown, log?: Logger): void {
  if (err instanceof CatalogError) sock.end(frameBytes({ t: 'error', code: err.code, message: err.message.slice(0, 4000) }));
  else if (err instanceof RangeError) sock.end(frameBytes({ t: 'error', code: 'invalid', message: err.message.slice(0, 4000) }));
  else {
    log?.error({ err: (err as Error).message }, 'catalog request failed');
    sock.end(frameBytes({ t: 'error', code: 'failed', message: `the repository service could not read the archive: ${(err as Error).message}`.slice(0, 4000) }));
  }
}

const pathArg = (b64: string) => normalizePath(Buffer.from(b64, 'base64'));

export async function serveCatalog(sock: Socket, req: CatalogRequest, catalog: Catalog, log: Logger): Promise<void> {
  try {
    if (req.t === 'catalog.tar') return await serveTar(sock, req, catalog, log);
    const idx = await catalog.index(req.repositoryId, req.archiveId);
    try {
      if (req.t === 'catalog.stat') {
        const path = pathArg(req.path);
        const e = path.length ? idx.stat(path) : undefined;
        return sendBody(sock, { entry: e ? toWire(e) : null });
      }
      if (req.t === 'catalog.list') {
        const path = pathArg(req.path);
        if (path.length) {
          const e = idx.stat(path);
          if (!e) throw new CatalogError('not-found', `${path.toString('latin1')}: no such path in the archive`);
          if (e.type !== 'dir') throw new CatalogError('invalid', `${path.toString('latin1')} is not a directory`);
        }
        const page = idx.list(path, req.offset, req.limit);
        return sendBody(sock, { entries: page.entries.map(toWire), total: page.total });
      }
      const found = await idx.find(pathMatcher(req.pattern), req.limit);
      return sendBody(sock, { entries: found.entries.map(toWire), truncated: found.truncated });
    } finally {
      idx.close();
    }
  } catch (err) {
    fail(sock, err, log);
  }
}

async function serveTar(sock: Socket, req: Extract<CatalogRequest, { t: 'catalog.tar' }>, catalog: Catalog, log: Logger): Promise<void> {
  const paths = req.paths.map(pathArg);
  const selected = selectionOf(paths);
  // Every requested path must be in the archive: an answer that silently leaves one out looks
  // like a complete download. The exact size comes from the index when it can tell, else from a
  // metadata-only pass over the items.
  const idx = await catalog.index(req.repositoryId, req.archiveId);
  let size: number | null = null;
  try {
    for (const p of paths) if (p.length && !idx.stat(p)) throw new CatalogError('not-found', `${p.toString('latin1')}: no such path in the archive`);
    if (req.size) size = await idx.tarSize(paths, selected);
  } finally {
    idx.close();
  }
  if (req.size && size === null) size = await tarSize(await catalog.archive(req.repositoryId, req.archiveId), selected);
  const archive = await catalog.archive(req.repositoryId, req.archiveId);
  const repo = await catalog.repositoryHandle(req.repositoryId);
  let started = false;
  let sent = 0;
  const write = async (b: Buffer) => {
    if (sock.destroyed) throw new CatalogError('failed', 'the requester went away');
    sent += b.length;
    // Never more bytes than announced: the requester would take them for another response.
    if (size !== null && sent > size) throw new CatalogError('failed', `the download grew past its announced ${size} bytes`);
    if (!writeFrame(sock, { t: 'data' }, b)) await drained(sock);
  };
  try {
    writeFrame(sock, { t: 'tar', size });
    started = true;
    await writeTar(archive, selected, (id) => repo.use((up) => repo.readObject(up, id)), write);
    if (size !== null && sent !== size) throw new CatalogError('failed', `the download ended after ${sent} of its announced ${size} bytes`);
    sock.end(frameBytes({ t: 'end' }));
  } catch (err) {
    if (!started) throw err;
    if (!sock.destroyed) log.warn({ err: (err as Error).message }, 'download stopped');
    fail(sock, err, log);
  }
}

function drained(sock: Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = () => {
      sock.off('close', onClose);
      resolve();
    };
    const onClose = () => {
      sock.off('drain', onDrain);
      reject(new CatalogError('failed', 'the requester went away'));
    };
    sock.once('drain', onDrain);
    sock.once('close', onClose);
  });
}
