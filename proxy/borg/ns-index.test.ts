// The repository index of the fixtures borg 1.2.4 wrote: every committed object is found where the
// segment files hold its last put, and nothing else is found.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NS_BUCKET, NS_HEADER, nsLookup, nsProbe, parseNsIndexHeader, type ObjectLocation } from './ns-index.js';
import { putEntrySize, replayCommittedEntries } from './segments.js';
import { iterRepository, repoDir } from './test-fixtures.js';

/** The fixture repository's index file (borg names it after its last commit). */
function indexFile(dir: string): Buffer {
  const name = readdirSync(dir).find((n) => /^index\.\d+$/.test(n));
  if (!name) throw new Error(`no index in ${dir}`);
  return readFileSync(join(dir, name));
}

/** A lookup in a table held whole, in runs of 7 buckets (segment-reader.ts reads them from the file). */
function lookup(table: Buffer, id: Buffer): ObjectLocation | undefined {
  const { buckets } = parseNsIndexHeader(table.subarray(0, NS_HEADER), table.length);
  return nsLookup(id, buckets, 7, (bucket, n) => table.subarray(NS_HEADER + bucket * NS_BUCKET, NS_HEADER + (bucket + n) * NS_BUCKET));
}

describe('the repository index (index.N)', () => {
  for (const mode of ['repokey', 'none'] as const) {
    it(`${mode}: each committed object is found at its last put, with its size`, () => {
      const dir = repoDir(mode);
      const table = indexFile(dir);
      const header = parseNsIndexHeader(table.subarray(0, NS_HEADER), table.length);
      // The last committed put of each id (a delete drops it).
      const live = replayCommittedEntries(iterRepository(dir));
      expect(live.size).toBeGreaterThan(3);
      expect(header.entries).toBe(live.size);
      for (const [hex, e] of live) {
        const at = { segment: e.segment, offset: e.offset, size: 41 + e.data.length };
        const id = Buffer.from(hex, 'hex');
        expect(lookup(table, id)).toEqual({ segment: at.segment, offset: at.offset });
        const segment = readFileSync(join(dir, 'data', '0', String(at.segment)));
        expect(putEntrySize(segment.subarray(at.offset, at.offset + 41), id)).toBe(at.size);
        // The same bytes are no put of another id.
        const other = Buffer.from(id);
        other[31]! ^= 1;
        expect(putEntrySize(segment.subarray(at.offset, at.offset + 41), other)).toBeUndefined();
      }
      const absent = Buffer.alloc(32, 0x5a);
      expect(lookup(table, absent)).toBeUndefined();
    });
  }

  it('refuses a file that is not a repository index', () => {
    const table = indexFile(repoDir('none'));
    const head = Buffer.from(table.subarray(0, NS_HEADER));
    expect(() => parseNsIndexHeader(head, table.length - 1)).toThrow(/do not fit/);
    const chunks = Buffer.from(head);
    chunks[17] = 12; // the chunks cache's value size
    expect(() => parseNsIndexHeader(chunks, table.length)).toThrow(/not 32\/8/);
    const magic = Buffer.from(head);
    magic[0] = 0x41;
    expect(() => parseNsIndexHeader(magic, table.length)).toThrow(/magic/);
  });

  it('a probe passes deleted buckets and stops at the first empty one', () => {
    const id = Buffer.alloc(32, 7);
    const run = Buffer.alloc(3 * NS_BUCKET);
    run.writeUInt32LE(0xfffffffe, 32); // deleted
    id.copy(run, NS_BUCKET);
    run.writeUInt32LE(4, NS_BUCKET + 32);
    run.writeUInt32LE(1234, NS_BUCKET + 36);
    expect(nsProbe(run, id)).toEqual({ segment: 4, offset: 1234 });
    run.writeUInt32LE(0xffffffff, NS_BUCKET + 32); // now empty: the id behind it is not reached
    id.copy(run, 2 * NS_BUCKET);
    expect(nsProbe(run, id)).toBe('absent');
    expect(nsProbe(Buffer.alloc(0), id)).toBe('more');
  });
});
