// A set of 32-byte object ids as a sorted file of raw ids, looked up by binary search with
// positioned reads: a restore of a million-file archive allows millions of ids, which as a JS Set
// of hex strings would cost the service ~100 bytes each for the whole session; here they cost
// 32 bytes on disk and one read per lookup (IdFile).
import { closeSync, fstatSync, openSync, readSync, renameSync, writeFileSync } from 'node:fs';

const ID = 32;

/** Ids appended in any order, with repeats; `sorted()` gives the file's bytes. */
export class IdCollector {
  private buf = Buffer.allocUnsafe(ID * 1024);
  private n = 0;

  get size(): number {
    return this.n;
  }

  add(id: Buffer): void {
    if (id.length !== ID) throw new Error(`an object id is ${ID} bytes, not ${id.length}`);
    if ((this.n + 1) * ID > this.buf.length) {
      const grown = Buffer.allocUnsafe(this.buf.length * 2);
      this.buf.copy(grown, 0, 0, this.n * ID);
      this.buf = grown;
    }
    id.copy(this.buf, this.n * ID);
    this.n++;
  }

  /** The distinct ids, sorted bytewise, concatenated. */
  sorted(): Buffer {
    const b = this.buf;
    const n = this.n;
    const order = new Uint32Array(n);
    // Ids are hashes: their first four bytes, compared as numbers, decide nearly every comparison
    // without a call into Buffer.compare (docs/performance.md, "Restore: fixed costs").
    const head = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      order[i] = i;
      head[i] = b.readUInt32BE(i * ID);
    }
    // buf.compare(target, tStart, tEnd, sStart, sEnd) orders buf[sStart, sEnd) against the target range.
    order.sort((x, y) => head[x]! - head[y]! || b.compare(b, y * ID + 4, y * ID + ID, x * ID + 4, x * ID + ID));
    const out = Buffer.allocUnsafe(n * ID);
    let m = 0;
    for (let k = 0; k < n; k++) {
      const i = order[k]!;
      const at = i * ID;
      // Repeats are neighbours now: each is checked against the one before it.
      if (k > 0 && head[order[k - 1]!] === head[i] && b.compare(b, order[k - 1]! * ID, order[k - 1]! * ID + ID, at, at + ID) === 0) continue;
      b.copy(out, m * ID, at, at + ID);
      m++;
    }
    return out.subarray(0, m * ID);
  }

  /** Replaces `path` (0600) with the sorted distinct ids at once (a reader has the old file or the new one); returns how many. */
  writeSorted(path: string): number {
    const s = this.sorted();
    writeFileSync(`${path}.tmp`, s, { mode: 0o600 });
    renameSync(`${path}.tmp`, path);
    return s.length / ID;
  }
}

/** Whether `id` is in `sorted` (the bytes of a sorted id file). */
export function sortedHas(sorted: Buffer, id: Buffer): boolean {
  return search(sorted.length / ID, (i, into) => sorted.copy(into, 0, i * ID, i * ID + ID), id);
}

function search(count: number, read: (i: number, into: Buffer) => void, id: Buffer): boolean {
  if (id.length !== ID || !Number.isInteger(count)) return false;
  const probe = Buffer.allocUnsafe(ID);
  let lo = 0;
  let hi = count - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    read(mid, probe);
    const c = probe.compare(id);
    if (c === 0) return true;
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

/** Ids per block of an IdFile: one positioned read of 8 KiB per lookup. */
const BLOCK = 256;

/**
 * A sorted id file opened for lookups; `close()` when done. The first id of every block of
 * BLOCK ids is kept in memory (1/256 of the file), so a lookup is a binary search there, one
 * positioned read of its block and a search in that: a restore's get cost ~17 reads (one per
 * step of a binary search over the file) before, each a syscall of its own.
 */
export class IdFile {
  private readonly fd: number;
  private readonly count: number;
  /** The first id of each block, concatenated. */
  private readonly index: Buffer;
  private readonly block = Buffer.allocUnsafe(BLOCK * ID);

  constructor(path: string) {
    this.fd = openSync(path, 'r');
    const size = fstatSync(this.fd).size;
    if (size % ID !== 0) {
      closeSync(this.fd);
      throw new Error(`${path} is not a file of ${ID}-byte ids`);
    }
    this.count = size / ID;
    const blocks = Math.ceil(this.count / BLOCK);
    this.index = Buffer.allocUnsafe(blocks * ID);
    for (let b = 0; b < blocks; b++) this.readFully(this.index.subarray(b * ID, b * ID + ID), b * BLOCK * ID);
  }

  has(id: Buffer): boolean {
    if (id.length !== ID || this.count === 0) return false;
    // The last block whose first id is ≤ id.
    let lo = 0;
    let hi = this.index.length / ID - 1;
    if (this.index.compare(id, 0, ID, 0, ID) > 0) return false;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.index.compare(id, 0, ID, mid * ID, mid * ID + ID) <= 0) lo = mid;
      else hi = mid - 1;
    }
    const n = Math.min(BLOCK, this.count - lo * BLOCK);
    const block = this.block.subarray(0, n * ID);
    this.readFully(block, lo * BLOCK * ID);
    return sortedHas(block, id);
  }

  private readFully(into: Buffer, position: number): void {
    if (readSync(this.fd, into, 0, into.length, position) !== into.length) throw new Error('the id file is shorter than it was');
  }

  close(): void {
    closeSync(this.fd);
  }
}
