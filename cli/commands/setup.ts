// The commands a deployment (and `npm start`) runs to set a server up: the database schema and
// the first console account. They take no secret from argv, where `ps` would show it.
import type { Command } from 'commander';
import { applyMigrations, createDb, ensureDatabase } from '../../db/client.js';
import { ensureInitialAdmin } from '../../services/users.js';
import { type CliContext, UsageError } from '../context.js';
import { readLine } from './user.js';

export function registerSetupCommands(program: Command, ctx: CliContext) {
  program
    .command('db')
    .description('database schema')
    .command('migrate')
    .description('create the database of DATABASE_URL if it is missing and apply the pending migrations')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      const r = await migrateDatabase(ctx.config().databaseUrl);
      if (o.json) return ctx.printJson(r);
      ctx.print(`${r.created ? 'created' : 'found'} database ${r.database}, ${r.applied ? `applied ${r.applied} migration(s)` : 'schema up to date'}`);
    });

  program
    .command('first-admin')
    .description('create the first console user, `admin`, when there is none; the password comes from stdin (--password-stdin) or BORGCUBE_ADMIN_PASSWORD, else a one-time password is generated and printed')
    .option('--password-stdin', 'read the password from the first line of stdin')
    .option('--exists-ok', 'exit 0 without a change when console users exist already')
    .option('--json', 'print JSON')
    .action(async (o: { passwordStdin?: boolean; existsOk?: boolean; json?: boolean }) => {
      const password = o.passwordStdin ? await readLine(process.stdin) : ctx.config().adminPassword;
      const r = await ensureInitialAdmin(ctx.deps(), password);
      if (!r.created && !o.existsOk) throw new UsageError('console users exist already; add more with `borgcube user add`');
      if (o.json) return ctx.printJson(r);
      if (!r.created) return ctx.print('console users exist already; nothing to do');
      ctx.print(r.password ? `created user admin; one-time password: ${r.password}` : 'created user admin with the given password');
    });
}

/** Counts the rows of drizzle's journal before and after, so that a run can say what it applied. */
async function migrateDatabase(databaseUrl: string): Promise<{ database: string; created: boolean; applied: number }> {
  const database = decodeURIComponent(new URL(databaseUrl).pathname.replace(/^\//, ''));
  const created = await ensureDatabase(databaseUrl);
  const handle = createDb(databaseUrl, { max: 1, applicationName: 'borgcube-setup' });
  try {
    const count = async () => {
      try {
        const r = await handle.pool.query<{ n: string }>('select count(*) as n from drizzle.__drizzle_migrations');
        return Number(r.rows[0]?.n ?? 0);
      } catch {
        return 0; // no migrations table yet
      }
    };
    const before = await count();
    await applyMigrations(handle.db);
    return { database, created, applied: (await count()) - before };
  } finally {
    await handle.close();
  }
}
