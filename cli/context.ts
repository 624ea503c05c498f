// Lazily built dependencies of the CLI: a command that only prints help opens nothing.
import { createDb, type DbHandle } from '../db/client.js';
import { requireAccount, type Account } from '../infra/accounts.js';
import { loadConfig, type Config } from '../infra/config.js';
import { createLogger, type Logger } from '../infra/logger.js';
import { MasterKey } from '../infra/secrets.js';
import { connectTemporal, type TemporalHandle } from '../infra/temporal.js';
import type { ServiceDeps } from '../services/deps.js';

/** Wrong use of the CLI (exit 2), as opposed to a failed operation (exit 1). */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** `--max-backups N|default` of `repo set` and `storage-host set`: a limit, or null for the server default. */
export function parseMaxBackups(value: string): number | null {
  const v = value.trim();
  if (v === 'default') return null;
  if (!/^[1-9]\d{0,3}$/.test(v)) throw new UsageError('--max-backups must be a number from 1 to 9999, or "default"');
  return Number(v);
}

export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

export interface CliContext {
  io: CliIo;
  config(): Config;
  deps(): ServiceDeps;
  log(): Logger;
  setVerbose(v: boolean): void;
  print(text: string): void;
  printJson(value: unknown): void;
  exitCode?: number;
  /** Registered cleanups (connections) run when the command ends. */
  onClose(fn: () => Promise<void> | void): void;
  close(): Promise<void>;
}

export function createCliContext(io: CliIo): CliContext {
  let config: Config | undefined;
  let db: DbHandle | undefined;
  let log: Logger | undefined;
  let verbose = false;
  let masterKey: MasterKey | undefined;
  let storage: Account | undefined;
  let temporal: Promise<TemporalHandle> | undefined;
  const closers: Array<() => Promise<void> | void> = [];
  const ctx: CliContext = {
    io,
    config: () => (config ??= loadConfig()),
    log: () => (log ??= createLogger({ name: 'cli', level: verbose ? 'debug' : 'warn' })),
    setVerbose: (v) => {
      verbose = v;
    },
    deps: () => {
      const cfg = ctx.config();
      db ??= createDb(cfg.databaseUrl, { max: 2, applicationName: 'borgcube-cli' });
      return {
        db: db.db,
        config: cfg,
        log: ctx.log(),
        masterKey: () => (masterKey ??= MasterKey.load(cfg.paths.masterKey)),
        storageAccount: () => (storage ??= requireAccount(cfg.accounts.storage)),
        temporal: async () => (await (temporal ??= connectTemporal(cfg))).client,
      };
    },
    print: (text) => io.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
    printJson: (value) => io.stdout.write(`${JSON.stringify(value, jsonReplacer, 2)}\n`),
    onClose: (fn) => closers.push(fn),
    close: async () => {
      for (const fn of closers.reverse()) await fn();
      if (db) await db.close();
      if (temporal) await (await temporal.catch(() => undefined))?.close();
      log?.flush();
    },
  };
  return ctx;
}

function jsonReplacer(_key: string, value: unknown) {
  return typeof value === 'bigint' ? value.toString() : value;
}

/** A plain text table: columns padded to their widest cell; control characters made visible. */
export function table(headers: string[], rows: Array<Array<string | number | null | undefined>>): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => printable(c == null ? '-' : String(c))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n');
}

/** Strings from clients reach a terminal: escape control characters so they cannot drive it. */
export function printable(s: string): string {
   
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
