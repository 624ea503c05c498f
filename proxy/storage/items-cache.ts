// What the item-stream parser found in each items chunk, for the next archive that lists the same
// chunk. An unchanged backup writes an item stream whose chunks are the previous archive's (borg
// dedups them), and checking the archive meant reading every one back from borg serve,
// decrypting and parsing it again: most of the commit's time on a small server.
//
// Sound because objects are content-addressed: an id is the MAC of its plaintext under the
// repository's id key (checked on every put), so the same id always parses to the same ids. The
// parser's state at the chunk's start is part of the key (an item may straddle chunks), and the
// state at its end is restored from the entry. Whether the referenced objects still exist is not
// cached: the session checks every id against its indexes each time.

export interface ItemsCacheEntry {
  /** The parser's state after this chunk (ItemStreamParser.state()). */
  exit: string;
  /** The chunk ids the chunk completed, 32 bytes each, in order. */
  ids: Buffer;
  /** Items the chunk completed. */
  items: number;
}

export class ItemsCache {
  private readonly entries = new Map<string, ItemsCacheEntry>();
  /** Chunks with at least one entry (any entry state): worth not reading ahead. */
  private readonly chunks = new Map<string, number>();
  private bytes = 0;

  /** `maxBytes` bounds the ids and states held; the oldest entries go first. */
  constructor(private readonly maxBytes: number) {}

  get size(): number {
    return this.entries.size;
  }

  // `chunk` names an items chunk: its repository and id (the cache may serve several repositories).

  hasChunk(chunk: string): boolean {
    return this.chunks.has(chunk);
  }

  get(chunk: string, entryState: string): ItemsCacheEntry | undefined {
    return this.entries.get(`${chunk}\n${entryState}`);
  }

  set(chunk: string, entryState: string, e: ItemsCacheEntry): void {
    const key = `${chunk}\n${entryState}`;
    const cost = costOf(key, e);
    if (cost > this.maxBytes || this.entries.has(key)) return;
    this.entries.set(key, e);
    this.chunks.set(chunk, (this.chunks.get(chunk) ?? 0) + 1);
    this.bytes += cost;
    for (const [k, old] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(k);
      this.bytes -= costOf(k, old);
      const c = k.slice(0, k.indexOf('\n'));
      const n = (this.chunks.get(c) ?? 1) - 1;
      if (n) this.chunks.set(c, n);
      else this.chunks.delete(c);
    }
  }
}

function costOf(key: string, e: ItemsCacheEntry): number {
  return key.length + e.exit.length + e.ids.length + 64;
}
