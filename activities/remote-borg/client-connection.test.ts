// warm: the connection a storage worker opens while a job is prepared goes idle for the push,
// and one whose SFTP fails is closed, never kept (the database and the SSH connect are stand-ins).
import { describe, expect, it, vi } from 'vitest';
import type { Db } from '../../db/client.js';
import type { Config } from '../../infra/config.js';
import { createLogger } from '../../infra/logger.js';
import type { SshConnection } from '../../infra/ssh.js';
import { SshPool } from '../../infra/ssh-pool.js';
import { createClientConnections } from './client-connection.js';

interface World {
  /** The client's pinned host key (null: never contacted). */
  hostKey: string | null;
  sftp: () => Promise<unknown>;
  connects: number;
  closes: number;
}
const world = vi.hoisted((): World => ({ hostKey: 'ssh-ed25519 AAAA', sftp: () => Promise.resolve({}), connects: 0, closes: 0 }));
vi.mock('../../db/queries/jobs.js', () => ({ findJob: () => Promise.resolve({ id: 'j', clientId: 'c' }) }));
vi.mock('../../db/queries/clients.js', () => ({
  findClientById: () => Promise.resolve({ id: 'c', name: 'web1', host: '127.0.0.1', port: 22, sshUser: 'u', hostKey: world.hostKey }),
}));
vi.mock('../../services/clients.js', () => ({
  connectClient: () => {
    world.connects++;
    const conn = { isClosed: false, sftp: world.sftp, close: () => void (world.closes++, (conn.isClosed = true)) };
    return Promise.resolve({ conn: conn as unknown as SshConnection, pinnedNow: false });
  },
}));

/** Warms job j's client on a fresh pool and waits until that has settled. */
async function warmed(): Promise<SshPool> {
  world.connects = 0;
  world.closes = 0;
  const pool = new SshPool(60_000);
  const { warm } = createClientConnections({ db: {} as Db, config: {} as Config, log: createLogger({ name: 'test', level: 'silent' }) }, pool);
  warm('j');
  await new Promise((r) => setTimeout(r, 20));
  return pool;
}

describe('warm', () => {
  it('opens one connection to the job’s client, with SFTP, and keeps it idle for the next step', async () => {
    world.hostKey = 'ssh-ed25519 AAAA';
    world.sftp = () => Promise.resolve({});
    const pool = await warmed();
    expect(world.connects).toBe(1);
    expect(pool.size).toBe(1);
    expect(world.closes).toBe(0);
  });

  it('closes a connection whose SFTP fails instead of keeping it', async () => {
    world.sftp = () => Promise.reject(new Error('subsystem request failed'));
    const pool = await warmed();
    expect(world.connects).toBe(1);
    expect(world.closes).toBe(1);
    expect(pool.size).toBe(0);
  });

  it('opens nothing to a client whose host key is not pinned yet (its first contact pins it)', async () => {
    world.hostKey = null;
    world.sftp = () => Promise.resolve({});
    const pool = await warmed();
    expect(world.connects).toBe(0);
    expect(pool.size).toBe(0);
  });
});
