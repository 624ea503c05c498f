import { randomInt } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseArchive, retamArchive } from './archive.js';
import { IntegrityError, MsgpackError } from './errors.js';
import { ItemStreamParser } from './items.js';
import { asKeyType, createJobKey, loadKey, type BorgKey } from './keys.js';
import { LIMITS, asMap, getBytes, getMap, packb, unpackb, type Packable } from './msgpack.js';
import { idHash, verifyChunk } from './objects.js';
import { liveObjects, MODES, keyText, loadExpect, repoDir, type Mode } from './test-fixtures.js';

const keyFor = (mode: Mode): BorgKey => loadKey(keyText(mode) ?? '', 'test', asKeyType(loadExpect(mode).keyType));

async function archivesOf(mode: Mode): Promise<{ name: string; plain: Buffer; items: Buffer[]; refs: string[]; nitems: number; id: string }[]> {
  const e = loadExpect(mode);
  const key = keyFor(mode);
  const live = liveObjects(repoDir(mode));
  const get = async (hexId: string): Promise<Buffer> => (await verifyChunk(key, Buffer.from(hexId, 'hex'), live.get(hexId) ?? Buffer.alloc(0))).plaintext;
  const out = [];
  for (const [name, a] of Object.entries(e.archives)) {
    const items: Buffer[] = [];
    for (const i of a.items) items.push(await get(i));
    out.push({ name, plain: await get(a.id), items, refs: a.refs, nitems: a.nitems, id: a.id });
  }
  return out;
}

describe.each(MODES)('archives written by borg 1.2.4 (%s)', (mode) => {
  const key = keyFor(mode);

  it('parse with required keys, TAM verified, items ids as borg listed them', async () => {
    for (const a of await archivesOf(mode)) {
      const meta = parseArchive(key, a.plain);
      expect(meta.tamVerified).toBe(true);
      expect(Buffer.from(meta.name, 'latin1').toString('utf8')).toBe(a.name);
      expect(meta.items.map((i) => i.toString('hex'))).toEqual(loadExpect(mode).archives[a.name]?.items);
      expect(meta.stats?.nfiles).toBeGreaterThan(0);
      expect(meta.chunkerParams?.[0]).toEqual(Buffer.from('buzhash'));
      expect(meta.cmdline[0]?.toString()).toMatch(/borg/);
    }
  });

  it('re-TAM: same salt reproduces borg\'s bytes; a job-key TAM verifies only under the job key', async () => {
    const [a] = await archivesOf(mode);
    if (!a) throw new Error('no archive');
    const salt = getBytes(getMap(asMap(unpackb(a.plain, LIMITS.items), 'a'), 'tam'), 'salt');
    expect(retamArchive(a.plain, key, key, salt).toString('hex')).toBe(a.plain.toString('hex'));
    if (key.type === 0x02) return;
    const job = createJobKey(key).key;
    const jobPlain = retamArchive(a.plain, key, job);
    expect(parseArchive(job, jobPlain).tamVerified).toBe(true);
    expect(() => parseArchive(key, jobPlain)).toThrow(IntegrityError);
    expect(idHash(key, jobPlain).equals(Buffer.from(a.id, 'hex'))).toBe(false); // new plaintext, new id
    const back = retamArchive(jobPlain, job, key);
    expect(parseArchive(key, back).items).toEqual(parseArchive(key, a.plain).items);
    expect(() => retamArchive(jobPlain, key, job)).toThrow(IntegrityError); // source TAM must verify
  });

  it('refuses unknown keys, missing required keys and tampering', async () => {
    const [a] = await archivesOf(mode);
    if (!a) throw new Error('no archive');
    const t = Buffer.from(a.plain);
    const at = t.indexOf(Buffer.from('buzhash'));
    t[at] = 0x61;
    expect(() => parseArchive(key, t)).toThrow(IntegrityError);
    const m = asMap(unpackb(a.plain, LIMITS.items), 'a');
    m.delete('tam');
    m.set('evil', 1);
    expect(() => parseArchive(key, packb(m), { required: false })).toThrow(/unexpected key/);
    m.delete('evil');
    m.delete('cmdline');
    expect(() => parseArchive(key, packb(m), { required: false })).toThrow(/missing required key cmdline/);
  });

  it('item streams: every referenced chunk id, in order, however the stream is split', async () => {
    for (const a of await archivesOf(mode)) {
      const whole = Buffer.concat(a.items);
      const splits: Buffer[][] = [a.items, [whole], Array.from({ length: Math.ceil(whole.length / 7) }, (_, i) => whole.subarray(i * 7, i * 7 + 7))];
      const random: Buffer[] = [];
      for (let i = 0; i < whole.length; ) {
        const n = randomInt(1, 200);
        random.push(whole.subarray(i, i + n));
        i += n;
      }
      splits.push(random);
      for (const parts of splits) {
        const p = new ItemStreamParser();
        const ids: string[] = [];
        for (const part of parts) ids.push(...p.feed(part));
        p.end();
        expect(ids).toEqual(a.refs);
        expect(p.items).toBe(a.nitems);
        expect(p.bufferedBytes).toBe(0);
      }
    }
  });
});

describe('item stream parser', () => {
  it('the big fixture archive really spans items chunks, and items straddle the boundaries', async () => {
    const many = (await archivesOf('repokey')).find((a) => a.name === 'a-many');
    expect(many?.items.length).toBeGreaterThan(1);
    expect(many?.refs.length).toBe(400);
    const p = new ItemStreamParser();
    let straddles = 0;
    for (const part of many?.items ?? []) {
      p.feed(part);
      if (p.inItem) straddles++;
    }
    p.end();
    expect(straddles).toBeGreaterThan(0);
    expect(p.items).toBe(many?.nitems);
  });
  it('skips long strings across feeds with bounded buffering', () => {
    const item = packb({ path: Buffer.alloc(100000, 0x61), chunks: [[Buffer.alloc(32, 1), 5, 6]], xattrs: new Map([['user.x', Buffer.alloc(70000)]]) });
    const p = new ItemStreamParser();
    const ids: string[] = [];
    for (let i = 0; i < item.length; i += 1000) {
      ids.push(...p.feed(item.subarray(i, i + 1000)));
      expect(p.bufferedBytes).toBeLessThan(1000);
    }
    p.end();
    expect(ids).toEqual([Buffer.alloc(32, 1).toString('hex')]);
  });
  it('reports the ids a repair kept in chunks_healthy unless told not to (an index of what exists)', () => {
    const [zeros, lost, other] = [Buffer.alloc(32, 0xaa), Buffer.alloc(32, 0xbb), Buffer.alloc(32, 0xcc)];
    const stream = Buffer.concat([packb({ path: Buffer.from('f'), chunks: [[zeros, 9, 9]], chunks_healthy: [[lost, 9, 9]] }), packb({ path: Buffer.from('g'), chunks: [[other, 1, 1]] })]);
    const all = new ItemStreamParser();
    expect(all.feed(stream)).toEqual([zeros, lost, other].map((b) => b.toString('hex')));
    const quiet = new ItemStreamParser({ reportHealthy: false });
    // Fed byte by byte: the quiet roles must survive every split.
    const ids: string[] = [];
    for (let i = 0; i < stream.length; i++) ids.push(...quiet.feed(stream.subarray(i, i + 1)));
    quiet.end();
    expect(ids).toEqual([zeros, other].map((b) => b.toString('hex')));
    expect(quiet.items).toBe(2);
    // Still checked: a malformed healthy list is refused either way.
    expect(() => new ItemStreamParser({ reportHealthy: false }).feed(packb({ chunks_healthy: [[Buffer.alloc(31), 1, 1]] }))).toThrow(MsgpackError);
  });
  it.each([
    ['a non-map item', packb([1, 2])],
    ['bin in an item', Buffer.from('81a170c40100', 'hex')],
    ['a short chunk id', packb({ chunks: [[Buffer.alloc(31), 1, 1]] })],
    ['a 2-element chunk entry', packb({ chunks: [[Buffer.alloc(32), 1]] })],
    ['a negative size', packb({ chunks: [[Buffer.alloc(32), -1, 1]] })],
    ['chunks that is not an array', packb({ chunks: 5 })],
    ['a non-string item key', Buffer.from('810101', 'hex')],
    ['a duplicate chunks key', Buffer.concat([Buffer.from('82a66368756e6b7390', 'hex'), Buffer.from('a66368756e6b7390', 'hex')])],
  ])('refuses %s', (_name, bytes) => {
    const p = new ItemStreamParser();
    expect(() => p.feed(bytes)).toThrow(MsgpackError);
    expect(() => p.feed(Buffer.alloc(1))).toThrow(MsgpackError); // stays failed
  });
  it('checks items with many keys for duplicates too (past the short list)', () => {
    const keys = Array.from({ length: 40 }, (_, i) => `k${i}`);
    const many = packb(new Map<string, Packable>([...keys.map((k): [string, Packable] => [k, 1]), ['chunks', [[Buffer.alloc(32, 7), 1, 1]]]]));
    const p = new ItemStreamParser();
    expect(p.feed(many)).toEqual([Buffer.alloc(32, 7).toString('hex')]);
    p.end();
    // The 40 keys and then k3 again: a map of 41 entries whose last key repeats an early one.
    const body = packb(Object.fromEntries(keys.map((k) => [k, 1] as const))).subarray(3); // after the map16 header
    const dup = Buffer.concat([Buffer.from([0xde, 0x00, 41]), body, packb('k3'), packb(2)]);
    expect(() => new ItemStreamParser().feed(dup)).toThrow(/duplicate item key "k3"/);
  });
  it('reports 64-bit sizes and refuses negative ones of any width', () => {
    const big = packb({ chunks: [[Buffer.alloc(32, 2), 2n ** 40n, 2n ** 33n]] });
    expect(new ItemStreamParser().feed(big)).toEqual([Buffer.alloc(32, 2).toString('hex')]);
    const neg = packb({ chunks: [[Buffer.alloc(32, 2), -(2n ** 40n), 1]] });
    expect(() => new ItemStreamParser().feed(neg)).toThrow(/non-negative/);
  });
  it('resumes from a saved state exactly as if it had parsed the chunks before', async () => {
    const many = (await archivesOf('repokey')).find((a) => a.name === 'a-many')!;
    // Small pieces, so that states inside items, chunk lists and long strings all occur.
    const stream = Buffer.concat(many.items);
    const pieces: Buffer[] = [];
    for (let i = 0; i < stream.length; i += 97) pieces.push(stream.subarray(i, i + 97));
    const p = new ItemStreamParser();
    const all: string[] = [];
    for (const piece of pieces) {
      const before = p.state();
      const items = p.items;
      const ids = p.feed(piece);
      all.push(...ids);
      const q = new ItemStreamParser();
      q.resume(before, 0, 0);
      expect(q.feed(piece)).toEqual(ids);
      expect(q.state()).toBe(p.state());
      const r = new ItemStreamParser();
      r.resume(p.state(), p.items - items, ids.length);
      expect(r.state()).toBe(p.state());
    }
    p.end();
    expect(all).toEqual(many.refs);
    // A parser resumed at the end of the stream is complete too.
    const done = new ItemStreamParser();
    done.resume(p.state(), p.items, p.references);
    done.end();
    expect(done.items).toBe(many.nitems);
  });
  it('carries an item\'s keys so far in its state (a duplicate after resuming is refused)', () => {
    const item = packb({ chunks: [[Buffer.alloc(32, 1), 1, 1]], path: 'x' });
    const p = new ItemStreamParser();
    // Everything up to (not including) the path key: the chunks key has been seen.
    p.feed(item.subarray(0, item.length - 7)); // a4 "path" a1 "x"
    const q = new ItemStreamParser();
    q.resume(p.state(), 0, 0);
    expect(() => q.feed(Buffer.concat([packb('chunks'), packb([])]))).toThrow(/duplicate item key "chunks"/);
  });
  it('refuses a stream that ends inside an item', () => {
    const p = new ItemStreamParser();
    const item = packb({ path: 'x', chunks: [[Buffer.alloc(32), 1, 1]] });
    p.feed(item.subarray(0, item.length - 3));
    expect(() => p.end()).toThrow(/ends inside an item/);
  });
});
