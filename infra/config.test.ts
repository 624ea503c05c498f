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

  it('builds the Temporal security settings: TLS implied by its files or an API key, external when not the local dev server', () => {
    expect(loadConfig({}).temporal).toMatchObject({ tls: undefined, apiKey: undefined, external: false });
    expect(loadConfig({ TEMPORAL_ADDRESS: 'temporal.example.org:7233' }).temporal).toMatchObject({ tls: undefined, external: true });
    const mtls = loadConfig({ TEMPORAL_TLS_CERT: '/etc/t/c.pem', TEMPORAL_TLS_KEY: '/etc/t/k.pem', TEMPORAL_TLS_CA: '/etc/t/ca.pem', TEMPORAL_TLS_SERVER_NAME: 'temporal.internal' });
    expect(mtls.temporal).toMatchObject({ tls: { certPath: '/etc/t/c.pem', keyPath: '/etc/t/k.pem', caPath: '/etc/t/ca.pem', serverName: 'temporal.internal' }, external: true });
    expect(loadConfig({ TEMPORAL_API_KEY: 'abc.def-123' }).temporal).toMatchObject({ tls: {}, apiKey: { value: 'abc.def-123' }, external: true });
    expect(loadConfig({ TEMPORAL_API_KEY_FILE: '/run/credentials/temporal-key' }).temporal.apiKey).toEqual({ file: '/run/credentials/temporal-key' });
    expect(loadConfig({ TEMPORAL_TLS: 'true' }).temporal).toMatchObject({ tls: {}, external: true });
  });

  it('refuses incomplete or contradictory Temporal TLS settings', () => {
    expect(() => loadConfig({ TEMPORAL_TLS_CERT: '/c.pem' })).toThrow(/TEMPORAL_TLS_KEY="": TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY go together/);
    expect(() => loadConfig({ TEMPORAL_TLS: 'false', TEMPORAL_TLS_CA: '/ca.pem' })).toThrow(/TEMPORAL_TLS_CA="\/ca.pem": needs TLS, but TEMPORAL_TLS=false/);
    expect(() => loadConfig({ TEMPORAL_API_KEY: 'k1', TEMPORAL_API_KEY_FILE: '/k' })).toThrow(/not both/);
    expect(() => loadConfig({ TEMPORAL_TLS: 'yes' })).toThrow(/TEMPORAL_TLS="yes": must be true or false/);
    expect(() => loadConfig({ TEMPORAL_TLS_KEY: 'relative.pem', TEMPORAL_TLS_CERT: '/c.pem' })).toThrow(/TEMPORAL_TLS_KEY="relative.pem": must be an absolute path/);
  });

  it('never prints a secret variable in its error', () => {
    const err = (() => {
      try {
        loadConfig({ TEMPORAL_API_KEY: 'secret with spaces', BORGCUBE_METRICS_TOKEN: 'short-secret', TEMPORAL_TLS: 'false' });
      } catch (e) {
        return (e as Error).message;
      }
      return '';
    })();
    expect(err).toMatch(/TEMPORAL_API_KEY=\(hidden\): must be printable/);
    expect(err).toMatch(/BORGCUBE_METRICS_TOKEN=\(hidden\)/);
    expect(err).not.toMatch(/secret with spaces|short-secret/);
  });
});
