// Storage hosts: each holds repositories, runs the repository service, its storage worker (task
// queue `storage-<name>`) and its own sshd, which clients reach at ssh_host:ssh_port.
import { integer, pgTable, text, timestamp } from 'drizzle-orm/pg-core';
import { createdAt } from './columns.js';

export const storageHostsTable = pgTable('storage_hosts', {
  /** repositories.storage_host names it. */
  name: text('name').primaryKey(),
  /** Where clients reach this host's sshd (the proxy). */
  sshHost: text('ssh_host').notNull(),
  sshPort: integer('ssh_port').notNull(),
  /** Backups on this host that may run at once; null = the server's default. */
  maxConcurrentBackups: integer('max_concurrent_backups'),
  createdAt: createdAt(),
  /** Last time its storage worker registered or reported in. */
  lastSeenAt: timestamp('last_seen_at', { withTimezone: true }),
});
export type StorageHost = typeof storageHostsTable.$inferSelect;
