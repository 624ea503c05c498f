import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../infra/logger.js';
import { catalogList, catalogTar, CatalogRequestError } from './catalog-client.js';
import { Catalog } from './catalog/catalog.js';
import { serveControl } from './control.js';

describe('catalog requests on the control socket', () => {
  const dir = mkdtempSync(join(tmpdir(), 'control-'));
  const socket = join(dir, 'control.sock');
  const log = createLogger({ name: 'test', level: 'silent' });
  const repository = (id: string) => Promise.reject(new Error(`repository ${id} does not exist`));
  const catalog = new Catalog({ config: { paths: { storageDir: dir } }, log, repository });
  let server: Server;
  const ref = { repositoryId: '0b7c5f1e-8a8e-4d4e-9b1a-3f1f6f9f2a10', archiveId: 'ab'.repeat(32) };

  beforeAll(async () => {
    server = createServer((sock) => serveControl(sock, { log, repository, catalog }));
    await new Promise<void>((r) => server.listen(socket, r));
  });
  afterAll(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('without a running service: unavailable', async () => {
    const err = await catalogList(join(dir, 'nope.sock'), ref, Buffer.alloc(0), 0, 10).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CatalogRequestError);
    expect((err as CatalogRequestError).code).toBe('unavailable');
  });

  it('a request outside the schema closes the connection without an answer', async () => {
    await expect(catalogList(socket, ref, Buffer.alloc(0), 0, 5000)).rejects.toThrow('the repository service closed the connection');
    await expect(catalogList(socket, { ...ref, archiveId: '../../etc' }, Buffer.alloc(0), 0, 10)).rejects.toThrow('closed the connection');
  });

  it('a failure on the service side is one error line', async () => {
    const err = await catalogList(socket, ref, Buffer.alloc(0), 0, 10).catch((e: unknown) => e);
    expect((err as CatalogRequestError).code).toBe('failed');
    expect((err as Error).message).toBe(`the repository service could not read the archive: repository ${ref.repositoryId} does not exist`);
    await expect(catalogTar(socket, ref, [], { size: true })).rejects.toThrow(/does not exist/);
  });
});
