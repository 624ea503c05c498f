import { describe, expect, it } from 'vitest';
import type { Job } from '../../../db/schema.js';
import { sessionPolicyFor } from './policies.js';

const job = (over: Partial<Job>): Job => ({ id: '5afdb41d-5cd2-4a18-8aef-d7dbacfa99e3', kind: 'backup', state: 'running', clientId: 'c', archiveName: 'web-2026-01-01T00-00-00', ...over }) as Job;

describe('session policies', () => {
  it('backups may use every operation the forced command forwards', () => {
    const p = sessionPolicyFor('backup');
    expect([...(p?.allows ?? [])].sort()).toEqual(['commit', 'delete', 'get', 'getManifest', 'nonce', 'put', 'putManifest', 'rollback']);
    expect(p?.refuses(job({}))).toBeUndefined();
    expect(p?.refuses(job({ archiveName: null }))).toBe('no such running job');
    expect(p?.refuses(job({ clientId: null }))).toBe('no such running job');
  });

  it('restores may only read, and need a restore spec', () => {
    const p = sessionPolicyFor('restore');
    expect([...(p?.allows ?? [])].sort()).toEqual(['get', 'getManifest', 'rollback']);
    expect(p?.readOnly).toBe(true);
    const spec = { archiveId: 'a', archiveBorgId: 'b'.repeat(64), archiveName: 'web-1', sourceClientId: 'c', paths: [], target: '/var/tmp/x', inPlace: false, stripComponents: 0 };
    expect(p?.refuses(job({ kind: 'restore', archiveName: null, restore: spec }))).toBeUndefined();
    expect(p?.refuses(job({ kind: 'restore', archiveName: null, restore: null }))).toBe('no such running job');
    expect(p?.refuses(job({ kind: 'restore', clientId: null, restore: spec }))).toBe('no such running job');
    // A backup job never gets the restore policy's reads, nor a restore job the backup's writes.
    expect(p?.refuses(job({ kind: 'backup', restore: spec }))).toBe('no such running job');
    expect(sessionPolicyFor('backup')?.readOnly).toBeFalsy();
  });

  it('other job kinds open no repository session', () => {
    for (const kind of ['prune', 'check'] as const) expect(sessionPolicyFor(kind)).toBeUndefined();
  });
});
