// Every object an archive references: its metadata object, its items chunks and the chunks its
// items list (BORG_PROTOCOL.md §5.3, §6.3 — what borg's cache sync counts per archive).
import type { BorgKey } from '../borg/keys.js';
import { parseArchive } from '../borg/archive.js';
import { ItemStreamParser } from '../borg/items.js';

export interface RefEntry {
  refcount: number;
  /** Plaintext length (0 when unknown). */
  size: number;
  /** Stored object length. */
  csize: number;
}

export type ReadObject = (id: Buffer) => Promise<{ plaintext: Buffer; csize: number }>;

/**
 * Reads an archive with the real key and counts its references. Sizes of data chunks are not
 * read from the item stream (a client wrote it); the caller fills them from its own indexes.
 */
export async function readArchiveChunkRefs(read: ReadObject, key: BorgKey, archiveId: Buffer): Promise<Map<string, RefEntry>> {
  const refs = new Map<string, RefEntry>();
  const add = (idHex: string, size: number, csize: number) => {
    const e = refs.get(idHex);
    if (e) e.refcount++;
    else refs.set(idHex, { refcount: 1, size, csize });
  };
  const meta = await read(archiveId);
  // Archives written before BorgCube re-signed them may carry a TAM of another key: read them anyway.
  const archive = parseArchive(key, meta.plaintext, { required: false });
  add(archiveId.toString('hex'), meta.plaintext.length, meta.csize);
  // What exists, as borg's cache sync counts it: a repaired item's chunks_healthy names chunks the
  // repair found missing, which a client handed them would reference without uploading.
  const parser = new ItemStreamParser({ reportHealthy: false });
  for (const itemsId of archive.items) {
    const chunk = await read(itemsId);
    add(itemsId.toString('hex'), chunk.plaintext.length, chunk.csize);
    for (const id of parser.feed(chunk.plaintext)) add(id, 0, 0);
  }
  parser.end();
  return refs;
}
