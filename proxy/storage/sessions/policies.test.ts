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

  it('other job kinds open no repository session', () => {
    for (const kind of ['restore', 'prune', 'check'] as const) expect(sessionPolicyFor(kind)).toBeUndefined();
  });
});
