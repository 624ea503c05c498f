import { describe, expect, it } from 'vitest';
import { progressText } from './jobs.js';

describe('progressText', () => {
  it("says a restore's bytes of its total, its share and the items where known", () => {
    expect(progressText({ originalSize: 50, deduplicatedSize: 0, nfiles: 0, path: 'a/b', totalSize: 200 })).toBe('50 of 200 bytes restored (25.0%); at a/b');
    expect(progressText({ originalSize: 200, deduplicatedSize: 0, nfiles: 7, path: 'c', totalSize: 200 })).toBe('7 items, 200 of 200 bytes restored (100.0%); at c');
    // An archive of empty files only: no share to give.
    expect(progressText({ originalSize: 0, deduplicatedSize: 0, nfiles: 3, path: '', totalSize: 0 })).toBe('3 items, 0 of 0 bytes restored; at ');
  });

  it("says a backup's files, bytes read and new bytes", () => {
    expect(progressText({ originalSize: 1000, deduplicatedSize: 10, nfiles: 4, path: 'etc/x' })).toBe('4 files, 1000 bytes read, 10 new; at etc/x');
  });
});
