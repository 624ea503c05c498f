// The database's source of truth (STYLE.md §11), one file per aggregate in db/schema/. drizzle-kit
// reads this file (drizzle.config.ts) and generates the migrations in db/migrations from it; they
// are never edited by hand.
//
// Secrets (repository passphrases and keys, job keys) are stored only as sealed text produced by
// infra/secrets.ts (AES-256-GCM under the server master key, bound to the row they belong to);
// the columns are named *Sealed and are never selected by list/show queries.
export * from './schema/users.js';
export * from './schema/repositories.js';
export * from './schema/storage-hosts.js';
export * from './schema/clients.js';
export * from './schema/policies.js';
export * from './schema/jobs.js';
export * from './schema/archives.js';
export * from './schema/checks.js';
export * from './schema/alerts.js';
export * from './schema/audit.js';
