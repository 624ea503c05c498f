// POSIX pax tar headers (IEEE 1003.1-2001 `pax` format, as GNU tar reads it), written by hand:
// the npm tar writers either cannot carry non-UTF-8 names as raw bytes (hdrcharset=BINARY),
// sub-second mtimes or SCHILY.xattr records, or add extensions of their own, and the download's
// Content-Length is computed from these exact bytes before any data is read.
//
// Every entry is a ustar header, preceded by a pax extended header ('x') whenever a field does
// not fit the ustar one exactly: names that are long or not plain ASCII, link targets likewise,
// sizes ≥ 8 GiB, ids ≥ 2^21, long or non-ASCII owner names, mtimes with a fraction or outside
// the octal range, and extended attributes.
import { isUtf8 } from 'node:buffer';

export const BLOCK = 512;

export type TarType = 'file' | 'hardlink' | 'symlink' | 'dir' | 'chardev' | 'blockdev' | 'fifo';

export interface TarEntry {
  /** Raw path bytes, relative, without a trailing slash. */
  path: Buffer;
  type: TarType;
  /** Permission bits (and setuid/setgid/sticky). */
  mode: number;
  uid: number;
  gid: number;
  uname: Buffer | null;
  gname: Buffer | null;
  /** Nanoseconds since the epoch. */
  mtime: bigint;
  /** Regular files: bytes that follow the header. */
  size: number;
  /** Symlink target or hard-link target path. */
  linkname?: Buffer;
  rdev?: number;
  xattrs?: ReadonlyMap<string, Buffer>;
}

const TYPEFLAG: Record<TarType, string> = { file: '0', hardlink: '1', symlink: '2', chardev: '3', blockdev: '4', dir: '5', fifo: '6' };

const isPlainAscii = (b: Buffer) => b.every((c) => c >= 0x20 && c < 0x7f);

/** Length of a pax record whose " key=value\n" part is `body` bytes: the decimal length counts itself. */
function paxRecordLength(body: number): number {
  let len = body + 1;
  while (String(len).length + body !== len) len = String(len).length + body;
  return len;
}

/** One pax record: "<len> <key>=<value>\n", where len counts the whole record including itself. */
function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, 'utf8'), value, Buffer.from('\n')]);
  return Buffer.concat([Buffer.from(String(paxRecordLength(body.length))), body]);
}

function octal(value: number | bigint, width: number): Buffer {
  const s = value.toString(8).padStart(width - 1, '0');
  return Buffer.from(`${s}\0`, 'ascii');
}

const fitsOctal = (value: number | bigint, width: number) => BigInt(value) >= 0n && BigInt(value) < 8n ** BigInt(width - 1);

/** Seconds with nanoseconds as pax writes them ("-1.500000000", "1700000000"). */
function paxTime(ns: bigint): string {
  const neg = ns < 0n;
  const abs = neg ? -ns : ns;
  const sec = abs / 1_000_000_000n;
  const frac = abs % 1_000_000_000n;
  return `${neg ? '-' : ''}${sec}${frac ? `.${frac.toString().padStart(9, '0')}` : ''}`;
}

/** Linux's dev_t encoding (glibc gnu_dev_major / gnu_dev_minor). */
export function devMajorMinor(rdev: number): [number, number] {
  const r = BigInt(rdev);
  const major = Number(((r >> 8n) & 0xfffn) | ((r >> 32n) & ~0xfffn));
  const minor = Number((r & 0xffn) | ((r >> 12n) & ~0xffn));
  return [major, minor];
}

/** Splits a plain-ASCII path into ustar prefix (≤ 155) and name (≤ 100), if it can be. */
function ustarSplit(path: Buffer): { name: Buffer; prefix: Buffer } | undefined {
  if (!isPlainAscii(path)) return undefined;
  if (path.length <= 100) return { name: path, prefix: Buffer.alloc(0) };
  for (let i = path.length - 1; i > 0; i--) {
    if (path[i] !== 0x2f) continue;
    if (i > 155) continue;
    if (path.length - i - 1 > 100) return undefined;
    if (path.length - i - 1 === 0) return undefined;
    return { name: path.subarray(i + 1), prefix: path.subarray(0, i) };
  }
  return undefined;
}

function paxFields(e: TarEntry, path: Buffer): Array<[string, Buffer]> {
  const recs: Array<[string, Buffer]> = [];
  const binary = [path, e.linkname, e.uname, e.gname].some((b) => b && !isUtf8(b));
  if (binary) recs.push(['hdrcharset', Buffer.from('BINARY')]);
  if (!ustarSplit(path)) recs.push(['path', path]);
  if (e.linkname && (e.linkname.length > 100 || !isPlainAscii(e.linkname))) recs.push(['linkpath', e.linkname]);
  if (!fitsOctal(e.size, 12)) recs.push(['size', Buffer.from(String(e.size))]);
  if (!fitsOctal(e.uid, 8)) recs.push(['uid', Buffer.from(String(e.uid))]);
  if (!fitsOctal(e.gid, 8)) recs.push(['gid', Buffer.from(String(e.gid))]);
  if (e.uname && (e.uname.length > 31 || !isPlainAscii(e.uname))) recs.push(['uname', e.uname]);
  if (e.gname && (e.gname.length > 31 || !isPlainAscii(e.gname))) recs.push(['gname', e.gname]);
  if (e.mtime % 1_000_000_000n !== 0n || !fitsOctal(e.mtime / 1_000_000_000n, 12)) recs.push(['mtime', Buffer.from(paxTime(e.mtime))]);
  for (const [k, v] of e.xattrs ?? []) recs.push([`SCHILY.xattr.${k}`, v]);
  return recs;
}

function ustarHeader(fields: { name: Buffer; prefix: Buffer; mode: number; uid: number; gid: number; size: number; mtime: bigint; typeflag: string; linkname: Buffer; uname: Buffer; gname: Buffer; dev: [number, number] }): Buffer {
  const h = Buffer.alloc(BLOCK);
  fields.name.copy(h, 0, 0, 100);
  octal(fields.mode & 0o7777, 8).copy(h, 100);
  octal(fitsOctal(fields.uid, 8) ? fields.uid : 0, 8).copy(h, 108);
  octal(fitsOctal(fields.gid, 8) ? fields.gid : 0, 8).copy(h, 116);
  octal(fitsOctal(fields.size, 12) ? fields.size : 0, 12).copy(h, 124);
  const sec = fields.mtime / 1_000_000_000n - (fields.mtime < 0n && fields.mtime % 1_000_000_000n !== 0n ? 1n : 0n);
  octal(fitsOctal(sec, 12) ? sec : 0n, 12).copy(h, 136);
  h.write(fields.typeflag, 156, 'ascii');
  fields.linkname.copy(h, 157, 0, 100);
  h.write('ustar\u000000', 257, 'binary');
  fields.uname.copy(h, 265, 0, 31);
  fields.gname.copy(h, 297, 0, 31);
  if (fields.typeflag === '3' || fields.typeflag === '4') {
    octal(fitsOctal(fields.dev[0], 8) ? fields.dev[0] : 0, 8).copy(h, 329);
    octal(fitsOctal(fields.dev[1], 8) ? fields.dev[1] : 0, 8).copy(h, 337);
  }
  fields.prefix.copy(h, 345, 0, 155);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  Buffer.from(`${sum.toString(8).padStart(6, '0')}\0 `, 'ascii').copy(h, 148);
  return h;
}

const ascii = (b: Buffer | null | undefined, max: number) => (b && b.length <= max && isPlainAscii(b) ? b : Buffer.alloc(0));

/** Name of the pax header entry itself, as GNU tar writes it: "<dir>/PaxHeaders/<base>". */
function paxHeaderName(path: Buffer): Buffer {
  const safe = Buffer.from(path.toString('latin1').replace(/[^\x20-\x7e]/g, '_'), 'latin1');
  const slash = safe.lastIndexOf(0x2f);
  const dir = slash >= 0 ? safe.subarray(0, slash) : Buffer.from('.');
  const base = slash >= 0 ? safe.subarray(slash + 1) : safe;
  return Buffer.concat([dir.subarray(0, 40), Buffer.from('/PaxHeaders/'), base.subarray(0, 48)]);
}

/** The header blocks of one entry (pax extended header when needed, then the ustar header). */
export function entryHeader(e: TarEntry): Buffer {
  const path = e.type === 'dir' ? Buffer.concat([e.path, Buffer.from('/')]) : e.path;
  const size = e.type === 'file' ? e.size : 0;
  const entry = { ...e, size };
  const recs = paxFields(entry, path).map(([k, v]) => paxRecord(k, v));
  const split = ustarSplit(path) ?? { name: ascii(path.subarray(0, 100), 100), prefix: Buffer.alloc(0) };
  const dev = e.rdev !== undefined ? devMajorMinor(e.rdev) : ([0, 0] as [number, number]);
  const main = ustarHeader({ ...split, mode: e.mode, uid: e.uid, gid: e.gid, size, mtime: e.mtime, typeflag: TYPEFLAG[e.type], linkname: ascii(e.linkname, 100), uname: ascii(e.uname, 31), gname: ascii(e.gname, 31), dev });
  if (!recs.length) return main;
  const data = Buffer.concat(recs);
  const xname = ustarSplit(paxHeaderName(path)) ?? { name: Buffer.from('PaxHeader'), prefix: Buffer.alloc(0) };
  const xhdr = ustarHeader({ ...xname, mode: 0o644, uid: 0, gid: 0, size: data.length, mtime: 0n, typeflag: 'x', linkname: Buffer.alloc(0), uname: Buffer.alloc(0), gname: Buffer.alloc(0), dev: [0, 0] });
  return Buffer.concat([xhdr, data, Buffer.alloc(padding(data.length)), main]);
}

/** Zero bytes after `size` bytes of data up to the next block. */
export const padding = (size: number) => (BLOCK - (size % BLOCK)) % BLOCK;

/** The end-of-archive marker: two zero blocks. */
export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);

/**
 * Bytes an entry takes in the archive: headers, data, padding — what entryHeader writes, counted
 * without building it (the catalog computes it for every item of an archive).
 */
export function entryBytes(e: TarEntry): number {
  const size = e.type === 'file' ? e.size : 0;
  const path = e.type === 'dir' ? Buffer.concat([e.path, Buffer.from('/')]) : e.path;
  let pax = 0;
  for (const [k, v] of paxFields({ ...e, size }, path)) pax += paxRecordLength(Buffer.byteLength(k) + v.length + 3);
  return (pax ? BLOCK + pax + padding(pax) : 0) + BLOCK + size + padding(size);
}
