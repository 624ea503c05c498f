import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configVariables, loadConfig } from './config.js';

describe('configuration', () => {
  it('has working defaults for the local stack', () => {
    const c = loadConfig({});
    expect(c.databaseUrl).toBe('postgres://postgres@127.0.0.1:5432/borgcube');
    expect(c.ssh).toMatchObject({ port: 2222, keyPath: '/var/lib/borgcube/ssh/id_ed25519' });
    expect(c.web.publicUrl).toBe('http://127.0.0.1:8080');
    expect(c.paths.storageSocket).toBe('/var/lib/borgcube/run/storage.sock');
  });

  it('names every bad variable in one actionable message', () => {
    expect(() => loadConfig({ DATABASE_URL: 'mysql://x', BORGCUBE_SSH_PORT: '0', BORGCUBE_DATA_DIR: 'relative' })).toThrow(
      /DATABASE_URL="mysql:\/\/x": must be a URL starting with postgres:\/\/ or postgresql:\/\/; BORGCUBE_DATA_DIR="relative": must be an absolute path; BORGCUBE_SSH_PORT="0": .*README/,
    );
  });

  it('is documented in the README table, with the same defaults', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    for (const [name, v] of Object.entries(configVariables)) {
      const row = readme.split('\n').find((l) => l.startsWith(`| \`${name}\` |`));
      expect(row, `README has no row for ${name}`).toBeDefined();
      expect(row).toContain(v.def ? `\`${v.def}\`` : '—');
    }
  });
});
