// The catalog's requests and replies on the repository service's control socket (one request per
// connection, framed as the leases are: proxy/protocol/frames.ts). The web and the CLI (root) ask;
// the service validates every request with these schemas. Paths and names are raw bytes, carried
// as base64 because JSON strings cannot hold arbitrary bytes.
import { z } from 'zod';
import type { CatalogEntry } from './entry.js';

const b64 = (max: number) =>
  z
    .string()
    .max(Math.ceil(max / 3) * 4)
    .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'not base64');
/** Borg keeps paths up to 64 KiB (item.ts). */
const path = b64(65536);
const archive = { repositoryId: z.uuid(), archiveId: z.string().regex(/^[0-9a-f]{64}$/) };

export const MAX_PAGE = 1000;
export const MAX_FIND = 10_000;
export const MAX_TAR_PATHS = 1000;

export const catalogRequest = z.discriminatedUnion('t', [
  z.object({ t: z.literal('catalog.list'), ...archive, path, offset: z.number().int().min(0).max(2 ** 32), limit: z.number().int().min(1).max(MAX_PAGE) }).strict(),
  z.object({ t: z.literal('catalog.stat'), ...archive, path }).strict(),
  z.object({ t: z.literal('catalog.find'), ...archive, pattern: z.string().min(1).max(1024), limit: z.number().int().min(1).max(MAX_FIND) }).strict(),
  z.object({ t: z.literal('catalog.tar'), ...archive, paths: z.array(path).max(MAX_TAR_PATHS), size: z.boolean() }).strict(),
]);
export type CatalogRequest = z.infer<typeof catalogRequest>;

export type CatalogErrorCode = 'not-found' | 'invalid' | 'failed';

export const wireEntry = z.object({
  path: b64(65536),
  name: b64(65536),
  type: z.enum(['file', 'dir', 'symlink', 'hardlink', 'fifo', 'chardev', 'blockdev', 'socket', 'other']),
  mode: z.number().int(),
  uid: z.number().int(),
  gid: z.number().int(),
  user: b64(65536).nullable(),
  group: b64(65536).nullable(),
  mtime: z.string().regex(/^-?\d+$/),
  size: z.number(),
  target: b64(65536).nullable(),
  rdev: z.number().nullable(),
  implicit: z.boolean(),
});
export type WireEntry = z.infer<typeof wireEntry>;

const b = (x: Buffer | null) => (x ? x.toString('base64') : null);

export function toWire(e: CatalogEntry): WireEntry {
  const full = e.parent.length ? Buffer.concat([e.parent, Buffer.from('/'), e.name]) : e.name;
  return { path: full.toString('base64'), name: e.name.toString('base64'), type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, user: b(e.user), group: b(e.group), mtime: e.mtime.toString(), size: e.size, target: b(e.target), rdev: e.rdev, implicit: e.implicit };
}

/**
 * Reply headers. Answers of list, stat and find travel as JSON in the frame's payload (a header
 * holds at most 64 KiB); a tar answer is `tar` (its exact size when asked and known), then `data`
 * frames carrying the bytes, then `end` — or `error` at any point.
 */
export const catalogReply = z.discriminatedUnion('t', [
  z.object({ t: z.literal('error'), code: z.enum(['not-found', 'invalid', 'failed']), message: z.string().max(4096) }),
  z.object({ t: z.literal('ok') }),
  z.object({ t: z.literal('tar'), size: z.number().int().nullable() }),
  z.object({ t: z.literal('data') }),
  z.object({ t: z.literal('end') }),
]);
export type CatalogReply = z.infer<typeof catalogReply>;

export const listBody = z.object({ entries: z.array(wireEntry).max(MAX_PAGE), total: z.number().int() });
export const statBody = z.object({ entry: wireEntry.nullable() });
export const findBody = z.object({ entries: z.array(wireEntry).max(MAX_FIND), truncated: z.boolean() });
