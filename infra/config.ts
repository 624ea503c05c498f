// Configuration from the environment, parsed once at start by each composition root.
// Every variable has a default that serves the local stack `npm start` brings up; a bad value
// stops the process with one message per problem naming the variable and what it expects.
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { z } from 'zod';

const port = z.string().regex(/^\d{1,5}$/, "must be a port number").transform(Number).pipe(z.number().int().min(1).max(65535));
const absPath = z.string().refine((p) => isAbsolute(p), 'must be an absolute path');
const url = (protocols: string[]) =>
  z.string().refine((s) => {
    try {
      return protocols.includes(new URL(s).protocol);
    } catch {
      return false;
    }
  }, `must be a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}`);
const hostPort = z.string().regex(/^[A-Za-z0-9.\-[\]:]+:\d{1,5}$/, 'must be host:port, e.g. 127.0.0.1:7233');
const accountName = z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'must be a valid Unix account name');

/** Environment variables, their defaults and their meaning; the README table is generated from this list. */
export const configVariables = {
  DATABASE_URL: { def: 'postgres://postgres@127.0.0.1:5432/borgcube', doc: 'PostgreSQL connection URL (the database is created by `npm start` if missing)' },
  REDIS_URL: { def: 'redis://127.0.0.1:6379/0', doc: 'Redis URL: live progress and log events' },
  TEMPORAL_ADDRESS: { def: '127.0.0.1:7233', doc: 'Temporal frontend (gRPC) host:port' },
  TEMPORAL_NAMESPACE: { def: 'default', doc: 'Temporal namespace of all BorgCube workflows' },
  TEMPORAL_UI_URL: { def: 'http://127.0.0.1:8233', doc: 'Temporal Web UI, used for links from the console and CLI' },
  BORGCUBE_TASK_QUEUE: { def: 'borgcube', doc: 'Task queue of the workflows and client activities (storage hosts use `storage-<host>`)' },
  TEMPORAL_CLI_PATH: { def: '', doc: 'A `temporal` CLI to run the dev server with (else `temporal` on PATH, else built into .tools/)' },
  BORGCUBE_DATA_DIR: { def: '/var/lib/borgcube', doc: 'State: master key, SSH keys, sshd config, Temporal DB, job caches (0700)' },
  BORGCUBE_SSH_HOST: { def: '127.0.0.1', doc: "Host name or address clients use to reach BorgCube's sshd" },
  BORGCUBE_SSH_PORT: { def: '2222', doc: "Port of BorgCube's own sshd (the host's main sshd is left alone)" },
  BORGCUBE_SSH_KEY: { def: '', doc: 'Private key the server logs into clients with (default <data dir>/ssh/id_ed25519, created if missing)' },
  BORGCUBE_WEB_HOST: { def: '127.0.0.1', doc: 'Address the web console listens on' },
  BORGCUBE_WEB_PORT: { def: '8080', doc: 'Port of the web console' },
  BORGCUBE_PUBLIC_URL: { def: '', doc: 'URL users open the console at (default http://<web host>:<web port>)' },
  BORGCUBE_TRUSTED_PROXIES: {
    def: '',
    doc: 'Comma-separated addresses of reverse proxies in front of the console (e.g. 127.0.0.1); only their X-Forwarded-For is believed. Set it when one forwards to the console, or every visitor counts as the proxy for login limits',
  },
  BORGCUBE_STORAGE_HOST: { def: '', doc: 'Name of this storage host; its task queue is `storage-<name>` (default: the host name)' },
  BORGCUBE_PROXY_USER: { def: 'borgcube', doc: 'Unprivileged account clients log in as; its forced command is the proxy' },
  BORGCUBE_STORAGE_USER: { def: 'borgcube-storage', doc: 'Account that owns the repositories and runs the repository service' },
  BORGCUBE_SESSION_OPEN_TIMEOUT: { def: '30', doc: 'Seconds a proxy connection may take to open its job before the repository service closes it' },
  BORGCUBE_SESSION_IDLE_PREEMPT: { def: '300', doc: 'Seconds a backup session may wait for its silent client while a prune, check or admin borg command waits for the repository; then it is ended' },
  BORGCUBE_BORG_PATH: { def: '/usr/bin/borg', doc: 'borg executable used on the server' },
  BORGCUBE_DEPLOY_BORG: { def: '', doc: 'borg executable uploaded to clients that have none (default: BORGCUBE_BORG_PATH)' },
  BORGCUBE_ADMIN_PASSWORD: { def: '', doc: 'Password of the first admin account; when empty, a one-time password is printed at first start' },
  BORGCUBE_METRICS_TOKEN: { def: '', doc: 'Bearer token Prometheus sends to GET /metrics (API tokens work too); empty = /metrics answers loopback callers only' },
  BORGCUBE_ALERT_SWEEP_INTERVAL: { def: '5m', doc: 'How often the staleness sweep runs (a Temporal Schedule): a number with s, m or h' },
  BORGCUBE_MAX_BACKUPS_PER_HOST: {
    def: '8',
    doc: 'Backups that may run at once on one storage host (a storage host row may override it); more wait as `queued`',
  },
  BORGCUBE_MAX_BACKUPS_PER_REPOSITORY: {
    def: '4',
    doc: 'Backups that may run at once into one repository (`borgcube repo set NAME --max-backups N` overrides it); more wait as `queued`',
  },
  BORGCUBE_SCHEDULE_JITTER: {
    def: '5m',
    doc: "Default random delay (up to this) of each scheduled backup, prune and check, so a fleet's schedules do not all start in the same second; a number with s, m or h, or 0 (a policy's --jitter overrides it)",
  },
  LOG_LEVEL: { def: 'info', doc: 'pino log level: fatal, error, warn, info, debug, trace' },
} as const;

type VarName = keyof typeof configVariables;
const env = (name: VarName) => z.string().default(configVariables[name].def);

const schema = z
  .object({
    DATABASE_URL: env('DATABASE_URL').pipe(url(['postgres:', 'postgresql:'])),
    REDIS_URL: env('REDIS_URL').pipe(url(['redis:', 'rediss:'])),
    TEMPORAL_ADDRESS: env('TEMPORAL_ADDRESS').pipe(hostPort),
    TEMPORAL_NAMESPACE: env('TEMPORAL_NAMESPACE').pipe(z.string().min(1)),
    TEMPORAL_UI_URL: env('TEMPORAL_UI_URL').pipe(url(['http:', 'https:'])),
    BORGCUBE_TASK_QUEUE: env('BORGCUBE_TASK_QUEUE').pipe(z.string().regex(/^[A-Za-z0-9._-]{1,100}$/, 'letters, digits, dots, dashes and underscores')),
    TEMPORAL_CLI_PATH: env('TEMPORAL_CLI_PATH').pipe(z.union([z.literal(''), absPath])),
    BORGCUBE_DATA_DIR: env('BORGCUBE_DATA_DIR').pipe(absPath),
    BORGCUBE_SSH_HOST: env('BORGCUBE_SSH_HOST').pipe(z.string().regex(/^[A-Za-z0-9.\-:]+$/, 'must be a host name or IP address')),
    BORGCUBE_SSH_PORT: env('BORGCUBE_SSH_PORT').pipe(port),
    BORGCUBE_SSH_KEY: env('BORGCUBE_SSH_KEY').pipe(z.union([z.literal(''), absPath])),
    BORGCUBE_WEB_HOST: env('BORGCUBE_WEB_HOST').pipe(z.string().min(1)),
    BORGCUBE_WEB_PORT: env('BORGCUBE_WEB_PORT').pipe(port),
    BORGCUBE_TRUSTED_PROXIES: env('BORGCUBE_TRUSTED_PROXIES').pipe(
      z
        .string()
        .transform((v) => v.split(',').map((a) => a.trim()).filter(Boolean))
        .pipe(z.array(z.string().refine((a) => isIP(a) !== 0, 'must be IP addresses separated by commas'))),
    ),
    BORGCUBE_PUBLIC_URL: env('BORGCUBE_PUBLIC_URL').pipe(z.union([z.literal(''), url(['http:', 'https:'])])),
    BORGCUBE_STORAGE_HOST: env('BORGCUBE_STORAGE_HOST').pipe(z.union([z.literal(''), z.string().regex(/^[A-Za-z0-9.-]{1,63}$/, 'letters, digits, dots and dashes only')])),
    BORGCUBE_PROXY_USER: env('BORGCUBE_PROXY_USER').pipe(accountName),
    BORGCUBE_STORAGE_USER: env('BORGCUBE_STORAGE_USER').pipe(accountName),
    BORGCUBE_SESSION_OPEN_TIMEOUT: env('BORGCUBE_SESSION_OPEN_TIMEOUT').pipe(z.string().regex(/^[1-9]\d{0,4}$/, 'must be a number of seconds, 1-99999')).transform(Number),
    BORGCUBE_SESSION_IDLE_PREEMPT: env('BORGCUBE_SESSION_IDLE_PREEMPT').pipe(z.string().regex(/^[1-9]\d{0,5}$/, 'must be a number of seconds, 1-999999')).transform(Number),
    BORGCUBE_BORG_PATH: env('BORGCUBE_BORG_PATH').pipe(absPath),
    BORGCUBE_DEPLOY_BORG: env('BORGCUBE_DEPLOY_BORG').pipe(z.union([z.literal(''), absPath])),
    BORGCUBE_ADMIN_PASSWORD: env('BORGCUBE_ADMIN_PASSWORD'),
    BORGCUBE_METRICS_TOKEN: env('BORGCUBE_METRICS_TOKEN').pipe(z.union([z.literal(''), z.string().regex(/^[\x21-\x7e]{16,200}$/, 'must be 16-200 printable characters without spaces')])),
    BORGCUBE_ALERT_SWEEP_INTERVAL: env('BORGCUBE_ALERT_SWEEP_INTERVAL').pipe(z.string().regex(/^[1-9]\d{0,5}[smh]$/, 'must be a number with s, m or h, e.g. 5m')),
    BORGCUBE_MAX_BACKUPS_PER_HOST: env('BORGCUBE_MAX_BACKUPS_PER_HOST').pipe(z.string().regex(/^[1-9]\d{0,3}$/, 'must be a number of backups, 1-9999')).transform(Number),
    BORGCUBE_MAX_BACKUPS_PER_REPOSITORY: env('BORGCUBE_MAX_BACKUPS_PER_REPOSITORY').pipe(z.string().regex(/^[1-9]\d{0,3}$/, 'must be a number of backups, 1-9999')).transform(Number),
    BORGCUBE_SCHEDULE_JITTER: env('BORGCUBE_SCHEDULE_JITTER').pipe(z.string().regex(/^(0|[1-9]\d{0,5}[smh])$/, 'must be 0 or a number with s, m or h, e.g. 5m')).transform(durationSeconds),
    LOG_LEVEL: env('LOG_LEVEL').pipe(z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])),
  })
  .transform((e) => {
    const dataDir = e.BORGCUBE_DATA_DIR;
    const storageHost = e.BORGCUBE_STORAGE_HOST || hostname().split('.')[0]!.replace(/[^A-Za-z0-9.-]/g, '-');
    return {
      databaseUrl: e.DATABASE_URL,
      redisUrl: e.REDIS_URL,
      temporal: {
        address: e.TEMPORAL_ADDRESS,
        namespace: e.TEMPORAL_NAMESPACE,
        uiUrl: e.TEMPORAL_UI_URL.replace(/\/+$/, ''),
        taskQueue: e.BORGCUBE_TASK_QUEUE,
        cliPath: e.TEMPORAL_CLI_PATH || undefined,
      },
      dataDir,
      paths: dataPaths(dataDir),
      ssh: {
        host: e.BORGCUBE_SSH_HOST,
        port: e.BORGCUBE_SSH_PORT,
        keyPath: e.BORGCUBE_SSH_KEY || join(dataDir, 'ssh', 'id_ed25519'),
      },
      web: {
        host: e.BORGCUBE_WEB_HOST,
        port: e.BORGCUBE_WEB_PORT,
        publicUrl: (e.BORGCUBE_PUBLIC_URL || `http://${e.BORGCUBE_WEB_HOST}:${e.BORGCUBE_WEB_PORT}`).replace(/\/+$/, ''),
        trustedProxies: e.BORGCUBE_TRUSTED_PROXIES,
      },
      storageHost,
      accounts: { proxy: e.BORGCUBE_PROXY_USER, storage: e.BORGCUBE_STORAGE_USER },
      proxy: { openTimeoutMs: e.BORGCUBE_SESSION_OPEN_TIMEOUT * 1000, idlePreemptMs: e.BORGCUBE_SESSION_IDLE_PREEMPT * 1000 },
      borg: { path: e.BORGCUBE_BORG_PATH, deployPath: e.BORGCUBE_DEPLOY_BORG || e.BORGCUBE_BORG_PATH },
      adminPassword: e.BORGCUBE_ADMIN_PASSWORD || undefined,
      metrics: { token: e.BORGCUBE_METRICS_TOKEN || undefined },
      alerts: { sweepInterval: e.BORGCUBE_ALERT_SWEEP_INTERVAL },
      queue: { maxBackupsPerHost: e.BORGCUBE_MAX_BACKUPS_PER_HOST, maxBackupsPerRepository: e.BORGCUBE_MAX_BACKUPS_PER_REPOSITORY },
      schedules: { jitterSeconds: e.BORGCUBE_SCHEDULE_JITTER },
      logLevel: e.LOG_LEVEL,
    };
  });

export type Config = z.output<typeof schema>;

/** Seconds of a duration written as a number with s, m or h ("0" is zero). */
export function durationSeconds(s: string): number {
  const m = /^(\d+)([smh]?)$/.exec(s.trim());
  if (!m) throw new Error(`not a duration: ${JSON.stringify(s)}`);
  return Number(m[1]) * (m[2] === 'h' ? 3600 : m[2] === 'm' ? 60 : 1);
}

/** Where things live under the data dir. One function so that every process agrees. */
export function dataPaths(dataDir: string) {
  return {
    masterKey: join(dataDir, 'master.key'),
    sshDir: join(dataDir, 'ssh'),
    sshdDir: join(dataDir, 'sshd'),
    runDir: join(dataDir, 'run'),
    /** Proxy sessions and the AuthorizedKeysCommand connect here (group = proxy account). */
    storageSocket: join(dataDir, 'run', 'storage.sock'),
    /** Admin operations (root / storage account only). */
    controlSocket: join(dataDir, 'run', 'control.sock'),
    storageDir: join(dataDir, 'storage'),
    temporalDir: join(dataDir, 'temporal'),
    logDir: join(dataDir, 'logs'),
    /** Borg's config/cache/security folders for server-side admin runs with the real key (root only). */
    adminBorgDir: join(dataDir, 'admin-borg'),
  };
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Parses the environment; throws a ConfigError whose message lists every bad variable. */
export function loadConfig(source: NodeJS.ProcessEnv = process.env): Config {
  const picked: Record<string, string | undefined> = {};
  for (const name of Object.keys(configVariables)) {
    const v = source[name];
    picked[name] = v === undefined || v === '' ? undefined : v;
  }
  const parsed = schema.safeParse(picked);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => {
      const name = String(i.path[0] ?? '?');
      return `${name}=${JSON.stringify(picked[name] ?? '')}: ${i.message}`;
    });
    throw new ConfigError(`invalid configuration: ${lines.join('; ')} (see the configuration table in README.md)`);
  }
  return parsed.data;
}
