// Service-layer dependencies for code under test or under measurement that calls services
// directly instead of through a process.
import type { Client } from '@temporalio/client';
import { requireAccount } from '../../infra/accounts.js';
import { loadConfig, type Config } from '../../infra/config.js';
import { createLogger } from '../../infra/logger.js';
import { MasterKey } from '../../infra/secrets.js';
import type { ServiceDeps } from '../../services/deps.js';
import { unavailable } from '../../services/errors.js';
import type { TestDatabase } from './db.js';

/** Bound to a stack: its data dir's master key, its storage account, its Temporal client (if any). */
export function stackDeps(db: TestDatabase, config: Config, temporal: Client | undefined): ServiceDeps {
  let masterKey: MasterKey | undefined;
  return {
    db: db.handle.db,
    config,
    log: createLogger({ name: 'harness', level: 'warn' }),
    masterKey: () => (masterKey ??= MasterKey.load(config.paths.masterKey)),
    storageAccount: () => requireAccount(config.accounts.storage),
    temporal: () => (temporal ? Promise.resolve(temporal) : Promise.reject(new Error('this stack runs without Temporal'))),
  };
}

/** A database and nothing else (the web app's pages and API): the rest fails when used. */
export function databaseOnlyDeps(db: TestDatabase): ServiceDeps {
  return {
    db: db.handle.db,
    config: loadConfig({ ...process.env, DATABASE_URL: db.url }),
    log: createLogger({ name: 'harness', level: 'silent' }),
    masterKey: () => {
      throw new Error('no master key here');
    },
    storageAccount: () => {
      throw new Error('no storage account here');
    },
    temporal: () => Promise.reject(unavailable('no Temporal here')),
  };
}
