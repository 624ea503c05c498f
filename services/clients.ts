// Clients: the hosts BorgCube pulls backups from.
import { z } from 'zod';
import * as clients from '../db/queries/clients.js';
import { borgDeploy, JOB_LIMIT_DEFAULTS, type Client, type ClientLimits, type JobLimits } from '../db/schema.js';
import { readServerPrivateKey } from '../infra/server-key.js';
import { SshConnection, SshError, type SshTarget } from '../infra/ssh.js';
import { describeClientBorgPlan } from './client-borg.js';
import type { ServiceDeps } from './deps.js';
import { conflict, failed, notFound, uniqueViolation } from './errors.js';
import { absolutePathSchema, hostSchema, nameSchema, portSchema, unixUserSchema } from './validation.js';

const excludePattern = z
  .string()
  .min(1)
  .max(4096)
  .refine((p) => !/[\0\n\r]/.test(p), 'must not contain NUL or newlines');

/** borg's --compression spec (`borg help compression`): none, lz4, zstd[,1-22], zlib[,0-9], lzma[,0-9], auto,…, obfuscate,N,… */
const compressionBase = '(?:none|lz4|zstd(?:,(?:[1-9]|1\\d|2[0-2]))?|zlib(?:,\\d)?|lzma(?:,\\d)?)';
export const compressionSchema = z
  .string()
  .regex(new RegExp(`^(?:obfuscate,(?:[1-6]|11\\d|12[0-3]),)?(?:auto,)?${compressionBase}$`), 'must be a borg compression spec such as lz4, zstd,3, zlib,6, lzma,6 or auto,zstd');

/** A borg executable on the client: an absolute path, or a bare command name looked up on PATH. */
const borgPathSchema = z.union([absolutePathSchema, z.string().regex(/^[A-Za-z0-9._+-]{1,64}$/, 'must be an absolute path or a command name')]);

/**
 * What a job does when the client's borg is missing or not 1.2.x/1.4.x (activities/remote-borg/
 * client-borg.ts decideClientBorg): deploy the server's borg into the job folder, or fail before
 * anything is pushed.
 */
export const borgDeploySchema = z.enum(borgDeploy.enumValues).describe('if-missing: deploy the server’s borg only where there is none; if-unsupported: also instead of a borg other than 1.2.x/1.4.x; always; never');

const limitValue = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);
/** Overrides of a job's cost bounds (db/schema/clients.ts JobLimits); absent keys keep the defaults. */
export const clientLimitsSchema = z
  .object(Object.fromEntries(Object.keys(JOB_LIMIT_DEFAULTS).map((k) => [k, limitValue])) as Record<keyof JobLimits, typeof limitValue>)
  .partial()
  .strict()
  // The service's decoders refuse more than 64 MiB of plaintext per object whatever is configured.
  .refine((l) => (l.plaintextBytesPerObject ?? 0) <= 64 * 2 ** 20, { message: 'plaintextBytesPerObject is at most 64 MiB', path: ['plaintextBytesPerObject'] }) satisfies z.ZodType<ClientLimits>;

/** `key=value` pairs (CLI flags, form fields) as limits; values accept K/M/G/T suffixes (powers of 1024). */
export function parseLimitPairs(pairs: readonly string[]): ClientLimits {
  const out: Record<string, number> = {};
  for (const p of pairs) {
    const m = /^([A-Za-z]+)=(\d+)([KMGT]?)$/.exec(p.trim());
    if (!m) throw new z.ZodError([{ code: 'custom', path: ['limits'], message: `${JSON.stringify(p)} is not key=number (e.g. putsPerJob=1000000, uploadBytesPerJob=2T)`, input: p }]);
    out[m[1]!] = Number(m[2]) * 1024 ** ' KMGT'.indexOf(m[3] || ' ');
  }
  return clientLimitsSchema.parse(out);
}

export const clientFields = {
  host: hostSchema,
  port: portSchema.default(22),
  user: unixUserSchema.default('root'),
  paths: z.array(absolutePathSchema).min(1, 'at least one path to back up is needed').max(256),
  excludes: z.array(excludePattern).max(1024).default([]),
  borgPath: borgPathSchema.default('borg'),
  borgDeploy: borgDeploySchema.default('if-missing'),
  dedupScope: z.enum(['client', 'repository']).default('client'),
  compression: compressionSchema.default('lz4'),
  limits: clientLimitsSchema.default({}),
};

export const addClientInput = z.object({ name: nameSchema, ...clientFields });
export type AddClientInput = z.input<typeof addClientInput>;

export const updateClientInput = z
  .object({
    host: clientFields.host,
    port: portSchema,
    user: unixUserSchema,
    paths: clientFields.paths,
    excludes: z.array(excludePattern).max(1024),
    borgPath: borgPathSchema,
    borgDeploy: borgDeploySchema,
    dedupScope: z.enum(['client', 'repository']),
    compression: compressionSchema,
    limits: clientLimitsSchema,
  })
  .partial();
export type UpdateClientInput = z.input<typeof updateClientInput>;

export type ClientView = Client;

export async function addClient(deps: Pick<ServiceDeps, 'db' | 'log'>, raw: AddClientInput): Promise<ClientView> {
  const input = addClientInput.parse(raw);
  if (await clients.findClientByName(deps.db, input.name)) throw conflict(`client ${JSON.stringify(input.name)} already exists`);
  try {
    const row = await clients.insertClient(deps.db, {
      name: input.name,
      host: input.host,
      port: input.port,
      sshUser: input.user,
      paths: input.paths,
      excludes: input.excludes,
      borgPath: input.borgPath,
      borgDeploy: input.borgDeploy,
      dedupScope: input.dedupScope,
      compression: input.compression,
      limits: input.limits,
    });
    deps.log.info({ client: row.name, host: row.host }, 'client added');
    return row;
  } catch (err) {
    if (uniqueViolation(err)) throw conflict(`client ${JSON.stringify(input.name)} already exists`);
    throw err;
  }
}

export async function updateClient(deps: Pick<ServiceDeps, 'db' | 'log'>, name: string, raw: UpdateClientInput): Promise<ClientView> {
  const input = updateClientInput.parse(raw);
  const existing = await getClient(deps, name);
  const patch: Parameters<typeof clients.updateClient>[2] = {};
  if (input.host !== undefined) patch.host = input.host;
  if (input.port !== undefined) patch.port = input.port;
  if (input.user !== undefined) patch.sshUser = input.user;
  if (input.paths !== undefined) patch.paths = input.paths;
  if (input.excludes !== undefined) patch.excludes = input.excludes;
  if (input.borgPath !== undefined) patch.borgPath = input.borgPath;
  if (input.borgDeploy !== undefined) patch.borgDeploy = input.borgDeploy;
  if (input.dedupScope !== undefined) patch.dedupScope = input.dedupScope;
  if (input.compression !== undefined) patch.compression = input.compression;
  if (input.limits !== undefined) patch.limits = input.limits;
  // A different address is a different machine as far as host-key pinning is concerned.
  if ((patch.host && patch.host !== existing.host) || (patch.port && patch.port !== existing.port)) {
    patch.hostKey = null;
    patch.hostKeyFingerprint = null;
  }
  const row = await clients.updateClient(deps.db, existing.id, patch);
  if (!row) throw notFound('client', name);
  return row;
}

export async function listClients(deps: Pick<ServiceDeps, 'db'>): Promise<ClientView[]> {
  return clients.listClients(deps.db);
}

/** Clients a page holds at most (console and API). */
export const CLIENT_PAGE_MAX = 500;

export const listClientsInput = z.object({
  search: z.string().trim().max(200).optional().describe('only clients whose name contains this text (case-insensitive)'),
  cursor: z.string().max(200).optional().describe('`nextCursor` of the previous page'),
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(CLIENT_PAGE_MAX)
    .optional()
    .describe(`clients per page (1-${CLIENT_PAGE_MAX}; 100 when only \`cursor\` is given). Without \`limit\` and \`cursor\` the answer holds every matching client, as before pagination (slow with thousands: pass a limit)`),
});

export interface ClientPage {
  clients: ClientView[];
  /** Pass as `cursor` for the next page; null on the last one. */
  nextCursor: string | null;
  /** Clients matching the search, on every page together. */
  total: number;
}

/**
 * A page of clients in name order, optionally those whose name contains `search`. Keyset
 * pagination on the unique name: the cursor is the page's last name, so a client added or
 * removed meanwhile neither repeats nor skips another. Without `limit` and `cursor`, every
 * matching client (the API's answer before pagination, kept for its callers).
 */
export async function listClientsPage(deps: Pick<ServiceDeps, 'db'>, raw: z.input<typeof listClientsInput>): Promise<ClientPage> {
  const input = listClientsInput.parse(raw);
  const search = input.search || undefined;
  const paged = input.limit !== undefined || input.cursor !== undefined;
  const limit = input.limit ?? 100;
  const [rows, total] = await Promise.all([
    clients.listClientsPage(deps.db, paged ? { search, after: input.cursor, limit: limit + 1 } : { search }),
    clients.countClients(deps.db, search),
  ]);
  if (!paged || rows.length <= limit) return { clients: rows, nextCursor: null, total };
  const page = rows.slice(0, limit);
  return { clients: page, nextCursor: page.at(-1)!.name, total };
}

/** Names for a drop-down: at most `limit` (a page offers a text field instead when there are more). */
export async function listClientNames(deps: Pick<ServiceDeps, 'db'>, limit: number): Promise<string[]> {
  return clients.listClientNames(deps.db, limit);
}

export async function getClient(deps: Pick<ServiceDeps, 'db'>, name: string): Promise<ClientView> {
  const row = await clients.findClientByName(deps.db, name);
  if (!row) throw notFound('client', name);
  return row;
}

export async function removeClient(deps: Pick<ServiceDeps, 'db' | 'log'>, name: string): Promise<void> {
  const row = await getClient(deps, name);
  await clients.deleteClient(deps.db, row.id);
  deps.log.info({ client: name }, 'client removed');
}

/** Forgets the pinned host key, so that the next contact pins the key the host presents then. */
export async function forgetClientHostKey(deps: Pick<ServiceDeps, 'db'>, name: string): Promise<ClientView> {
  const row = await getClient(deps, name);
  return (await clients.updateClient(deps.db, row.id, { hostKey: null, hostKeyFingerprint: null }))!;
}

export function clientTarget(c: Pick<Client, 'host' | 'port' | 'sshUser'>): SshTarget {
  return { host: c.host, port: c.port, username: c.sshUser };
}

/**
 * Connects with the server's key, verifying the host key: pinned → must match; not pinned →
 * pinned now (trust on first use, recorded before anything else is sent to the host).
 */
export async function connectClient(
  deps: Pick<ServiceDeps, 'db' | 'config' | 'log'>,
  client: Client,
  opts: { signal?: AbortSignal; readyTimeoutMs?: number } = {},
): Promise<{ conn: SshConnection; pinnedNow: boolean }> {
  const conn = await SshConnection.connect(clientTarget(client), {
    privateKey: readServerPrivateKey(deps.config.ssh.keyPath),
    pinnedHostKey: client.hostKey,
    signal: opts.signal,
    readyTimeoutMs: opts.readyTimeoutMs,
  });
  if (client.hostKey) return { conn, pinnedNow: false };
  const updated = await clients.pinHostKey(deps.db, client, conn.hostKey.key, conn.hostKey.fingerprint);
  if (!updated) {
    // Changed while we connected: another first contact pinned a key (the same one is fine), or
    // an edit changed the address (the key we saw belongs to the old one and must not be pinned).
    const now = await clients.findClientById(deps.db, client.id);
    const same = now && now.host === client.host && now.port === client.port && now.sshUser === client.sshUser && now.hostKey === conn.hostKey.key;
    if (same) return { conn, pinnedNow: false };
    conn.close();
    if (!now) throw notFound('client', client.name);
    throw conflict(`client ${client.name} was changed while connecting to it (its address or pinned host key); try again`);
  }
  deps.log.info({ client: client.name, fingerprint: conn.hostKey.fingerprint }, 'host key pinned');
  return { conn, pinnedNow: true };
}

export interface ClientTestResult {
  client: string;
  hostKeyFingerprint: string;
  pinnedNow: boolean;
  borgVersion: string | null;
  borgPath: string;
  borgDeploy: Client['borgDeploy'];
  /** What a job would do with that borg under the deploy mode (services/client-borg.ts). */
  borgPlan: string;
  missingPaths: string[];
}

/** `client test`: SSH in, pin or check the host key, report the borg version and missing paths. */
export async function testClient(deps: Pick<ServiceDeps, 'db' | 'config' | 'log'>, name: string, opts: { signal?: AbortSignal } = {}): Promise<ClientTestResult> {
  const client = await getClient(deps, name);
  let conn: SshConnection;
  let pinnedNow: boolean;
  try {
    ({ conn, pinnedNow } = await connectClient(deps, client, { signal: opts.signal, readyTimeoutMs: 15_000 }));
  } catch (err) {
    if (err instanceof SshError) throw failed(err.message);
    throw err;
  }
  try {
    const version = await probeBorgVersion(conn, client.borgPath, opts.signal);
    const missing: string[] = [];
    for (const p of client.paths) {
      const r = await conn.exec(['test', '-e', p], { timeoutMs: 15_000, signal: opts.signal });
      if (r.code !== 0) missing.push(p);
    }
    await clients.updateClient(deps.db, client.id, { borgVersion: version, lastSeenAt: new Date() });
    return {
      client: client.name,
      hostKeyFingerprint: conn.hostKey.fingerprint,
      pinnedNow,
      borgVersion: version,
      borgPath: client.borgPath,
      borgDeploy: client.borgDeploy,
      borgPlan: describeClientBorgPlan(client.borgDeploy, client.borgPath, version),
      missingPaths: missing,
    };
  } finally {
    conn.close();
  }
}

/** `<borg> --version` on the client: "1.2.4", or null when there is no borg at that path. */
export async function probeBorgVersion(conn: SshConnection, borgPath: string, signal?: AbortSignal): Promise<string | null> {
  const r = await conn.exec([borgPath, '--version'], { timeoutMs: 30_000, maxOutput: 4096, signal });
  if (r.code !== 0) return null;
  const m = /\bborg(?:-linux64)? (\d+\.\d+\.\d+\S*)/.exec(r.stdout.toString('utf8'));
  if (!m) throw failed(`${borgPath} --version on the client printed something that is not a borg version`);
  return m[1]!;
}
