// Database dumps (issue 24 point 2): what a client's backups stream into the archive besides its
// files, one archive entry per database, and what a restore may stream back into a database.
// Every name here ends up as an argument of a dump or load tool on a client (quoted once, never
// re-interpreted by a shell): the character sets below also keep each one from reading as an
// option or as a connection string (pg_dump takes a database "name" with '=' as conninfo).
import { posix } from 'node:path';
import { z } from 'zod';
import { updateClient as updateClientRow } from '../db/queries/clients.js';
import type { Client, DumpSpec } from '../db/schema.js';
import { getClient } from './clients.js';
import type { ServiceDeps } from './deps.js';
import { invalid } from './errors.js';
import { absolutePathSchema, formatZodError, hostSchema, portSchema, unixUserSchema } from './validation.js';

/** A database name as the dump and load tools get it (PostgreSQL and MySQL both allow 63/64 bytes). */
export const databaseNameSchema = z
  .string()
  .regex(/^[A-Za-z0-9_][A-Za-z0-9_$.-]{0,62}$/, 'a database name is 1-63 letters, digits, "_", "$", "." or "-", not starting with "-", "." or "$"');

/** A database account name: no '=' or leading '-', nothing a tool could read as something else. */
const dbUserSchema = z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,62}$/, 'a database user is 1-63 letters, digits, "_", ".", "@" or "-"');

/** A PostgreSQL host may also be the folder of its socket. */
const dbHostSchema = z.union([absolutePathSchema, hostSchema]);

const connectionFields = {
  host: dbHostSchema.optional(),
  port: portSchema.optional(),
  user: dbUserSchema.optional(),
  sudoUser: unixUserSchema.optional(),
};

const postgresqlDump = z
  .object({ kind: z.literal('postgresql'), database: databaseNameSchema.optional(), all: z.boolean().optional(), format: z.enum(['plain', 'custom']).default('plain'), ...connectionFields })
  .strict()
  .refine((d) => (d.database !== undefined) !== (d.all === true), 'a PostgreSQL dump names one database or is of all of them (all: true)')
  .refine((d) => !(d.all && d.format === 'custom'), 'pg_dumpall writes plain SQL only: the custom format needs one database');
const mysqlDump = z.object({ kind: z.literal('mysql'), database: databaseNameSchema, defaultsFile: absolutePathSchema.optional(), ...connectionFields }).strict();
const sqliteDump = z.object({ kind: z.literal('sqlite'), path: absolutePathSchema.refine((p) => p !== '/', 'must be a file') }).strict();

export const dumpSpecSchema = z.union([postgresqlDump, mysqlDump, sqliteDump]) satisfies z.ZodType<DumpSpec, unknown>;

/** The client's dumps: each becomes its own archive entry, so no two may share one. */
export const dumpListSchema = z
  .array(dumpSpecSchema)
  .max(64, 'at most 64 dumps per client')
  .superRefine((list, ctx) => {
    const seen = new Map<string, number>();
    list.forEach((d, i) => {
      const entry = dumpEntry(d);
      const first = seen.get(entry);
      if (first !== undefined) ctx.addIssue({ code: 'custom', path: [i], message: `dumps ${first + 1} and ${i + 1} would both be stored as ${entry}` });
      else seen.set(entry, i);
    });
  });

/** An SQLite file's entry name: its base name without a .sqlite3/.sqlite/.db extension. */
const sqliteName = (path: string) => posix.basename(path).replace(/\.(sqlite3?|db)$/, '') || 'db';

/**
 * The dump's path in the archive: `pgsql/<db>.sql` (`.dump` in the custom format, `all.sql` for
 * the whole cluster), `mysql/<db>.sql`, `sqlite/<name>.sql` (SQL text from `.dump`: SQLite's
 * backup API writes pages at random offsets and cannot write into a pipe).
 */
export function dumpEntry(d: DumpSpec): string {
  switch (d.kind) {
    case 'postgresql':
      return d.all ? 'pgsql/all.sql' : `pgsql/${d.database}.${d.format === 'custom' ? 'dump' : 'sql'}`;
    case 'mysql':
      return `mysql/${d.database}.sql`;
    case 'sqlite':
      return `sqlite/${sqliteName(d.path)}.sql`;
  }
}

/** One line of text per dump, as the CLI and the console show it. */
export function describeDump(d: DumpSpec): string {
  const via = (c: { host?: string; port?: number; user?: string; sudoUser?: string }) =>
    [c.host && `host ${c.host}`, c.port && `port ${c.port}`, c.user && `user ${c.user}`, c.sudoUser && `as ${c.sudoUser} (sudo)`].filter(Boolean).join(', ');
  const tail = (s: string) => (s ? ` (${s})` : '');
  switch (d.kind) {
    case 'postgresql':
      return `${dumpEntry(d)}: PostgreSQL ${d.all ? 'all databases (pg_dumpall)' : `database ${d.database}, ${d.format} format`}${tail(via(d))}`;
    case 'mysql':
      return `${dumpEntry(d)}: MySQL database ${d.database}${tail([via(d), d.defaultsFile && `defaults file ${d.defaultsFile}`].filter(Boolean).join(', '))}`;
    case 'sqlite':
      return `${dumpEntry(d)}: SQLite file ${d.path}`;
  }
}

/** A client's dumps as stored (an old or hand-edited row that no longer validates is shown, not run). */
export function clientDumps(client: Pick<Client, 'name' | 'dumps'>): DumpSpec[] {
  const parsed = dumpListSchema.safeParse(client.dumps ?? []);
  if (!parsed.success) throw invalid(`the dumps of client ${client.name} are not valid: ${formatZodError(parsed.error)}`);
  return parsed.data;
}

/** The client's dumps as lines of text for its page; never throws (a bad row is said to be one). */
export function dumpLines(client: Pick<Client, 'name' | 'dumps'>): string[] {
  const parsed = dumpListSchema.safeParse(client.dumps ?? []);
  if (!parsed.success) return [`not valid (backups fail until fixed): ${formatZodError(parsed.error)}`];
  return parsed.data.map((d, i) => `${i + 1}. ${describeDump(d)}`);
}

/** Changes to a client's dumps: add some, remove some (1-based, as listed), or clear them all. */
export const changeDumpsInput = z
  .object({
    // Checked with the rest of the list (dumpListSchema), so that a bad one is named by its place.
    add: z.array(z.unknown()).max(64).default([]),
    remove: z.array(z.number().int().min(1)).max(64).default([]),
    clear: z.boolean().default(false),
  })
  .strict();
export type ChangeDumpsInput = z.input<typeof changeDumpsInput>;

export async function changeClientDumps(deps: Pick<ServiceDeps, 'db' | 'log'>, name: string, raw: ChangeDumpsInput): Promise<DumpSpec[]> {
  const parsed = changeDumpsInput.safeParse(raw);
  if (!parsed.success) throw invalid(formatZodError(parsed.error));
  const { add, remove, clear } = parsed.data;
  const client = await getClient(deps, name);
  const current = clear ? [] : clientDumps(client);
  for (const n of remove) if (n > current.length) throw invalid(`client ${client.name} has ${current.length} dump(s): there is no dump ${n}`);
  const kept = current.filter((_, i) => !remove.includes(i + 1));
  return storeDumps(deps, client, [...kept, ...add]);
}

/** Replaces a client's dumps with `dumps` (the API's PUT). */
export const setDumpsInput = z.object({ dumps: dumpListSchema }).strict();
export type SetDumpsInput = z.input<typeof setDumpsInput>;

export async function setClientDumps(deps: Pick<ServiceDeps, 'db' | 'log'>, name: string, raw: SetDumpsInput): Promise<DumpSpec[]> {
  const parsed = setDumpsInput.safeParse(raw);
  if (!parsed.success) throw invalid(formatZodError(parsed.error));
  return storeDumps(deps, await getClient(deps, name), parsed.data.dumps);
}

async function storeDumps(deps: Pick<ServiceDeps, 'db' | 'log'>, client: Client, dumps: unknown[]): Promise<DumpSpec[]> {
  const next = dumpListSchema.safeParse(dumps);
  if (!next.success) throw invalid(`dumps: ${formatZodError(next.error)}`);
  await updateClientRow(deps.db, client.id, { dumps: next.data });
  deps.log.info({ client: client.name, dumps: next.data.map(dumpEntry) }, 'client dumps changed');
  return next.data;
}

/** A client's dumps as the API lists them: each with its archive entry and a line of text. */
export function dumpListView(dumps: DumpSpec[]) {
  return dumps.map((d, i) => ({ n: i + 1, entry: dumpEntry(d), description: describeDump(d), spec: d }));
}

/** Which dump an archive entry holds, by its name (dumpEntry's scheme). */
export type DumpEntryKind = { kind: 'postgresql'; format: 'plain' | 'custom' } | { kind: 'mysql' } | { kind: 'sqlite' };

export function dumpEntryKind(entry: string): DumpEntryKind | undefined {
  if (/^pgsql\/[^/]+\.sql$/.test(entry)) return { kind: 'postgresql', format: 'plain' };
  if (/^pgsql\/[^/]+\.dump$/.test(entry)) return { kind: 'postgresql', format: 'custom' };
  if (/^mysql\/[^/]+\.sql$/.test(entry)) return { kind: 'mysql' };
  if (/^sqlite\/[^/]+\.sql$/.test(entry)) return { kind: 'sqlite' };
  return undefined;
}

/**
 * A restore of one dump entry into a database on the target client: a PostgreSQL or MySQL
 * database the job creates (it must not exist: a restore never loads into existing data), or a
 * new SQLite file. The connection fields work as a dump's.
 */
export const dumpRestoreSchema = z
  .object({
    entry: z.string().min(1).max(200),
    /** A database name, or for SQLite the new file's absolute path. */
    into: z.string().min(1).max(4096),
    ...connectionFields,
    defaultsFile: absolutePathSchema.optional(),
  })
  .strict()
  .superRefine((r, ctx) => {
    const k = dumpEntryKind(r.entry);
    if (!k) return ctx.addIssue({ code: 'custom', path: ['entry'], message: `${JSON.stringify(r.entry)} is not a dump entry (pgsql/<db>.sql or .dump, mysql/<db>.sql, sqlite/<name>.sql)` });
    if (r.entry === 'pgsql/all.sql') ctx.addIssue({ code: 'custom', path: ['entry'], message: 'pgsql/all.sql holds the whole cluster (roles and every database): restore it as a file and load it by hand' });
    const into = k.kind === 'sqlite' ? absolutePathSchema.safeParse(r.into) : databaseNameSchema.safeParse(r.into);
    if (!into.success) ctx.addIssue({ code: 'custom', path: ['into'], message: `${k.kind === 'sqlite' ? 'the new SQLite file' : 'the database'} ${into.error.issues[0]?.message ?? 'is not valid'}` });
    if (k.kind === 'sqlite' && (r.host || r.port || r.user || r.sudoUser || r.defaultsFile)) ctx.addIssue({ code: 'custom', path: ['host'], message: 'an SQLite restore takes no connection options' });
    if (k.kind !== 'mysql' && r.defaultsFile) ctx.addIssue({ code: 'custom', path: ['defaultsFile'], message: 'a defaults file is for MySQL only' });
  });
export type DumpRestoreInput = z.input<typeof dumpRestoreSchema>;
