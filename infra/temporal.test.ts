import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';
import { describeTemporal, temporalConnectError, temporalConnectionOptions } from './temporal.js';

const dir = mkdtempSync(join(tmpdir(), 'borgcube-temporal-options-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string, mode = 0o600) => {
  const p = join(dir, name);
  writeFileSync(p, text, { mode });
  chmodSync(p, mode);
  return p;
};
const cert = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const key = '-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n';

describe('Temporal connection options from the configuration', () => {
  it('plain TCP by default: only the address', () => {
    expect(temporalConnectionOptions(loadConfig({ TEMPORAL_ADDRESS: '10.0.0.5:7233' }))).toEqual({ address: '10.0.0.5:7233' });
  });

  it('mTLS: the files are read into the SDK options; the API key file is trimmed', () => {
    const cfg = loadConfig({
      TEMPORAL_ADDRESS: 'ns.acct.tmprl.cloud:7233',
      TEMPORAL_TLS_CERT: file('c.pem', cert, 0o644),
      TEMPORAL_TLS_KEY: file('k.pem', key, 0o640),
      TEMPORAL_TLS_CA: file('ca.pem', cert, 0o644),
      TEMPORAL_TLS_SERVER_NAME: 'temporal.internal',
      TEMPORAL_API_KEY_FILE: file('api-key', 'key-123.abc\n'),
    });
    const o = temporalConnectionOptions(cfg);
    expect(o.address).toBe('ns.acct.tmprl.cloud:7233');
    expect(o.tls?.serverNameOverride).toBe('temporal.internal');
    expect(o.tls?.serverRootCACertificate?.toString()).toBe(cert);
    expect(o.tls?.clientCertPair?.key.toString()).toBe(key);
    expect(o.apiKey).toBe('key-123.abc');
    // What goes into log lines names files, never their contents or the key.
    const described = describeTemporal(cfg);
    expect(described).toBe(`ns.acct.tmprl.cloud:7233 (namespace default, TLS with a client certificate, CA ${join(dir, 'ca.pem')}, server name temporal.internal, API key)`);
    expect(described).not.toContain('key-123');
  });

  it('an API key alone (Temporal Cloud): TLS with the system CAs', () => {
    expect(temporalConnectionOptions(loadConfig({ TEMPORAL_ADDRESS: 'a.b.tmprl.cloud:7233', TEMPORAL_API_KEY: 'xyz' }))).toEqual({ address: 'a.b.tmprl.cloud:7233', tls: {}, apiKey: 'xyz' });
  });

  it('bad files: one line naming the variable and the path, never the content', () => {
    const opts = (over: Record<string, string>) => () => temporalConnectionOptions(loadConfig({ TEMPORAL_TLS_CERT: file('c2.pem', cert, 0o644), TEMPORAL_TLS_KEY: file('k2.pem', key), ...over }));
    expect(opts({ TEMPORAL_TLS_KEY: join(dir, 'nope.pem') })).toThrow(`TEMPORAL_TLS_KEY=${join(dir, 'nope.pem')}: cannot read it: ENOENT`);
    expect(opts({ TEMPORAL_TLS_KEY: file('open.pem', key, 0o644) })).toThrow(/TEMPORAL_TLS_KEY=.*open\.pem: readable by every account \(mode 644\); chmod o-r/);
    expect(opts({ TEMPORAL_TLS_CA: file('notpem.pem', 'hello') })).toThrow(/TEMPORAL_TLS_CA=.*notpem\.pem: not a PEM certificate/);
    expect(opts({ TEMPORAL_TLS_KEY: file('cert-as-key.pem', cert) })).toThrow(/TEMPORAL_TLS_KEY=.*: not a PEM private key/);
    const secret = file('bad-key', 'two words here');
    let msg = '';
    try {
      temporalConnectionOptions(loadConfig({ TEMPORAL_API_KEY_FILE: secret }));
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toMatch(/TEMPORAL_API_KEY_FILE=.*: must hold one API key/);
    expect(msg).not.toContain('two words');
  });

  it('a connection failure says where, how, and what to check; credentials refused say so', () => {
    const cfg = loadConfig({ TEMPORAL_TLS: 'true', TEMPORAL_ADDRESS: 't.example:7233' });
    const handshake = temporalConnectError(cfg, new Error('Failed to connect to Temporal server', { cause: Object.assign(new Error('14 UNAVAILABLE: handshake failed'), { code: 14 }) }));
    expect(handshake.message).toMatch(/^cannot connect to Temporal at t\.example:7233 \(namespace default, TLS\): Failed to connect to Temporal server: 14 UNAVAILABLE: handshake failed \(with TLS: check/);
    const refused = temporalConnectError(cfg, new Error('Failed to connect to Temporal server', { cause: Object.assign(new Error('16 UNAUTHENTICATED: bad key'), { code: 16 }) }));
    expect(refused.message).toMatch(/16 UNAUTHENTICATED: bad key \(the server refused the credentials/);
  });
});
