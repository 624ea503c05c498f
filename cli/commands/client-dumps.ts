// `borgcube client dumps NAME`: the database dumps each backup of the client streams into its
// archive (issue 24 point 2): listed, added, removed or cleared. Credentials are never options
// here: the dump tools read them from the client's own configuration.
import type { Command } from 'commander';
import type { DumpSpec } from '../../db/schema.js';
import { changeClientDumps, clientDumps, describeDump } from '../../services/dumps.js';
import { getClient } from '../../services/clients.js';
import { UsageError, type CliContext } from '../context.js';

const collect = (v: string, prev: string[] = []) => [...prev, v];

interface DumpsOptions {
  addPostgresql: string[];
  addPostgresqlAll?: boolean;
  addMysql: string[];
  addSqlite: string[];
  format?: string;
  dbHost?: string;
  dbPort?: string;
  dbUser?: string;
  sudoUser?: string;
  defaultsFile?: string;
  remove: string[];
  clear?: boolean;
  json?: boolean;
}

/** The dumps the options add; the connection options apply to each PostgreSQL and MySQL one. */
function dumpsToAdd(o: DumpsOptions): unknown[] {
  const port = o.dbPort === undefined ? undefined : Number(o.dbPort);
  const conn = { host: o.dbHost, port, user: o.dbUser, sudoUser: o.sudoUser };
  const pg = { kind: 'postgresql', format: o.format ?? 'plain', ...conn };
  const out: unknown[] = [
    ...o.addPostgresql.map((database) => ({ ...pg, database })),
    ...(o.addPostgresqlAll ? [{ ...pg, all: true }] : []),
    ...o.addMysql.map((database) => ({ kind: 'mysql', database, ...conn, defaultsFile: o.defaultsFile })),
    ...o.addSqlite.map((path) => ({ kind: 'sqlite', path })),
  ];
  // Drop absent options, so that the service's strict schema sees only what was given.
  return out.map((d) => Object.fromEntries(Object.entries(d as Record<string, unknown>).filter(([, v]) => v !== undefined)));
}

export function clientDumpsCommand(client: Command, ctx: CliContext) {
  client
    .command('dumps')
    .description("show or change the database dumps streamed into the client's archives (pgsql/<db>.sql, mysql/<db>.sql, sqlite/<name>.sql)")
    .argument('<name>')
    .option('--add-postgresql <db>', 'add a pg_dump of this database (repeatable)', collect, [])
    .option('--add-postgresql-all', 'add a pg_dumpall of the whole cluster (plain SQL)')
    .option('--add-mysql <db>', 'add a mysqldump --single-transaction of this database (repeatable)', collect, [])
    .option('--add-sqlite <path>', 'add a dump of this SQLite file (repeatable)', collect, [])
    .option('--format <format>', 'PostgreSQL: plain (SQL, restored with psql) or custom (pg_dump -Fc, restored with pg_restore)')
    .option('--db-host <host>', 'database host, address or PostgreSQL socket folder (default: the tool\'s)')
    .option('--db-port <port>', 'database port')
    .option('--db-user <user>', 'database user (its password, if any, comes from the client: ~/.pgpass, ~/.my.cnf)')
    .option('--sudo-user <user>', 'run the dump tool as this account with sudo -n (e.g. postgres)')
    .option('--defaults-file <path>', 'MySQL: option file on the client with the credentials')
    .option('--remove <n>', 'remove dump number N as listed (repeatable)', collect, [])
    .option('--clear', 'remove every dump')
    .option('--json', 'print JSON')
    .action(async (name: string, o: DumpsOptions) => {
      const add = dumpsToAdd(o);
      const remove = o.remove.map((n) => {
        if (!/^\d+$/.test(n)) throw new UsageError('--remove takes a dump number as listed');
        return Number(n);
      });
      let dumps: DumpSpec[];
      if (add.length || remove.length || o.clear) dumps = await changeClientDumps(ctx.deps(), name, { add, remove, clear: Boolean(o.clear) });
      else dumps = clientDumps(await getClient(ctx.deps(), name));
      if (o.json) return ctx.printJson(dumps);
      ctx.print(dumps.length ? dumps.map((d, i) => `${i + 1}. ${describeDump(d)}`).join('\n') : `client ${name} has no database dumps`);
    });
}
