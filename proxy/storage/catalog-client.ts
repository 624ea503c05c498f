// Client side of the catalog on the repository service's control socket (catalog/messages.ts),
// for the web and the CLI: browse an archive's directories, search it, stat a path, download a
// tar. Replies are validated like every other input; a download is a Readable that pauses the
// socket (and so the service's reading) while its consumer is slow.
import { connect, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import type { z } from 'zod';
import { FrameDecoder, encodeFrame } from '../protocol/frames.js';
import { catalogReply, findBody, listBody, statBody, type CatalogErrorCode, type CatalogRequest, type WireEntry } from './catalog/messages.js';

export { MAX_FIND, MAX_PAGE, MAX_TAR_PATHS } from './catalog/messages.js';

/** An archive in a repository, as the repository service knows it. */
export interface CatalogArchiveRef {
  repositoryId: string;
  /** Borg's archive id (hex). */
  archiveId: string;
}

export type CatalogEntryType = WireEntry['type'];

/** One entry of an archive; names are raw bytes (not necessarily UTF-8). */
export interface CatalogItem {
  path: Buffer;
  name: Buffer;
  type: CatalogEntryType;
  mode: number;
  uid: number;
  gid: number;
  user: Buffer | null;
  group: Buffer | null;
  /** Nanoseconds since the epoch. */
  mtime: bigint;
  size: number;
  /** Symlink target or hard-link master path. */
  target: Buffer | null;
  rdev: number | null;
  /** A directory the archive holds no item for (an ancestor of what was backed up). */
  implicit: boolean;
}

export class CatalogRequestError extends Error {
  override name = 'CatalogRequestError';
  constructor(
    readonly code: CatalogErrorCode | 'unavailable',
    message: string,
  ) {
    super(message);
  }
}

const buf = (b: string | null) => (b === null ? null : Buffer.from(b, 'base64'));

function fromWire(w: WireEntry): CatalogItem {
  return { ...w, path: Buffer.from(w.path, 'base64'), name: Buffer.from(w.name, 'base64'), user: buf(w.user), group: buf(w.group), target: buf(w.target), mtime: BigInt(w.mtime) };
}

function open(socketPath: string, req: CatalogRequest, onFrame: (header: unknown, payload: Buffer, sock: Socket) => void, onGone: (err: CatalogRequestError) => void): Socket {
  const sock = connect(socketPath);
  const decoder = new FrameDecoder();
  sock.on('connect', () => {
    for (const p of encodeFrame(req)) sock.write(p);
  });
  sock.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') onGone(new CatalogRequestError('unavailable', 'the repository service is not running'));
    else onGone(new CatalogRequestError('failed', `the repository service connection failed: ${err.message}`));
  });
  sock.on('close', () => onGone(new CatalogRequestError('failed', 'the repository service closed the connection')));
  sock.on('data', (chunk: Buffer) => {
    try {
      for (const f of decoder.push(chunk)) onFrame(f.header, f.payload, sock);
    } catch (err) {
      sock.destroy();
      onGone(new CatalogRequestError('failed', `bad answer from the repository service: ${(err as Error).message}`));
    }
  });
  return sock;
}

function request<T>(socketPath: string, req: CatalogRequest, body: z.ZodType<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (err: Error | undefined, v?: T) => {
      if (settled) return;
      settled = true;
      if (err) reject(err);
      else resolve(v!);
    };
    open(
      socketPath,
      req,
      (header, payload, sock) => {
        const h = catalogReply.parse(header);
        sock.end();
        if (h.t === 'error') return settle(new CatalogRequestError(h.code, h.message));
        if (h.t !== 'ok') return settle(new CatalogRequestError('failed', `unexpected answer ${h.t} from the repository service`));
        settle(undefined, body.parse(JSON.parse(payload.toString('utf8'))));
      },
      (err) => settle(err),
    );
  });
}

export async function catalogList(socketPath: string, ref: CatalogArchiveRef, path: Buffer, offset: number, limit: number): Promise<{ entries: CatalogItem[]; total: number }> {
  const r = await request(socketPath, { t: 'catalog.list', ...ref, path: path.toString('base64'), offset, limit }, listBody);
  return { entries: r.entries.map(fromWire), total: r.total };
}

export async function catalogStat(socketPath: string, ref: CatalogArchiveRef, path: Buffer): Promise<CatalogItem | null> {
  const r = await request(socketPath, { t: 'catalog.stat', ...ref, path: path.toString('base64') }, statBody);
  return r.entry ? fromWire(r.entry) : null;
}

export async function catalogFind(socketPath: string, ref: CatalogArchiveRef, pattern: string, limit: number): Promise<{ entries: CatalogItem[]; truncated: boolean }> {
  const r = await request(socketPath, { t: 'catalog.find', ...ref, pattern, limit }, findBody);
  return { entries: r.entries.map(fromWire), truncated: r.truncated };
}

/**
 * A tar of `paths` (all of the archive when empty). Resolves once the service has checked the
 * request (and, with `size`, computed the exact length); the stream then carries the bytes.
 */
export function catalogTar(socketPath: string, ref: CatalogArchiveRef, paths: Buffer[], opts: { size: boolean }): Promise<{ size: number | null; stream: Readable }> {
  return new Promise((resolve, reject) => {
    let started = false;
    let ended = false;
    const gone = (err: CatalogRequestError) => {
      if (!started) reject(err);
      else if (!ended) stream.destroy(err);
    };
    const sock = open(
      socketPath,
      { t: 'catalog.tar', ...ref, paths: paths.map((p) => p.toString('base64')), size: opts.size },
      (header, payload, s) => {
        const h = catalogReply.parse(header);
        if (h.t === 'error') return gone(new CatalogRequestError(h.code, h.message));
        if (h.t === 'tar' && !started) {
          started = true;
          return resolve({ size: h.size, stream });
        }
        if (h.t === 'data' && started) {
          if (!stream.push(payload)) s.pause();
        } else if (h.t === 'end' && started) {
          ended = true;
          stream.push(null);
          s.end();
        } else gone(new CatalogRequestError('failed', `unexpected answer ${h.t} from the repository service`));
      },
      gone,
    );
    const stream = new Readable({
      highWaterMark: 4 * 1024 * 1024,
      read: () => void sock.resume(),
      destroy: (err, cb) => {
        sock.destroy();
        cb(err);
      },
    });
  });
}
