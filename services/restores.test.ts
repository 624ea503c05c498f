import { describe, expect, it } from 'vitest';
import { archivePathSchema, defaultRestoreTarget, startRestoreInput } from './restores.js';

describe('restore input', () => {
  it('normalises archive paths to borg form and refuses what would select something else', () => {
    expect(archivePathSchema.parse('/etc/hosts')).toBe('etc/hosts');
    expect(archivePathSchema.parse('srv/www/')).toBe('srv/www');
    expect(archivePathSchema.parse('weird name/re:x')).toBe('weird name/re:x');
    for (const bad of ['', '/', '//', 'a/../b', '../etc', 'a//b', './a', 'a/.', 'a\0b', 'a\nb']) expect(archivePathSchema.safeParse(bad).success, JSON.stringify(bad)).toBe(false);
  });

  it('fills defaults and refuses a relative target, a target with in place, a bad strip count', () => {
    expect(startRestoreInput.parse({ archive: 'a' })).toEqual({ archive: 'a', inPlace: false, paths: [], stripComponents: 0 });
    expect(startRestoreInput.parse({ archive: 'a', target: '/srv/restore/', paths: ['/x'] })).toMatchObject({ target: '/srv/restore', paths: ['x'] });
    const bad = [
      { archive: 'a', target: 'relative/dir' },
      { archive: 'a', target: '/srv/../etc' },
      { archive: 'a', target: '/tmp/x', inPlace: true },
      { archive: 'a', stripComponents: -1 },
      { archive: 'a', stripComponents: 1.5 },
      { archive: '' },
      { archive: 'a', unknown: 1 },
    ];
    for (const b of bad) expect(startRestoreInput.safeParse(b).success, JSON.stringify(b)).toBe(false);
    const both = startRestoreInput.safeParse({ archive: 'a', target: '/tmp/x', inPlace: true });
    expect(both.error?.issues.map((i) => i.message)).toEqual(['give either a target directory or in place, not both']);
  });

  it('restores into a new directory named after the job by default', () => {
    expect(defaultRestoreTarget('0b6f3c1e-8a57-4c55-9a0e-3f5c2b1d7e90')).toBe('/var/tmp/borgcube-restore-0b6f3c1e-8a57-4c55-9a0e-3f5c2b1d7e90');
  });
});
