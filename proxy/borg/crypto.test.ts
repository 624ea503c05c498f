import { createCipheriv, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { aes256Ctr } from './crypto.js';

const reference = (key: Uint8Array, cb: Uint8Array, data: Uint8Array) => createCipheriv('aes-256-ctr', key, cb).update(data);

describe('aes256Ctr (OpenSSL through koffi, one context per key)', () => {
  it('matches node:crypto for any length, counter block and output place, with keys taking turns', () => {
    const keys = [randomBytes(32), randomBytes(32)];
    // the last counter block wraps around the whole 128-bit counter, as OpenSSL (and borg) count
    const blocks = [Buffer.alloc(16), randomBytes(16), Buffer.alloc(16, 0xff)];
    for (const n of [0, 1, 15, 16, 17, 4096, 100_003]) {
      for (const cb of blocks) {
        for (const key of [...keys, ...keys]) {
          const data = randomBytes(n);
          const want = reference(key, cb, data);
          // Buffer.equals, not toEqual: vitest's deep equality walks 100 kB byte by byte, which
          // took this test past its timeout on a loaded machine.
          expect(aes256Ctr(key, cb, data).equals(want)).toBe(true);
          const out = Buffer.alloc(n + 7, 0xaa);
          expect(aes256Ctr(key, cb, data, out.subarray(7)).equals(want)).toBe(true);
          expect(out.subarray(0, 7)).toEqual(Buffer.alloc(7, 0xaa));
        }
      }
    }
  });
  it('notices a key whose bytes changed, and refuses bad sizes', () => {
    const key = randomBytes(32);
    const cb = randomBytes(16);
    const data = randomBytes(100);
    aes256Ctr(key, cb, data);
    key[0] = (key[0] ?? 0) ^ 1;
    expect(aes256Ctr(key, cb, data)).toEqual(reference(key, cb, data));
    expect(() => aes256Ctr(randomBytes(16), cb, data)).toThrow(RangeError);
    expect(() => aes256Ctr(key, randomBytes(8), data)).toThrow(RangeError);
    expect(() => aes256Ctr(key, cb, data, Buffer.alloc(99))).toThrow(RangeError);
  });
});
