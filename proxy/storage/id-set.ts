// A set of 32-byte object ids as a sorted file of raw ids, looked up by binary search with
// positioned reads: a restore of a million-file archive allows millions of ids, which as a JS Set
// of hex strings would cost the service ~100 bytes each for the whole session; here they cost
// 32 bytes on disk and a few reads per lookup.
import { closeSync, fstatSync, openSync, readSync, writeFileSync } from 'node:fs';

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
    const order = new Uint32Array(this.n);
    for (let i = 0; i < this.n; i++) order[i] = i;
    // buf.compare(target, tStart, tEnd, sStart, sEnd) orders buf[sStart, sEnd) against the target range.
    order.sort((x, y) => b.compare(b, y * ID, y * ID + ID, x * ID, x * ID + ID));
    const out = Buffer.allocUnsafe(this.n * ID);
    let m = 0;
    for (let k = 0; k < this.n; k++) {
      const at = order[k]! * ID;
      if (m > 0 && b.compare(out, (m - 1) * ID, m * ID, at, at + ID) === 0) continue;
      b.copy(out, m * ID, at, at + ID);
      m++;
    }
    return out.subarray(0, m * ID);
  }

  /** Writes the sorted distinct ids to `path` (0600); returns how many. */
  writeSorted(path: string): number {
    const s = this.sorted();
    writeFileSync(path, s, { mode: 0o600 });
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

/** A sorted id file opened for lookups; `close()` when done. */
export class IdFile {
  private readonly fd: number;
  private readonly count: number;

  constructor(path: string) {
    this.fd = openSync(path, 'r');
    const size = fstatSync(this.fd).size;
    if (size % ID !== 0) {
      closeSync(this.fd);
      throw new Error(`${path} is not a file of ${ID}-byte ids`);
    }
    this.count = size / ID;
  }

  has(id: Buffer): boolean {
    return search(this.count, (i, into) => {
      if (readSync(this.fd, into, 0, ID, i * ID) !== ID) throw new Error('the id file is shorter than it was');
    }, id);
  }

  close(): void {
    closeSync(this.fd);
  }
}
