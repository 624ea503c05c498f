// An archive's items, read with the real key (BORG_PROTOCOL.md §5.3): the metadata object, then
// its items chunks in order, decoded item by item. Shared by the catalog (browse, download) and
// restore preparation. `read` fetches and decrypts one object; callers decide how long they hold
// the repository for it.
import { setImmediate as nextTurn } from 'node:timers/promises';
import { parseArchive, type ArchiveMeta } from '../borg/archive.js';
import type { BorgKey } from '../borg/keys.js';
import { decodeItem, type ArchiveItem } from '../borg/item.js';
import { LIMITS, Unpacker } from '../borg/msgpack.js';
import type { ReadObject } from './archive-refs.js';

export interface ArchiveReader {
  meta: ArchiveMeta;
  /** The items in stream order (the order borg create visited them: a directory before its contents). */
  items(): AsyncGenerator<ArchiveItem, void, void>;
}

/** The longest a walk of the items keeps the event loop to itself (the caller's work on each item included). */
const TURN_MS = 2;

export async function openArchive(read: ReadObject, key: BorgKey, archiveId: Buffer): Promise<ArchiveReader> {
  const { plaintext } = await read(archiveId);
  // Archives written before BorgCube re-signed them may carry a TAM of another key: read them anyway.
  const meta = parseArchive(key, plaintext, { required: false });
  return {
    meta,
    async *items() {
      const unpacker = new Unpacker(LIMITS.items);
      let turnAt = performance.now() + TURN_MS;
      for (const id of meta.items) {
        const chunk = await read(id);
        unpacker.feed(chunk.plaintext);
        for (const v of unpacker) {
          yield decodeItem(v);
          // A chunk's items take ~7 ms to walk for a restore's selection: a push to a client in
          // the same process (one SFTP round trip per turn) waited that long per round trip.
          if (performance.now() > turnAt) {
            await nextTurn();
            turnAt = performance.now() + TURN_MS;
          }
        }
        // Reads from the segment files settle without I/O: without a turn of the event loop per
        // chunk, a walk of a big archive would hold up every other session of the service.
        await nextTurn();
        turnAt = performance.now() + TURN_MS;
      }
      if (unpacker.bufferedBytes) throw new Error(`archive ${archiveId.toString('hex')}: its item stream ends inside an item`);
    },
  };
}
