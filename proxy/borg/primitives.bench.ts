// Micro-benchmarks of the per-byte work the proxy does on the PUT hot path (PERF_NOTES.md):
//   npx vitest bench --run --project unit proxy/borg
// (--project unit: the integration/e2e projects would run it again, behind their global setup)
// Each bench processes one 2 MiB chunk (borg's average chunk size) per iteration, so MB/s = hz * 2.097.
// A summary in MB/s is also printed once by measuring the same functions with a plain timer.
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, bench, describe } from 'vitest';
import { compressLz4, decompress, lz4DecompressedSize } from './compression.js';
import { aes256Ctr, blake2b256, hmacSha256 } from './crypto.js';
import { ChunkIndex } from './hashindex.js';
import type { BorgKey } from './keys.js';
import { LIMITS, Unpacker, packb, unpackb } from './msgpack.js';
import { encryptObject, idHash, reencrypt, verifyChunk } from './objects.js';

const MiB = 1024 * 1024;

/** 2 MiB of text-like data: words drawn from a small vocabulary plus some random bytes (lz4 ratio ~2-3). */
function sampleData(size: number): Buffer {
  const words = 'borg backup chunk archive manifest repository segment index cache nonce key proxy client server file data the of and to in is'.split(' ');
  const out = Buffer.alloc(size);
  let seed = 12345;
  const rnd = (): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed;
  };
  let p = 0;
  while (p < size) {
    if (rnd() % 50 === 0) {
      const r = randomBytes(Math.min(64, size - p));
      r.copy(out, p);
      p += r.length;
    } else {
      const w = `${words[rnd() % words.length] ?? 'x'}${rnd() % 7 === 0 ? '\n' : ' '}`;
      p += out.write(w, p);
    }
  }
  return out;
}

const key = (type: 0x03 | 0x05): BorgKey => ({
  type,
  idKey: type === 0x05 ? Buffer.concat([randomBytes(64), Buffer.alloc(64)]) : randomBytes(32),
  encKey: randomBytes(32),
  encHmacKey: type === 0x05 ? Buffer.concat([randomBytes(64), Buffer.alloc(64)]) : randomBytes(32),
  chunkSeed: 1,
  repositoryId: randomBytes(32),
  tamRequired: true,
});

const data = sampleData(2 * MiB);
const repokey = key(0x03);
const blake = key(0x05);
const lz4Payload = compressLz4(data);
// borg needs the frame content size, which the zstd CLI writes when compressing a file (not stdin).
const zstdInput = join(mkdtempSync(join(tmpdir(), 'bench-')), 'data');
writeFileSync(zstdInput, data);
const zstdFrame = execFileSync('zstd', ['-q', '-c', '-3', zstdInput]);
const zstdPayload = Buffer.concat([Buffer.from([3, 0]), zstdFrame]);
const lz4Obj = encryptObject(repokey, lz4Payload, 1000n);
const zstdObj = encryptObject(blake, zstdPayload, 1000n);
const lz4Id = idHash(repokey, data);
const zstdId = idHash(blake, data);
const putMsg = packb({ i: 8, m: 'put', a: { id: lz4Id, data: lz4Obj } });
const cb = Buffer.alloc(16);

/** A hand-written raw LZ4 block decoder, kept here only to compare against liblz4. */
function lz4Js(src: Buffer, start: number, size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let i = start;
  let o = 0;
  for (;;) {
    const t = src[i++] ?? 0;
    let lit = t >>> 4;
    if (lit === 15) for (let b = 255; b === 255; lit += b) b = src[i++] ?? 0;
    if (lit > 16) src.copy(out, o, i, i + lit);
    else for (let k = 0; k < lit; k++) out[o + k] = src[i + k] ?? 0;
    i += lit;
    o += lit;
    if (i >= src.length) return out;
    const off = (src[i] ?? 0) | ((src[i + 1] ?? 0) << 8);
    i += 2;
    let ml = t & 15;
    if (ml === 15) for (let b = 255; b === 255; ml += b) b = src[i++] ?? 0;
    ml += 4;
    if (off >= ml) out.copyWithin(o, o - off, o - off + ml);
    else for (let k = 0; k < ml; k++) out[o + k] = out[o - off + k] ?? 0;
    o += ml;
  }
}

const lz4Scratch = Buffer.allocUnsafe(data.length);
function decodePut(): void {
  const u = new Unpacker(LIMITS.server);
  for (let i = 0; i < putMsg.length; i += 65536) u.feed(putMsg.subarray(i, i + 65536));
  if (u.next() === undefined) throw new Error('no message');
}

function buildIndex(n: number, presize: boolean): ChunkIndex {
  const idx = new ChunkIndex(presize ? n : 0);
  const k = Buffer.alloc(32);
  const h = createHash('sha256').update('seed').digest();
  for (let i = 0; i < n; i++) {
    h.copy(k);
    k.writeUInt32LE(i * 2654435761 >>> 0, 0); // spread like random ids
    k.writeUInt32LE(i, 4);
    idx.add(k, 1, 1000, 500);
  }
  return idx;
}

// Summary in MB/s, printed once (tinybench reports hz).
const summary: string[] = [];
async function rate(name: string, bytes: number, fn: () => unknown, iterations = 20): Promise<void> {
  await fn();
  const t = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) await fn();
  const s = Number(process.hrtime.bigint() - t) / 1e9;
  summary.push(`${name.padEnd(52)} ${((bytes * iterations) / s / 1e6).toFixed(0).padStart(6)} MB/s`);
}

afterAll(async () => {
  await rate('verifyChunk repokey+lz4 (2 MiB plaintext)', data.length, () => verifyChunk(repokey, lz4Id, lz4Obj));
  await rate('verifyChunk repokey-blake2+zstd (2 MiB plaintext)', data.length, () => verifyChunk(blake, zstdId, zstdObj));
  await rate('verify + reencrypt repokey+lz4', data.length, async () => reencrypt(repokey, (await verifyChunk(repokey, lz4Id, lz4Obj)).payload, 5n));
  await rate('lz4 decompress: liblz4 after JS size scan', data.length, () => decompress(lz4Payload));
  await rate('lz4 decompress: liblz4 after JS size scan, into a reused buffer', data.length, () => decompress(lz4Payload, { into: lz4Scratch }));
  await rate('lz4 decompress: hand-written JS', data.length, () => lz4Js(lz4Payload, 2, data.length));
  await rate('lz4 size scan only (output bytes)', data.length, () => lz4DecompressedSize(lz4Payload, 2, 128 * MiB));
  await rate('zstd decompress (@toondepauw/node-zstd)', data.length, () => decompress(zstdPayload));
  await rate('AES-256-CTR', data.length, () => aes256Ctr(repokey.encKey, cb, data));
  await rate('HMAC-SHA256', data.length, () => hmacSha256(repokey.idKey, data));
  await rate('BLAKE2b-256 (hash-wasm)', data.length, () => blake2b256(blake.idKey, data));
  await rate('msgpack: stream-decode a 2 MiB put in 64 KiB feeds', putMsg.length, decodePut);
  await rate('msgpack: unpackb a 2 MiB put', putMsg.length, () => unpackb(putMsg, LIMITS.server));
  await rate('msgpack: packb a 2 MiB put', putMsg.length, () => packb({ i: 8, m: 'put', a: { id: lz4Id, data: lz4Obj } }));
  const t = process.hrtime.bigint();
  const idx = buildIndex(1_000_000, false);
  const built = Number(process.hrtime.bigint() - t) / 1e9;
  const t2 = process.hrtime.bigint();
  buildIndex(1_000_000, true);
  const presized = Number(process.hrtime.bigint() - t2) / 1e9;
  const t3 = process.hrtime.bigint();
  const file = idx.serialize();
  ChunkIndex.parse(file);
  const rw = Number(process.hrtime.bigint() - t3) / 1e9;
  summary.push(`hashindex: 1M adds growing from 1031 buckets: ${built.toFixed(2)} s; presized: ${presized.toFixed(2)} s`);
  summary.push(`hashindex: serialize + parse 1M (${(file.length / MiB).toFixed(0)} MiB file): ${rw.toFixed(2)} s`);
  summary.push(`(lz4 payload ${lz4Payload.length} B, zstd payload ${zstdPayload.length} B for ${data.length} B of plaintext)`);
  console.log(`\nborg primitives, one core:\n${summary.join('\n')}\n`);
}, 300_000);

describe('PUT hot path, per 2 MiB chunk', () => {
  bench('verifyChunk repokey + lz4', async () => {
    await verifyChunk(repokey, lz4Id, lz4Obj);
  });
  bench('verifyChunk repokey-blake2 + zstd', async () => {
    await verifyChunk(blake, zstdId, zstdObj);
  });
  bench('msgpack stream-decode of a put message', () => {
    decodePut();
  });
});

describe('ChunkIndex', () => {
  bench('build 1M entries (presized)', () => {
    buildIndex(1_000_000, true);
  }, { iterations: 2, warmupIterations: 0 });
});
