// The console's few static files (web/static/): read once, served from memory with an ETag.
// Pages link them as /static/<file>?v=<hash>, so a versioned URL may be cached for a year and a
// new build is picked up at once.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Hono } from 'hono';
import type { WebEnv } from './env.js';

// Compiled code runs from dist/web/; the files stay in the source tree's web/static.
export const staticDir = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../web/static' : './static', import.meta.url));

const types: Record<string, string> = {
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
};

interface Asset {
  body: Uint8Array<ArrayBuffer>;
  type: string;
  hash: string;
}

let assets: Map<string, Asset> | undefined;

function load(): Map<string, Asset> {
  if (assets) return assets;
  assets = new Map();
  for (const name of readdirSync(staticDir)) {
    const type = types[extname(name)];
    if (!type) continue;
    const buf = readFileSync(join(staticDir, name));
    const body = new Uint8Array(new ArrayBuffer(buf.length));
    body.set(buf);
    assets.set(name, { body, type, hash: createHash('sha256').update(buf).digest('hex').slice(0, 16) });
  }
  return assets;
}

/** The versioned URL of a static file. */
export function assetUrl(name: string): string {
  const a = load().get(name);
  if (!a) throw new Error(`web/static/${name} does not exist`);
  return `/static/${name}?v=${a.hash}`;
}

export function staticFiles() {
  const app = new Hono<WebEnv>();
  app.get('/:name', (c) => {
    const a = load().get(c.req.param('name'));
    if (!a) return c.text('not found', 404);
    const etag = `"${a.hash}"`;
    const versioned = c.req.query('v') === a.hash;
    c.header('Cache-Control', versioned ? 'public, max-age=31536000, immutable' : 'public, max-age=300');
    c.header('ETag', etag);
    if (c.req.header('if-none-match') === etag) return c.body(null, 304);
    c.header('Content-Type', a.type);
    return c.body(a.body);
  });
  return app;
}
