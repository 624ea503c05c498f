import { describe, expect, it } from 'vitest';
import { modeString, type CatalogItem } from '../../services/archive-browse.js';
import { lsLines } from './archives.js';

const e = (over: Partial<CatalogItem>): CatalogItem => ({ path: Buffer.from('d/x'), name: Buffer.from('x'), type: 'file', mode: 0o100644, uid: 0, gid: 0, user: Buffer.from('root'), group: Buffer.from('wheel'), mtime: 1_700_000_000_000_000_000n, size: 12, target: null, rdev: null, implicit: false, ...over });

describe('ls output', () => {
  it('mode strings as ls -l writes them', () => {
    expect(modeString('file', 0o644)).toBe('-rw-r--r--');
    expect(modeString('dir', 0o1777)).toBe('drwxrwxrwt');
    expect(modeString('file', 0o4755)).toBe('-rwsr-xr-x');
    expect(modeString('file', 0o2644)).toBe('-rw-r-Sr--');
    expect(modeString('symlink', 0o777)).toBe('lrwxrwxrwx');
  });

  it('one line per entry; names with control characters or other bytes are escaped', () => {
    const lines = lsLines([e({}), e({ name: Buffer.from('evil\n\x1b[2J'), size: 3 }), e({ type: 'symlink', name: Buffer.from([0x6c, 0xff]), target: Buffer.from('t') })], false);
    expect(lines[0]).toBe('-rw-r--r-- root wheel 12 2023-11-14 22:13:20 x');
    expect(lines[1]).toContain('evil\\n\\x1b[2J');
    expect(lines[2]).toMatch(/l\\xff -> t$/);
    expect(lines.join('\n')).not.toMatch(/[\x00-\x08\x0b-\x1f]/);
  });
});
