// Rows for web tests that need a repository without running borg init (its secrets are never
// opened in these tests, so they are placeholders).
import { randomBytes, randomUUID } from 'node:crypto';
import type { Db } from '../../db/client.js';
import { insertRepository, type RepositoryRow } from '../../db/queries/repositories.js';

export async function insertRepositoryRow(db: Db, name: string, stats?: RepositoryRow['stats']): Promise<RepositoryRow> {
  return insertRepository(db, {
    id: randomUUID(),
    name,
    path: `/nonexistent/${name}`,
    storageHost: 'test-host',
    encryption: 'repokey',
    borgId: randomBytes(32).toString('hex'),
    keySealed: 'placeholder',
    passphraseSealed: 'placeholder',
    stats: stats ?? null,
  });
}
