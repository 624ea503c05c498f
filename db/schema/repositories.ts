// Borg repositories on the server, with the key material sealed (see db/schema.ts).
import { integer, jsonb, pgEnum, pgTable, text, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { createdAt } from './columns.js';

export const encryptionMode = pgEnum('encryption_mode', ['repokey', 'repokey-blake2', 'keyfile', 'keyfile-blake2']);
export const dedupScope = pgEnum('dedup_scope', ['client', 'repository']);

export const repositoriesTable = pgTable(
  'repositories',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    name: text('name').notNull().unique(),
    /** Absolute path on the storage host. */
    path: text('path').notNull(),
    /** Which storage host holds it; its activities run on the task queue `storage-<host>`. */
    storageHost: text('storage_host').notNull(),
    encryption: encryptionMode('encryption').notNull(),
    /** Borg's repository id (hex), from the repository config. */
    borgId: text('borg_id').notNull(),
    /** The key text (key file or repokey), sealed. Kept for keyfile modes, and as a copy for repokey. */
    keySealed: text('key_sealed').notNull(),
    passphraseSealed: text('passphrase_sealed').notNull(),
    createdAt: createdAt(),
    /** Figures of the last refresh (finalize, prune, check): whole repository, bytes. */
    stats: jsonb('stats').$type<RepositoryStats>(),
    /** Backups into this repository that may run at once; null = the server's default. */
    maxConcurrentBackups: integer('max_concurrent_backups'),
  },
  (t) => [uniqueIndex('repositories_host_path_idx').on(t.storageHost, t.path)],
);
export type Repository = typeof repositoriesTable.$inferSelect;
export interface RepositoryStats {
  archives: number;
  originalSize: number;
  compressedSize: number;
  uniqueSize: number;
  uniqueCompressedSize: number;
  updatedAt: string;
}
