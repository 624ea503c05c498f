// Browsing and downloading an archive (DESIGN.md §3): the repository service reads it with the
// real key on the storage host and answers over its control socket (proxy/storage's catalog
// client); no client is involved. Paths are raw bytes: operators name them as UTF-8 text, or as
// base64 when the name is not UTF-8; everything shown goes through displayPath().
import { createGzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import { insertAuditEvent } from '../db/queries/audit.js';
import { catalogFind, catalogList, catalogStat, catalogTar, CatalogRequestError, MAX_FIND, MAX_PAGE, MAX_TAR_PATHS, type CatalogArchiveRef, type CatalogItem } from '../proxy/storage/api.js';
import type { ArchiveDetail } from './archives.js';
import { resolveArchive } from './archives.js';
import type { ServiceDeps } from './deps.js';
import { failed, invalid, ServiceError, unavailable } from './errors.js';

export type { CatalogItem } from '../proxy/storage/api.js';

/** An archive named by an operator: id or name, and the repository when the name is ambiguous. */
export interface ArchiveArg {
  archive: string;
  repository?: string;
}

const refOf = (a: ArchiveDetail): CatalogArchiveRef => ({ repositoryId: a.repositoryId, archiveId: a.borgId });

const ESCAPES: Record<string, string> = { '\n': '\\n', '\t': '\\t', '\r': '\\r', '\\': '\\\\' };

/**
 * Text for a name: valid UTF-8 as is; other bytes, control characters and the backslash escaped
 * (\xNN, \n, \t, \\), so a name can never break a terminal or a line of output.
 */
export function displayPath(b: Buffer): string {
  return b.toString('latin1').replace(/[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}|[\x00-\x1f\x7f-\xff\\]/g, (m) => {
    if (m.length > 1) return Buffer.from(m, 'latin1').toString('utf8');
    return ESCAPES[m] ?? `\\x${m.charCodeAt(0).toString(16).padStart(2, '0')}`;
  });
}

const TYPE_CHAR: Record<CatalogItem['type'], string> = { file: '-', hardlink: '-', dir: 'd', symlink: 'l', fifo: 'p', chardev: 'c', blockdev: 'b', socket: 's', other: '?' };

/** `ls -l`'s mode column: type, then rwx triplets with setuid/setgid/sticky. */
export function modeString(type: CatalogItem['type'], mode: number): string {
  const bit = (b: number, c: string) => (mode & b ? c : '-');
  const x = (exec: number, special: number, on: string, off: string) => (mode & special ? (mode & exec ? on : off) : bit(exec, 'x'));
  return `${TYPE_CHAR[type]}${bit(0o400, 'r')}${bit(0o200, 'w')}${x(0o100, 0o4000, 's', 'S')}${bit(0o40, 'r')}${bit(0o20, 'w')}${x(0o10, 0o2000, 's', 'S')}${bit(0o4, 'r')}${bit(0o2, 'w')}${x(0o1, 0o1000, 't', 'T')}`;
}

/** A path argument: UTF-8 text, or base64 of the raw bytes. Leading and trailing slashes do not matter. */
export function pathArg(arg: { path?: string; pathB64?: string }): Buffer {
  if (arg.path !== undefined && arg.pathB64 !== undefined) throw invalid('give a path as text or as base64, not both');
  if (arg.pathB64 !== undefined) {
    if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(arg.pathB64)) throw invalid('pathB64 is not base64');
    return trimSlashes(Buffer.from(arg.pathB64.replace(/-/g, '+').replace(/_/g, '/'), 'base64'));
  }
  return trimSlashes(Buffer.from(arg.path ?? '', 'utf8'));
}

function trimSlashes(b: Buffer): Buffer {
  let s = 0;
  let e = b.length;
  while (s < e && b[s] === 0x2f) s++;
  while (e > s && b[e - 1] === 0x2f) e--;
  return b.subarray(s, e);
}

function catalogError(err: unknown, archive: ArchiveDetail): never {
  if (!(err instanceof CatalogRequestError)) throw err;
  if (err.code === 'unavailable') throw unavailable(`${err.message}; archives cannot be browsed until it runs again`);
  if (err.code === 'not-found' || err.code === 'invalid') throw new ServiceError(err.code, `archive ${archive.name}: ${err.message}`);
  throw failed(`archive ${archive.name}: ${err.message}`);
}

/** The entry as JSON (API, `--json`): names as text, and as base64 when they are not UTF-8. */
export function entryJson(e: CatalogItem) {
  const raw = (b: Buffer | null) => (b && !Buffer.from(b.toString('utf8'), 'utf8').equals(b) ? b.toString('base64') : undefined);
  return {
    path: displayPath(e.path),
    name: displayPath(e.name),
    ...(raw(e.path) ? { pathB64: raw(e.path) } : {}),
    type: e.type,
    mode: e.mode & 0o7777,
    uid: e.uid,
    gid: e.gid,
    user: e.user ? displayPath(e.user) : null,
    group: e.group ? displayPath(e.group) : null,
    mtime: new Date(Number(e.mtime / 1_000_000n)).toISOString(),
    mtimeNs: e.mtime.toString(),
    size: e.size,
    target: e.target ? displayPath(e.target) : null,
    implicit: e.implicit,
  };
}

export interface DirectoryPage {
  archive: ArchiveDetail;
  path: Buffer;
  entries: CatalogItem[];
  total: number;
  offset: number;
}

/** One page of a directory of the archive ('' is its top level), sorted by name. */
export async function browseArchive(deps: Pick<ServiceDeps, 'db' | 'config'>, arg: ArchiveArg, path: Buffer, opts: { offset?: number; limit?: number } = {}): Promise<DirectoryPage> {
  const archive = await resolveArchive(deps, arg.archive, arg.repository);
  const offset = opts.offset ?? 0;
  const limit = opts.limit ?? 200;
  if (!Number.isInteger(offset) || offset < 0) throw invalid('offset is a whole number ≥ 0');
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) throw invalid(`limit is between 1 and ${MAX_PAGE}`);
  const page = await catalogList(deps.config.paths.controlSocket, refOf(archive), path, offset, limit).catch((err) => catalogError(err, archive));
  return { archive, path, entries: page.entries, total: page.total, offset };
}

/** Entries whose path matches `pattern` (glob with *, ?, ** — or a substring), at most `limit`. */
export async function findInArchive(deps: Pick<ServiceDeps, 'db' | 'config'>, arg: ArchiveArg, pattern: string, limit = 1000): Promise<{ archive: ArchiveDetail; entries: CatalogItem[]; truncated: boolean }> {
  if (!pattern || pattern.length > 1024) throw invalid('a search pattern has 1 to 1024 characters');
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_FIND) throw invalid(`limit is between 1 and ${MAX_FIND}`);
  const archive = await resolveArchive(deps, arg.archive, arg.repository);
  const r = await catalogFind(deps.config.paths.controlSocket, refOf(archive), pattern, limit).catch((err) => catalogError(err, archive));
  return { archive, ...r };
}

/** The entry at `path`, or a not-found error. */
export async function statArchivePath(deps: Pick<ServiceDeps, 'db' | 'config'>, arg: ArchiveArg, path: Buffer): Promise<{ archive: ArchiveDetail; entry: CatalogItem }> {
  const archive = await resolveArchive(deps, arg.archive, arg.repository);
  const entry = await catalogStat(deps.config.paths.controlSocket, refOf(archive), path).catch((err) => catalogError(err, archive));
  if (!entry) throw new ServiceError('not-found', `archive ${archive.name}: ${displayPath(path)}: no such path in the archive`);
  return { archive, entry };
}

export interface Download {
  archive: ArchiveDetail;
  /** A file name for Content-Disposition (ASCII-safe). */
  filename: string;
  contentType: string;
  /** Exact byte count (plain tar); null when compressed. */
  size: number | null;
  stream: Readable;
}

const safeFileName = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^_+|_+$/g, '').slice(0, 120) || 'archive';

/**
 * A tar (optionally gzip) of `paths` of the archive (all of it when none), streamed as it is
 * read. Recorded as an audit event `archive.download` and logged before the first byte.
 */
export async function downloadArchive(deps: Pick<ServiceDeps, 'db' | 'config' | 'log'>, arg: ArchiveArg, paths: Buffer[], opts: { gzip: boolean; actor: { userId: string | null; name: string } }): Promise<Download> {
  if (paths.length > MAX_TAR_PATHS) throw invalid(`at most ${MAX_TAR_PATHS} paths per download`);
  const archive = await resolveArchive(deps, arg.archive, arg.repository);
  const tar = await catalogTar(deps.config.paths.controlSocket, refOf(archive), paths, { size: !opts.gzip }).catch((err) => catalogError(err, archive));
  const shown = paths.map(displayPath);
  await insertAuditEvent(deps.db, { userId: opts.actor.userId, actor: opts.actor.name, action: 'archive.download', target: archive.name, detail: { archiveId: archive.id, repository: archive.repositoryName, paths: shown, gzip: opts.gzip, size: tar.size } });
  deps.log.info({ actor: opts.actor.name, archive: archive.name, repository: archive.repositoryName, paths: shown.slice(0, 20), gzip: opts.gzip, size: tar.size }, 'archive download');
  const last = paths.length === 1 && paths[0]!.length ? displayPath(paths[0]!.subarray(paths[0]!.lastIndexOf(0x2f) + 1)) : '';
  const filename = `${safeFileName(archive.name)}${last ? `-${safeFileName(last)}` : ''}.tar${opts.gzip ? '.gz' : ''}`;
  const stream = opts.gzip ? tar.stream.pipe(createGzip()) : tar.stream;
  if (opts.gzip) tar.stream.on('error', (err) => stream.destroy(err));
  return { archive, filename, contentType: opts.gzip ? 'application/gzip' : 'application/x-tar', size: tar.size, stream };
}
