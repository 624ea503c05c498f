import { describe, expect, it } from 'vitest';
import { keyExportText, recoveryKitText, type RecoveryKit } from './recovery-kit.js';

const id = 'ab'.repeat(32);

describe('recovery kit', () => {
  it('writes a repokey blob as `borg key export` does: the header with the repository id, then the blob', () => {
    expect(keyExportText({ encryption: 'repokey', borgId: id }, 'hqlhbGdvcml0aG2mc2hhMjU2\npGRhdGHaAN4=\n')).toBe(`BORG_KEY ${id}\nhqlhbGdvcml0aG2mc2hhMjU2\npGRhdGHaAN4=\n`);
  });

  it('hands a key file on as it is, and refuses one of another repository', () => {
    expect(keyExportText({ encryption: 'keyfile', borgId: id }, `BORG_KEY ${id}\nhqlh`)).toBe(`BORG_KEY ${id}\nhqlh\n`);
    expect(() => keyExportText({ encryption: 'keyfile-blake2', borgId: id }, `BORG_KEY ${'cd'.repeat(32)}\nhqlh\n`)).toThrow(/does not name its id/);
  });

  it('prints the instructions before the repositories', () => {
    const kit: RecoveryKit = {
      format: 'borgcube-recovery-kit',
      version: 1,
      createdAt: '2026-12-06T00:00:00.000Z',
      createdBy: 'cli:root',
      borgVersion: 'borg 1.2.4',
      instructions: ['Keep this kit offline.'],
      repositories: [{ name: 'main', borgId: id, encryption: 'repokey', storageHost: 'st', path: '/srv/borg/main', sshUrl: 'ssh://root@st/srv/borg/main', keyExport: `BORG_KEY ${id}\nblob\n`, passphrase: 'pw' }],
    };
    const text = recoveryKitText(kit);
    expect(text.indexOf('Keep this kit offline.')).toBeLessThan(text.indexOf('=== repository main ==='));
    expect(text).toContain(`passphrase  pw\nkey (borg key export):\nBORG_KEY ${id}\nblob\n`);
  });
});
