// The objects a backup session stored, with the sizes its client's cache will show for them: a
// flat hash table (borg's ChunkIndex layout, 44 bytes a bucket, no JS object per entry) instead
// of a Map of hex strings and size objects, which cost ~250 bytes a put and made the memory a
// session holds grow without bound during a flood of tiny puts (DESIGN.md §4 invariant 11;
// measured in README "Per-job bounds").
import { ChunkIndex } from '../borg/hashindex.js';

export interface PutSizes {
  /** Plaintext length. */
  size: number;
  /** The object's length as this client uploaded it (never another tenant's, §4 invariant 12). */
  csize: number;
}

export class PutIndex {
  private readonly index = new ChunkIndex();

  get size(): number {
    return this.index.size;
  }

  has(idHex: string): boolean {
    return this.index.has(Buffer.from(idHex, 'hex'));
  }

  get(idHex: string): PutSizes | undefined {
    const e = this.index.get(Buffer.from(idHex, 'hex'));
    return e && { size: e.size, csize: e.csize };
  }

  set(idHex: string, s: PutSizes): void {
    this.index.set(Buffer.from(idHex, 'hex'), { refcount: 1, size: s.size, csize: s.csize });
  }

  /** Ids (hex), for a cleanup that must leave them alone. */
  *keys(): Generator<string> {
    for (const [id] of this.index) yield id.toString('hex');
  }

  /** Bytes the table holds (for the flood benchmark's figures). */
  get bytes(): number {
    return this.index.numBuckets * 44;
  }
}
