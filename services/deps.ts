// What the service layer needs. The CLI and the web app build one of these in their composition
// roots; tests pass real services (PostgreSQL, Temporal) and a temporary data dir.
import type { Db } from '../db/client.js';
import type { Config } from '../infra/config.js';
import type { Logger } from '../infra/logger.js';
import type { MasterKey } from '../infra/secrets.js';
import type { Account } from '../infra/accounts.js';
import type { Client as TemporalClient } from '@temporalio/client';

export interface ServiceDeps {
  db: Db;
  config: Config;
  log: Logger;
  /** Loaded on first use: only operations that touch secrets need it. */
  masterKey(): MasterKey;
  /** The account that owns repositories and runs `borg serve`. */
  storageAccount(): Account;
  /** Connected on first use: only operations on workflows need it. */
  temporal(): Promise<TemporalClient>;
}
