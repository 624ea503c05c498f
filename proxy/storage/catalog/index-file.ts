// Reading an archive's catalog index (layout in index-build.ts): a directory page is a binary
// search in the dir table, then one read of the page's offsets and one of its records.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { decodeEntry, recordLength, recordPathLatin1, recordTar, splitPath, type CatalogEntry } from './entry.js';
import { HEADER_BYTES, MAGIC } from './index-build.js';

export class CorruptIndexError extends Error {
  override name = 'CorruptIndexError';
}

export interface DirPage {
  entries: CatalogEntry[];
  /** Entries of the directory in all. */
  total: number;
}

export class CatalogIndex {
  readonly entryCount: number;
  readonly dirCount: number;
  private readonly entryOffsetsOff: number;
  private readonly dirsOff: number;
  private readonly dirOffsetsOff: number;
  private readonly duplicates: number;

  private constructor(private readonly fd: number) {
    const h = this.read(0, HEADER_BYTES);
    if (!h.subarray(0, 8).equals(MAGIC)) throw new CorruptIndexError('not a catalog index');
    const [entries, , entryOffsetsOff, dirs, dirsOff, dirOffsetsOff, length, duplicates] = Array.from({ length: 8 }, (_, i) => h.readDoubleLE(8 + 8 * i)) as [number, number, number, number, number, number, number, number];
    if (length !== fstatSync(fd).size) throw new CorruptIndexError('catalog index has the wrong length');
    if (!(entryOffsetsOff + (entries + 1) * 8 === dirsOff && dirOffsetsOff + dirs * 8 === length)) throw new CorruptIndexError('catalog index sections do not add up');
    this.entryCount = entries;
    this.dirCount = dirs;
    this.entryOffsetsOff = entryOffsetsOff;
    this.dirsOff = dirsOff;
    this.dirOffsetsOff = dirOffsetsOff;
    this.duplicates = duplicates;
  }

  /** Opens and checks an index; throws CorruptIndexError (rebuild it) or the fs error (ENOENT: build it). */
  static open(path: string): CatalogIndex {
    const fd = openSync(path, 'r');
    try {
      return new CatalogIndex(fd);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  close() {
    closeSync(this.fd);
  }

  private read(pos: number, n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const k = readSync(this.fd, b, got, n - got, pos + got);
      if (k === 0) throw new CorruptIndexError('catalog index truncated');
      got += k;
    }
    return b;
  }

  private f64s(pos: number, count: number): number[] {
    const b = this.read(pos, count * 8);
    return Array.from({ length: count }, (_, i) => b.readDoubleLE(i * 8));
  }

  private dirAt(i: number): { path: Buffer; first: number; count: number } {
    const off = this.f64s(this.dirOffsetsOff + i * 8, 1)[0]!;
    const len = this.read(this.dirsOff + off, 4).readUInt32LE(0);
    const b = this.read(this.dirsOff + off + 4, len + 16);
    return { path: b.subarray(0, len), first: b.readDoubleLE(len), count: b.readDoubleLE(len + 8) };
  }

  /** The entries range of the directory `path` ('' is the top level); undefined if it has no entries. */
  private dir(path: Buffer): { first: number; count: number } | undefined {
    let lo = 0;
    let hi = this.dirCount - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const d = this.dirAt(mid);
      const c = Buffer.compare(d.path, path);
      if (c === 0) return d;
      if (c < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    return undefined;
  }

  /** Entries [from, to) of the whole sorted entries section. */
  private entries(from: number, to: number): CatalogEntry[] {
    if (to <= from) return [];
    const offs = this.f64s(this.entryOffsetsOff + from * 8, to - from + 1);
    const b = this.read(offs[0]!, offs[offs.length - 1]! - offs[0]!);
    return offs.slice(0, -1).map((o) => decodeEntry(b, o - offs[0]!).entry);
  }

  /** One page of a directory, sorted by name bytes. */
  list(path: Buffer, offset: number, limit: number): DirPage {
    const d = this.dir(path);
    if (!d) return { entries: [], total: 0 };
    const from = d.first + Math.min(offset, d.count);
    return { entries: this.entries(from, Math.min(d.first + d.count, from + limit)), total: d.count };
  }

  /** The entry at `path`; the top level ('') is a directory without an entry of its own. */
  stat(path: Buffer): CatalogEntry | undefined {
    const { parent, name } = splitPath(path);
    const d = this.dir(parent);
    if (!d) return undefined;
    let lo = d.first;
    let hi = d.first + d.count - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const e = this.entries(mid, mid + 1)[0]!;
      const c = Buffer.compare(e.name, name);
      if (c === 0) return e;
      if (c < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    return undefined;
  }

  /** The first dir whose path is ≥ `key` (bytewise). */
  private dirLowerBound(key: Buffer): number {
    let lo = 0;
    let hi = this.dirCount;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (Buffer.compare(this.dirAt(mid).path, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /**
   * The entries below directory `path` at any depth: those of `path` itself, and those of the
   * dirs with the prefix `path/` (contiguous in the sorted dir table, so their entries are one
   * range). Two ranges: a sibling such as `path!x` sorts between them.
   */
  private subtree(path: Buffer): Array<[number, number]> {
    const ranges: Array<[number, number]> = [];
    const d = this.dir(path);
    if (d) ranges.push([d.first, d.first + d.count]);
    const prefix = Buffer.concat([path, Buffer.from('/')]);
    const lo = this.dirLowerBound(prefix);
    let a = lo;
    let b = this.dirCount;
    while (a < b) {
      const mid = (a + b) >> 1;
      const p = this.dirAt(mid).path;
      if (p.length >= prefix.length && p.subarray(0, prefix.length).equals(prefix)) a = mid + 1;
      else b = mid;
    }
    if (a > lo) {
      const last = this.dirAt(a - 1);
      ranges.push([this.dirAt(lo).first, last.first + last.count]);
    }
    return ranges;
  }

  /**
   * The exact length of the tar a download of `paths` writes (tar-stream.ts), from the index:
   * the sum of the selected entries' tar bytes. Null when the index cannot tell — a hard link
   * whose master is not selected (its first link then carries the data), or an archive holding
   * a path twice — and the caller measures with a pass over the items instead.
   */
  async tarSize(paths: Buffer[], selected: (path: Buffer) => boolean): Promise<number | null> {
    if (this.duplicates) return null;
    const all = !paths.length || paths.some((p) => p.length === 0);
    // Only the outermost of nested paths: the selection is their union.
    const roots = all ? [] : [...new Set(paths.map((p) => p.toString('latin1')))].map((p) => Buffer.from(p, 'latin1')).filter((p) => !paths.some((q) => q.length < p.length && p[q.length] === 0x2f && p.subarray(0, q.length).equals(q)));
    let total = 1024;
    const ranges: Array<[number, number]> = [];
    if (all) ranges.push([0, this.entryCount]);
    for (const r of roots) {
      const e = this.stat(r);
      if (!e) return null;
      if (e.type === 'hardlink' && e.target && !selected(e.target)) return null;
      total += e.tarBytes;
      if (e.type === 'dir') ranges.push(...this.subtree(r));
    }
    for (const [from, to] of ranges) {
      const n = await this.sumRange(from, to, selected);
      if (n === null) return null;
      total += n;
    }
    return total;
  }

  private async sumRange(from: number, to: number, selected: (path: Buffer) => boolean): Promise<number | null> {
    let total = 0;
    for (let i = from; i < to; i += 8192) {
      const n = Math.min(to, i + 8192) - i;
      const offs = this.f64s(this.entryOffsetsOff + i * 8, n + 1);
      const b = this.read(offs[0]!, offs[n]! - offs[0]!);
      for (let k = 0; k < n; k++) {
        const r = recordTar(b, offs[k]! - offs[0]!);
        if (r.implicit) continue;
        if (r.hardlinkTo && !selected(r.hardlinkTo)) return null;
        total += r.tarBytes;
      }
      await yieldToLoop();
    }
    return total;
  }

  /**
   * Entries whose full path (a latin1 string of its bytes) `match` accepts, at most `limit`, and
   * whether more matched. A sequential scan of the entries in 4 MiB reads, decoding only the
   * matches; it yields to the event loop between reads so a search of a million entries does
   * not stall the service.
   */
  async find(match: (pathLatin1: string) => boolean, limit: number): Promise<{ entries: CatalogEntry[]; truncated: boolean }> {
    const out: CatalogEntry[] = [];
    const end = this.entryOffsetsOff;
    let pos = HEADER_BYTES;
    let carry = Buffer.alloc(0);
    while (pos < end) {
      const block = this.read(pos, Math.min(4 * 1024 * 1024, end - pos));
      pos += block.length;
      const b = carry.length ? Buffer.concat([carry, block]) : block;
      let off = 0;
      for (let len; (len = recordLength(b, off)) !== undefined && off + len <= b.length; off += len) {
        if (!match(recordPathLatin1(b, off))) continue;
        if (out.length === limit) return { entries: out, truncated: true };
        out.push(decodeEntry(b, off).entry);
      }
      carry = Buffer.from(b.subarray(off));
      await yieldToLoop();
    }
    if (carry.length) throw new CorruptIndexError('catalog index ends inside a record');
    return { entries: out, truncated: false };
  }
}
