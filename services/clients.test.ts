import { describe, expect, it } from 'vitest';
import { addClientInput, clientLimitsSchema, compressionSchema, parseLimitPairs } from './clients.js';

describe('client input', () => {
  it('accepts borg compression specs and refuses anything else', () => {
    for (const ok of ['none', 'lz4', 'zstd', 'zstd,22', 'zlib,0', 'lzma,9', 'auto,zstd,10', 'obfuscate,3,zstd', 'obfuscate,110,auto,lz4']) expect(compressionSchema.safeParse(ok).success, ok).toBe(true);
    for (const bad of ['zstd,23', 'gzip', 'lz4;rm -rf /', '', 'auto', 'obfuscate,7,lz4']) expect(compressionSchema.safeParse(bad).success, bad).toBe(false);
  });

  it('fills defaults and validates paths, hosts and names', () => {
    const c = addClientInput.parse({ name: 'web-1', host: 'web1.example.org', paths: ['/etc', '/srv/'] });
    expect(c).toMatchObject({ port: 22, user: 'root', borgPath: 'borg', dedupScope: 'client', compression: 'lz4', paths: ['/etc', '/srv'] });
    expect(addClientInput.safeParse({ name: 'x', host: 'h', paths: ['relative'] }).success).toBe(false);
    expect(addClientInput.safeParse({ name: 'x', host: 'h;ls', paths: ['/a'] }).success).toBe(false);
    expect(addClientInput.safeParse({ name: '-x', host: 'h', paths: ['/a'] }).success).toBe(false);
    expect(addClientInput.safeParse({ name: 'x', host: 'h', paths: ['/a/../b'] }).success).toBe(false);
    expect(addClientInput.safeParse({ name: 'x', host: 'h', port: 70000, paths: ['/a'] }).success).toBe(false);
  });
});

describe('client limits', () => {
  it('validates keys and values, and parses key=value pairs with unit suffixes', () => {
    expect(parseLimitPairs(['putsPerJob=1000', 'uploadBytesPerJob=2T'])).toEqual({ putsPerJob: 1000, uploadBytesPerJob: 2 * 2 ** 40 });
    expect(() => parseLimitPairs(['nosuch=1'])).toThrow();
    expect(() => parseLimitPairs(['putsPerJob=-1'])).toThrow();
    expect(clientLimitsSchema.safeParse({ plaintextBytesPerObject: 128 * 2 ** 20 }).success).toBe(false);
    expect(clientLimitsSchema.safeParse({ commitsPerMinute: 0 }).success).toBe(false);
  });
});
