import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MsgpackError } from './errors.js';
import {
  LIMITS,
  MsgFloat,
  Unpacker,
  asArray,
  asMap,
  getBytes,
  getInt,
  packParts,
  packb,
  sortedMap,
  unpackb,
  type Packable,
  type UnpackLimits,
  type Value,
} from './msgpack.js';
import { TESTDATA, msgpackVectorSchema } from './test-fixtures.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const unlimited: UnpackLimits = { maxStrLen: 2 ** 32, maxArrayLen: 2 ** 32, maxMapLen: 2 ** 32, maxBufferSize: 2 ** 40, maxDepth: 64 };

// Rebuilds a value from extract.py's description language (values packed there by borg's own packb).
function build(d: unknown): Packable {
  const o = d as { t: string; v?: unknown; hex?: string; byte?: number; n?: number; item?: unknown };
  switch (o.t) {
    case 'lit':
      return o.v as null | boolean;
    case 'int':
      return BigInt(o.v as string) >= -(2n ** 53n) && BigInt(o.v as string) <= 2n ** 53n ? Number(o.v) : BigInt(o.v as string);
    case 'float':
      return new MsgFloat(o.v as number);
    case 'bytes':
      return hex(o.hex ?? '');
    case 'fill':
      return Buffer.alloc(o.n ?? 0, o.byte ?? 0);
    case 'str':
      return o.v as string;
    case 'array':
      return (o.v as unknown[]).map(build);
    case 'arrayfill':
      return new Array<Packable>(o.n ?? 0).fill(build(o.item));
    case 'map':
      return new Map((o.v as [unknown, unknown][]).map(([k, v]) => [Buffer.from(build(k) as Uint8Array).toString('latin1'), build(v)]));
    default:
      throw new Error(`unknown description ${o.t}`);
  }
}

describe('msgpack vectors packed by borg 1.2.4 (testdata/vectors/msgpack.json)', () => {
  const vectors = msgpackVectorSchema.parse(JSON.parse(readFileSync(join(TESTDATA, 'vectors', 'msgpack.json'), 'utf8')));
  it.each(vectors.map((v) => [v.name, v] as const))('%s packs byte-identically and round-trips', (_name, v) => {
    const packed = packb(build(v.value));
    expect(packed.length).toBe(v.len);
    expect(createHash('sha256').update(packed).digest('hex')).toBe(v.sha256);
    if (v.hex !== null) expect(packed.toString('hex')).toBe(v.hex);
    expect(packb(unpackb(packed, unlimited))).toEqual(packed);
  });
});

describe('BORG_PROTOCOL.md Appendix A bytes', () => {
  it('negotiate request and reply', () => {
    const req = hex('94 01 01 a9 6e65676f7469617465 91 81 ae 636c69656e745f76657273696f6e 94 01 02 04 ff');
    expect(packb([1, 1, 'negotiate', [{ client_version: [1, 2, 4, -1] }]])).toEqual(req);
    const v = asArray(unpackb(req, LIMITS.server), 'req');
    expect(v[2]).toEqual(Buffer.from('negotiate'));
    expect(packb([1, 1, null, { server_version: [1, 2, 4, -1] }])).toEqual(hex('94 01 01 c0 81 ae 7365727665725f76657273696f6e 94 01 02 04 ff'));
  });
  it('get manifest, load_key, nonce and nil replies', () => {
    expect(packb({ i: 3, m: 'get', a: { id: Buffer.alloc(32) } })).toEqual(hex(`83 a1 69 03 a1 6d a3 676574 a1 61 81 a2 6964 da 0020 ${'00'.repeat(32)}`));
    expect(packb({ i: 4, m: 'load_key', a: {} })).toEqual(hex('83 a1 69 04 a1 6d a8 6c6f61645f6b6579 a1 61 80'));
    expect(packb({ i: 6, r: 268435484 })).toEqual(hex('82 a1 69 06 a1 72 ce 1000001c'));
    expect(packb({ i: 7, r: null })).toEqual(hex('82 a1 69 07 a1 72 c0'));
  });
  it('put with a 64 KiB object uses str32 and keeps the object zero-copy', () => {
    const id = Buffer.alloc(32, 7);
    const obj = Buffer.alloc(70000, 3);
    const parts = packParts({ i: 8, m: 'put', a: { id, data: obj } });
    expect(parts.some((p) => p === obj)).toBe(true);
    const packed = Buffer.concat(parts);
    expect(packed.subarray(0, 16)).toEqual(hex('83 a1 69 08 a1 6d a3 707574 a1 61 82 a2 6964'));
    const at = 16 + 3 + 32 + 5;
    expect(packed.subarray(at, at + 5)).toEqual(hex('db 00011170'));
    const m = asMap(unpackb(packed, LIMITS.server), 'msg');
    const data = getBytes(asMap(m.get('a'), 'a'), 'data');
    expect(data.buffer).toBe(packed.buffer); // zero-copy view into the input
    expect(data.equals(obj)).toBe(true);
  });
});

describe('decoder', () => {
  it('accepts str8 (0xd9), float32 and float64; returns bytes for strings', () => {
    expect(unpackb(hex('d9 03 616263'), LIMITS.server)).toEqual(Buffer.from('abc'));
    expect(unpackb(hex('ca 3f800000'), LIMITS.server)).toEqual(new MsgFloat(1));
    expect(unpackb(hex('cb 3fb999999999999a'), LIMITS.server)).toEqual(new MsgFloat(0.1));
    expect(unpackb(hex('a3 c3a9 78'), LIMITS.server)).toEqual(hex('c3a978'));
  });
  it('decodes 64-bit integers beyond 2^53 as bigint', () => {
    expect(unpackb(hex('cf ffffffffffffffff'), LIMITS.server)).toBe(2n ** 64n - 1n);
    expect(unpackb(hex('d3 8000000000000000'), LIMITS.server)).toBe(-(2n ** 63n));
    expect(unpackb(hex('cf 0000000000000005'), LIMITS.server)).toBe(5);
  });
  it.each([
    ['bin8', 'c4 01 00', 'bin-type'],
    ['bin16', 'c5 0001 00', 'bin-type'],
    ['bin32', 'c6 00000001 00', 'bin-type'],
    ['fixext1', 'd4 01 00', 'ext-type'],
    ['ext8', 'c7 01 01 00', 'ext-type'],
    ['reserved c1', 'c1', 'reserved-type'],
    ['bin as map key', '81 c4 01 61 01', 'bin-type'],
    ['int map key', '81 01 01', 'key-type'],
    ['duplicate key', '82 a1 61 01 a1 61 02', 'duplicate-key'],
  ])('rejects %s', (_n, bytes, code) => {
    expect(() => unpackb(hex(bytes), LIMITS.server)).toThrow(MsgpackError);
    try {
      unpackb(hex(bytes), LIMITS.server);
    } catch (e) {
      expect((e as MsgpackError).code).toBe(code);
    }
  });
  it('rejects a str32 header claiming 100 MB as soon as the header arrives', () => {
    const u = new Unpacker(LIMITS.server);
    u.feed(hex('db 05f5e100'));
    expect(() => u.next()).toThrow(/max_str_len/);
    expect(() => u.feed(Buffer.alloc(10))).toThrow(/max_str_len/); // stays failed
  });
  it('enforces array, map, depth and buffer limits', () => {
    expect(() => unpackb(packb(new Array(101).fill(0)), LIMITS.server)).toThrow(/max_array_len\(100\)/);
    expect(unpackb(packb(new Array(100).fill(0)), LIMITS.server)).toHaveLength(100);
    const big = new Map<string, Packable>();
    for (let i = 0; i < 101; i++) big.set(`k${i}`, i);
    expect(() => unpackb(packb(big), LIMITS.server)).toThrow(/max_map_len\(100\)/);
    expect(() => unpackb(packb('x'.repeat(256)), LIMITS.manifest)).toThrow(/max_str_len\(255\)/);
    expect(() => unpackb(packb([1]), LIMITS.key)).toThrow(/max_array_len\(0\)/);
    let deep: Packable = 1;
    for (let i = 0; i < 17; i++) deep = [deep];
    expect(() => unpackb(packb(deep), LIMITS.server)).toThrow(/nesting deeper/);
    const u = new Unpacker({ ...LIMITS.server, maxBufferSize: 100 });
    u.feed(Buffer.alloc(60, 0));
    expect(() => u.feed(Buffer.alloc(41, 0))).toThrow(/max_buffer_size/);
  });
  it('rejects trailing and truncated input in unpackb', () => {
    expect(() => unpackb(hex('01 02'), LIMITS.server)).toThrow(/trailing/);
    expect(() => unpackb(hex('92 01'), LIMITS.server)).toThrow(/truncated/);
  });
});

describe('streaming Unpacker', () => {
  it('reassembles values split at every byte boundary', () => {
    const msgs: Packable[] = [
      [1, 1, 'negotiate', [{ client_version: [1, 2, 4, -1] }]],
      { i: 2, m: 'put', a: { id: Buffer.alloc(32, 1), data: Buffer.alloc(300, 2) } },
      { i: 3, r: null },
      2 ** 40,
    ];
    const stream = Buffer.concat(msgs.map((m) => packb(m)));
    for (const step of [1, 2, 3, 7, 64, stream.length]) {
      const u = new Unpacker(LIMITS.server);
      const out: Value[] = [];
      for (let i = 0; i < stream.length; i += step) {
        u.feed(stream.subarray(i, i + step));
        for (const v of u) out.push(v);
      }
      expect(out.map((v) => packb(v))).toEqual(msgs.map((m) => packb(m)));
      expect(u.bufferedBytes).toBe(0);
    }
  });
  it('keeps a large string zero-copy when it arrives in one chunk, copies small ones', () => {
    const data = Buffer.alloc(2 * 1024 * 1024, 9);
    const msg = packb({ i: 9, m: 'put', a: { id: Buffer.alloc(32, 1), data } });
    const u = new Unpacker(LIMITS.server);
    u.feed(msg);
    const m = asMap(u.next(), 'msg');
    const a = asMap(m.get('a'), 'a');
    expect(getBytes(a, 'data').buffer).toBe(msg.buffer);
    expect(getBytes(a, 'id').buffer).not.toBe(msg.buffer);
    expect(getInt(m, 'i')).toBe(9);
  });
  it('does not re-concatenate while a long string is still arriving', () => {
    const data = Buffer.alloc(1024 * 1024, 5);
    const msg = packb({ i: 1, m: 'put', a: { id: Buffer.alloc(32), data } });
    const u = new Unpacker(LIMITS.server);
    let values = 0;
    for (let i = 0; i < msg.length; i += 4096) {
      u.feed(msg.subarray(i, i + 4096));
      if (u.next() !== undefined) values++;
    }
    expect(values).toBe(1);
  });
});

describe('encoder', () => {
  it('never emits str8, bin or ext', () => {
    expect(packb(Buffer.alloc(200)).subarray(0, 3)).toEqual(hex('da 00c8'));
    expect(packb('é'.repeat(100))[0]).toBe(0xda);
  });
  it('builds StableDict-style sorted maps and refuses reorderable object keys', () => {
    expect([...sortedMap({ version: 1, archives: 2, tam: 3, config: 4 }).keys()]).toEqual(['archives', 'config', 'tam', 'version']);
    expect(() => packb({ 1: 'a' })).toThrow(/use a Map/);
    expect(() => packb(new Map([['\u0100', 1]]))).toThrow(/latin1/);
  });
  it('round-trips arbitrary byte keys through latin1 map keys', () => {
    const k = Buffer.from([0xff, 0x00, 0x80, 0x41]).toString('latin1');
    const packed = packb(new Map([[k, 1]]));
    expect(packed).toEqual(hex('81 a4 ff008041 01'));
    expect([...asMap(unpackb(packed, LIMITS.server), 'm').keys()]).toEqual([k]);
  });
});
