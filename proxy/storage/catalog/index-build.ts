// Builds an archive's catalog index file from its item stream in bounded memory: records are
// gathered in runs of at most `runBytes`, each run sorted by (parent, name) and spilled to a
// temporary file, then the runs are merged into the index (a classic external sort). Besides the
// runs, memory holds the set of directory paths seen (to add the ancestors borg stores no item
// for) and the sizes of hard-link masters, so it grows with the number of directories and
// hard-linked files, not of files.
//
// File layout (little endian), written to a temporary name and renamed into place:
//   header (72 bytes): magic, entry count, offsets of the sections, dir count, file length,
//                     items dropped as duplicates of a path (the tar size then cannot come from here)
//   entries:        encoded records (entry.ts), sorted by (parent, name), duplicates dropped
//   entry offsets:  f64 per entry (+ one for the end of the entries)
//   dirs:           per distinct parent: u32 path length, path, f64 first entry, f64 count
//   dir offsets:    f64 per dir
import { closeSync, mkdirSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { ArchiveItem } from '../../borg/item.js';
import { compareRecords, encodeEntry, entryOfItem, implicitDir, recordImplicit, recordKey, splitPath } from './entry.js';
import { itemTarBytes } from './tar-select.js';

export const MAGIC = Buffer.from('BCCATv2\n', 'latin1');
export const HEADER_BYTES = 72;
/**
 * Encoded records held in memory before a run is sorted and spilled. The repository service's
 * event loop also carries every backup session: a run's sort (synchronous) stays around 0.1 s.
 */
export const RUN_BYTES = 8 * 1024 * 1024;
/** Merged records between two yields to the event loop. */
const MERGE_SLICE = 4096;

export interface IndexStats {
  entries: number;
  dirs: number;
  bytes: number;
  /** Real items dropped because an earlier item had the same path. */
  duplicates: number;
}

/** Buffered sequential writer over a file descriptor. */
class Out {
  private buf = Buffer.allocUnsafe(1 << 20);
  private used = 0;
  written = 0;
  constructor(readonly fd: number) {}
  write(b: Buffer) {
    if (this.used + b.length > this.buf.length) this.flush();
    if (b.length > this.buf.length) writeSync(this.fd, b);
    else this.used += b.copy(this.buf, this.used);
    this.written += b.length;
  }
  f64(n: number) {
    const b = Buffer.allocUnsafe(8);
    b.writeDoubleLE(n);
    this.write(b);
  }
  flush() {
    if (this.used) writeSync(this.fd, this.buf, 0, this.used);
    this.used = 0;
  }
}

/** Reads length-prefixed records of a run file back in order. */
class RunReader {
  private buf = Buffer.alloc(0);
  private pos = 0;
  private eof = false;
  constructor(private readonly fd: number) {}
  private fill(n: number): boolean {
    while (this.buf.length - this.pos < n && !this.eof) {
      const chunk = Buffer.allocUnsafe(Math.max(1 << 20, n));
      const got = readSync(this.fd, chunk, 0, chunk.length, null);
      if (got === 0) this.eof = true;
      this.buf = Buffer.concat([this.buf.subarray(this.pos), chunk.subarray(0, got)]);
      this.pos = 0;
    }
    return this.buf.length - this.pos >= n;
  }
  next(): Buffer | undefined {
    if (!this.fill(4)) return undefined;
    const n = this.buf.readUInt32LE(this.pos);
    if (!this.fill(4 + n)) throw new Error('catalog run file truncated');
    const rec = Buffer.from(this.buf.subarray(this.pos + 4, this.pos + 4 + n));
    this.pos += 4 + n;
    return rec;
  }
}

function spill(dir: string, n: number, records: Buffer[]): string {
  records.sort(compareRecords);
  const path = join(dir, `run-${n}`);
  const out = new Out(openSync(path, 'w', 0o600));
  const len = Buffer.allocUnsafe(4);
  for (const r of records) {
    len.writeUInt32LE(r.length);
    out.write(len);
    out.write(r);
  }
  out.flush();
  closeSync(out.fd);
  return path;
}

/** Gathers the encoded records into sorted run files. */
async function makeRuns(items: AsyncIterable<ArchiveItem>, tmp: string, runBytes: number): Promise<string[]> {
  const runs: string[] = [];
  const knownDirs = new Set<string>();
  // Borg 1.2 stores a hard link's size only on its master (which comes first): links show it too.
  const masterSizes = new Map<string, number>();
  let records: Buffer[] = [];
  let bytes = 0;
  const add = (rec: Buffer) => {
    records.push(rec);
    bytes += rec.length + 64;
    if (bytes >= runBytes) {
      runs.push(spill(tmp, runs.length, records));
      records = [];
      bytes = 0;
    }
  };
  for await (const item of items) {
    // Part files of an interrupted backup are not what the archive holds (borg extract skips them).
    if (item.part !== undefined || item.path.length === 0) continue;
    // Ancestors the archive has no item for still have to be browsable.
    for (let p = splitPath(item.path).parent; p.length && !knownDirs.has(p.toString('latin1')); p = splitPath(p).parent) {
      knownDirs.add(p.toString('latin1'));
      add(encodeEntry(implicitDir(p)));
    }
    const entry = entryOfItem(item);
    entry.tarBytes = itemTarBytes(item);
    if (item.hardlinkMaster) masterSizes.set(item.path.toString('latin1'), entry.size);
    if (entry.type === 'hardlink' && item.size === undefined) entry.size = masterSizes.get(item.source!.toString('latin1')) ?? 0;
    if (entry.type === 'dir') knownDirs.add(item.path.toString('latin1'));
    add(encodeEntry(entry));
  }
  if (records.length || !runs.length) runs.push(spill(tmp, runs.length, records));
  return runs;
}

/** Merges the runs into the entries section; writes offsets and the dir table to side files. */
async function merge(runs: string[], out: Out, side: { offsets: Out; dirs: Out; dirOffsets: Out }): Promise<IndexStats> {
  const fds = runs.map((r) => openSync(r, 'r'));
  const readers = fds.map((fd) => new RunReader(fd));
  const heads = readers.map((r) => r.next());
  let entries = 0;
  let dirs = 0;
  let duplicates = 0;
  let dirStart = 0;
  let curParent: Buffer | undefined;
  let pending: Buffer | undefined;
  const endDir = () => {
    if (!curParent) return;
    side.dirOffsets.f64(side.dirs.written);
    const l = Buffer.allocUnsafe(4);
    l.writeUInt32LE(curParent.length);
    side.dirs.write(l);
    side.dirs.write(curParent);
    side.dirs.f64(dirStart);
    side.dirs.f64(entries - dirStart);
    dirs++;
  };
  const emit = (rec: Buffer) => {
    const { parent } = recordKey(rec);
    if (!curParent || !curParent.equals(parent)) {
      endDir();
      curParent = Buffer.from(parent);
      dirStart = entries;
    }
    side.offsets.f64(out.written);
    out.write(rec);
    entries++;
  };
  const heap = new RunHeap(heads);
  for (let n = 1; ; n++) {
    if (n % MERGE_SLICE === 0) await yieldToLoop();
    const min = heap.top();
    if (min < 0) break;
    const rec = heads[min]!;
    heads[min] = readers[min]!.next();
    heap.replaceTop();
    // The same path twice (an implied ancestor and its real item, or a path given twice to borg
    // create): the real item wins, otherwise the first one.
    if (pending && compareRecords(pending, rec) === 0) {
      if (recordImplicit(pending) && !recordImplicit(rec)) pending = rec;
      else if (!recordImplicit(rec)) duplicates++;
      continue;
    }
    if (pending) emit(pending);
    pending = rec;
  }
  if (pending) emit(pending);
  endDir();
  side.offsets.f64(out.written);
  for (const fd of fds) closeSync(fd);
  return { entries, dirs, bytes: 0, duplicates };
}

/** A binary min-heap of run numbers by their current head record (exhausted runs drop out). */
class RunHeap {
  private readonly h: number[];
  constructor(private readonly heads: Array<Buffer | undefined>) {
    this.h = heads.map((_, i) => i).filter((i) => heads[i]);
    for (let i = (this.h.length >> 1) - 1; i >= 0; i--) this.down(i);
  }
  top(): number {
    return this.h.length ? this.h[0]! : -1;
  }
  /** After the top run's head changed (or ran out). */
  replaceTop() {
    if (!this.heads[this.h[0]!]) {
      const last = this.h.pop()!;
      if (!this.h.length) return;
      this.h[0] = last;
    }
    this.down(0);
  }
  private less(a: number, b: number) {
    return compareRecords(this.heads[this.h[a]!]!, this.heads[this.h[b]!]!) < 0;
  }
  private down(i: number) {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < this.h.length && this.less(l, m)) m = l;
      if (r < this.h.length && this.less(r, m)) m = r;
      if (m === i) return;
      [this.h[i], this.h[m]] = [this.h[m]!, this.h[i]!];
      i = m;
    }
  }
}

function append(out: Out, path: string) {
  const fd = openSync(path, 'r');
  const b = Buffer.allocUnsafe(1 << 20);
  for (let n; (n = readSync(fd, b, 0, b.length, null)) > 0; ) out.write(b.subarray(0, n));
  closeSync(fd);
}

/** Builds the index of `items` at `outPath` (atomically: a partial file never has that name). */
export async function buildIndex(items: AsyncIterable<ArchiveItem>, outPath: string, opts: { runBytes?: number } = {}): Promise<IndexStats> {
  mkdirSync(dirname(outPath), { recursive: true, mode: 0o700 });
  const tmp = `${outPath}.build-${process.pid}-${Math.random().toString(36).slice(2)}`;
  mkdirSync(tmp, { mode: 0o700 });
  try {
    const runs = await makeRuns(items, tmp, opts.runBytes ?? RUN_BYTES);
    const file = join(tmp, 'index');
    const out = new Out(openSync(file, 'w', 0o600));
    const side = { offsets: new Out(openSync(join(tmp, 'offsets'), 'w', 0o600)), dirs: new Out(openSync(join(tmp, 'dirs'), 'w', 0o600)), dirOffsets: new Out(openSync(join(tmp, 'dir-offsets'), 'w', 0o600)) };
    out.write(Buffer.alloc(HEADER_BYTES));
    const stats = await merge(runs, out, side);
    for (const s of Object.values(side)) {
      s.flush();
      closeSync(s.fd);
    }
    const entryOffsetsOff = out.written;
    append(out, join(tmp, 'offsets'));
    const dirsOff = out.written;
    append(out, join(tmp, 'dirs'));
    const dirOffsetsOff = out.written;
    append(out, join(tmp, 'dir-offsets'));
    out.flush();
    const h = Buffer.alloc(HEADER_BYTES);
    MAGIC.copy(h, 0);
    [stats.entries, HEADER_BYTES, entryOffsetsOff, stats.dirs, dirsOff, dirOffsetsOff, out.written, stats.duplicates].forEach((v, i) => h.writeDoubleLE(v, 8 + 8 * i));
    writeSync(out.fd, h, 0, HEADER_BYTES, 0);
    closeSync(out.fd);
    renameSync(file, outPath);
    return { ...stats, bytes: out.written };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
