// Item keys of an archive's items stream, decoded once: an archive repeats the same dozen keys
// (`path`, `mode`, `chunks`, …) for every file, so the parser looks a key up by a hash of its bytes
// instead of decoding a new string each time.

/**
 * Item keys seen so far, by a hash of their bytes: an item key is looked up here instead of
 * being decoded into a new string each time (an archive repeats the same dozen keys per file).
 * A hit is compared byte by byte, so a colliding key only costs a decode. Bounded: a stream of
 * made-up keys cannot grow it.
 */
const keyCache = new Map<number, string>();
const KEY_CACHE_MAX = 1024;

/** The key of `n` bytes at `start`, as a binary string (latin1), from the cache when seen before. */
export function keyAt(buf: Buffer, start: number, n: number): string {
  let h = 0x811c9dc5 ^ n;
  for (let i = start; i < start + n; i++) h = Math.imul(h ^ buf[i]!, 0x01000193);
  const cached = keyCache.get(h);
  if (cached !== undefined && cached.length === n) {
    let same = true;
    for (let i = 0; i < n; i++) {
      if (cached.charCodeAt(i) !== buf[start + i]) {
        same = false;
        break;
      }
    }
    if (same) return cached;
  }
  const key = buf.toString('latin1', start, start + n);
  if (keyCache.size < KEY_CACHE_MAX) keyCache.set(h, key);
  return key;
}
