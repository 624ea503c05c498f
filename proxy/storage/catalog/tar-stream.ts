// A download: the selected items of an archive as a pax tar (tar.ts), in the archive's item order
// (a directory before its contents, a hard link's master before its links), file data read
// chunk by chunk with the real key. The consumer's `write` resolves when it wants more, and the
// next chunk is read only then: a slow reader pauses the reading, and since every object is read
// under its own share of the upstream, nothing repository-wide is held while it waits.
import type { ArchiveItem, ChunkRef } from '../../borg/item.js';
import { itemSize, S_IFMT, S_IFREG } from '../../borg/item.js';
import type { ArchiveReader } from '../archive-items.js';
import type { ReadObject } from '../archive-refs.js';
import { CatalogError } from './catalog.js';
import { itemTarType, selectionOf, tarEntryOfItem } from './tar-select.js';
import { END_OF_ARCHIVE, entryBytes, entryHeader, padding, type TarEntry } from './tar.js';

export { selectionOf };

/** Data frames carry at most this much (chunks are up to borg's 20 MiB objects). */
const SLICE = 1024 * 1024;

interface Planned {
  entry: TarEntry;
  /** Chunks to write after the header (regular files, and links whose master is not in the tar). */
  chunks: ChunkRef[];
}

interface Master {
  chunks: ChunkRef[];
  size: number;
  /** Where its data is in this tar: the master's own path, or the first selected link's. */
  writtenAs: Buffer | null;
}

/** Maps the selected items to tar entries; remembers hard-link masters for links whose master is left out. */
export async function* plan(archive: ArchiveReader, selected: (path: Buffer) => boolean): AsyncGenerator<Planned> {
  const masters = new Map<string, Master>();
  for await (const item of archive.items()) {
    if (item.part !== undefined) continue;
    const isSel = selected(item.path);
    if (item.hardlinkMaster) masters.set(item.path.toString('latin1'), { chunks: item.chunks ?? [], size: itemSize(item), writtenAs: isSel ? item.path : null });
    if (!isSel) continue;
    const p = toPlanned(item, masters);
    if (p) yield p;
  }
}

function toPlanned(item: ArchiveItem, masters: Map<string, Master>): Planned | undefined {
  const entry = tarEntryOfItem(item);
  if (!entry) return undefined;
  if (entry.type === 'hardlink' && item.source !== undefined) {
    // A hard link (borg 1.2: `source` names the master item, which came first in the stream).
    const m = masters.get(item.source.toString('latin1'));
    if (!m) throw new CatalogError('failed', `hard link ${item.path.toString('latin1')} names a master the archive does not hold`);
    if (m.writtenAs) return { entry: { ...entry, linkname: m.writtenAs }, chunks: [] };
    // Its master is not in this download: this link carries the data, later ones link to it.
    m.writtenAs = item.path;
    const own = itemTarType(item)!;
    if ((item.mode & S_IFMT) !== S_IFREG) return { entry: { ...entry, type: own, linkname: undefined }, chunks: [] };
    return { entry: { ...entry, type: 'file', linkname: undefined, size: m.size }, chunks: m.chunks };
  }
  return { entry, chunks: entry.type === 'file' ? (item.chunks ?? []) : [] };
}

/** The exact byte count of the tar `plan` would produce (metadata only: no data is read). */
export async function tarSize(archive: ArchiveReader, selected: (path: Buffer) => boolean): Promise<number> {
  let n = END_OF_ARCHIVE.length;
  for await (const p of plan(archive, selected)) n += entryBytes(p.entry);
  return n;
}

/** Writes the tar to `write`, awaiting it before every next read. */
export async function writeTar(archive: ArchiveReader, selected: (path: Buffer) => boolean, read: ReadObject, write: (b: Buffer) => Promise<void>): Promise<void> {
  for await (const p of plan(archive, selected)) {
    await write(entryHeader(p.entry));
    if (p.entry.type !== 'file') continue;
    let written = 0;
    for (const c of p.chunks) {
      const { plaintext } = await read(c.id);
      written += plaintext.length;
      if (written > p.entry.size) break;
      for (let o = 0; o < plaintext.length; o += SLICE) await write(plaintext.subarray(o, o + SLICE));
    }
    if (written !== p.entry.size) throw new CatalogError('failed', `${p.entry.path.toString('latin1')}: its chunks hold ${written} bytes, its item says ${p.entry.size}`);
    const pad = padding(p.entry.size);
    if (pad) await write(Buffer.alloc(pad));
  }
  await write(END_OF_ARCHIVE);
}
