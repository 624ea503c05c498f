import { closeSync, constants, fstatSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCleanups } from '../test/harness/cleanup.js';
import { tempDir } from '../test/harness/temp-dir.js';
import { closeAll, fdPath, openBelow, openEntries, openIn, UnsafePathError } from './no-follow.js';

const { O_RDONLY, O_DIRECTORY, O_WRONLY, O_CREAT, O_EXCL } = constants;

describe('no-follow opens', () => {
  afterAll(runCleanups);
  const anchor = tempDir('borgcube-nofollow');
  const secret = join(anchor, 'secret');
  writeFileSync(secret, 'root only\n');
  mkdirSync(join(anchor, 'storage/jobs/j1/client/cache'), { recursive: true });
  writeFileSync(join(anchor, 'storage/jobs/j1/client/cache/config'), 'cfg');
  writeFileSync(join(anchor, 'storage/jobs/j1/state.json'), '{}');

  it('opens regular files and folders below the anchor', () => {
    const fd = openBelow(anchor, join(anchor, 'storage/jobs/j1/state.json'), O_RDONLY);
    expect(readFileSync(fd, 'utf8')).toBe('{}');
    closeSync(fd);
    const dir = openBelow(anchor, join(anchor, 'storage/jobs/j1/client'), O_RDONLY | O_DIRECTORY);
    const entries = openEntries(dir);
    expect(entries.map((e) => [e.name, e.kind])).toEqual([['cache', 'dir']]);
    const inner = openEntries(entries[0]!.fd);
    expect(inner.map((e) => [e.name, e.kind, e.size])).toEqual([['config', 'file', 3]]);
    expect(readFileSync(fdPath(inner[0]!.fd), 'utf8')).toBe('cfg');
    closeAll([dir, ...entries.map((e) => e.fd), ...inner.map((e) => e.fd)]);
  });

  it('refuses a symbolic link as the last component and as a folder on the way', () => {
    symlinkSync(secret, join(anchor, 'storage/jobs/j1/linked.json'));
    expect(() => openBelow(anchor, join(anchor, 'storage/jobs/j1/linked.json'), O_RDONLY)).toThrow(UnsafePathError);
    symlinkSync(anchor, join(anchor, 'storage/jobs/j2'));
    expect(() => openBelow(anchor, join(anchor, 'storage/jobs/j2/secret'), O_RDONLY)).toThrow(/j2 is a symbolic link or not a folder; refused/);
    expect(() => openBelow(anchor, join(anchor, '../elsewhere'), O_RDONLY)).toThrow(/is not below/);
  });

  it('refuses links and FIFOs among a folder\'s entries (without hanging on the FIFO)', () => {
    const d = join(anchor, 'storage/jobs/j3');
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'ok'), 'x');
    symlinkSync(secret, join(d, 'zz-link'));
    const dir = openBelow(anchor, d, O_RDONLY | O_DIRECTORY);
    expect(() => openEntries(dir)).toThrow(UnsafePathError);
    execFileSync('rm', [join(d, 'zz-link')]);
    execFileSync('mkfifo', [join(d, 'zz-fifo')]);
    expect(() => openEntries(dir)).toThrow(/neither a file nor a folder/);
    closeSync(dir);
  });

  it('creates a new file without following a link planted under its name', () => {
    const d = openBelow(anchor, join(anchor, 'storage/jobs/j1'), O_RDONLY | O_DIRECTORY);
    symlinkSync(secret, join(anchor, 'storage/jobs/j1/out.tmp'));
    expect(() => openIn(d, 'out.tmp', O_WRONLY | O_CREAT | O_EXCL, 0o600)).toThrow(/EEXIST/);
    expect(readFileSync(secret, 'utf8')).toBe('root only\n');
    const fd = openIn(d, 'new.tmp', O_WRONLY | O_CREAT | O_EXCL, 0o600);
    expect(fstatSync(fd).mode & 0o777).toBe(0o600);
    closeAll([fd, d]);
  });
});
