import { describe, expect, it } from 'vitest';
import { dumpEntry, dumpListSchema, dumpRestoreSchema } from './dumps.js';

describe('dump specs', () => {
  it('names one archive entry per database', () => {
    const list = dumpListSchema.parse([
      { kind: 'postgresql', database: 'app' },
      { kind: 'postgresql', database: 'app', format: 'custom' },
      { kind: 'postgresql', all: true },
      { kind: 'mysql', database: 'shop' },
      { kind: 'sqlite', path: '/var/lib/app/data.sqlite3' },
    ]);
    expect(list.map(dumpEntry)).toEqual(['pgsql/app.sql', 'pgsql/app.dump', 'pgsql/all.sql', 'mysql/shop.sql', 'sqlite/data.sql']);
  });

  it('refuses what a tool could read as something else, two dumps of one entry, and a database and all at once', () => {
    for (const bad of [
      { kind: 'postgresql', database: '-h evil' },
      { kind: 'postgresql', database: 'host=evil' },
      { kind: 'postgresql', database: 'app', all: true },
      { kind: 'postgresql' },
      { kind: 'postgresql', all: true, format: 'custom' },
      { kind: 'postgresql', database: 'app', password: 'x' },
      { kind: 'mysql', database: 'a', user: '--init-command=x' },
      { kind: 'sqlite', path: 'relative.db' },
    ]) {
      expect(dumpListSchema.safeParse([bad]).success, JSON.stringify(bad)).toBe(false);
    }
    const twice = dumpListSchema.safeParse([{ kind: 'sqlite', path: '/a/x.db' }, { kind: 'sqlite', path: '/b/x.sqlite' }]);
    expect(twice.error?.issues[0]?.message).toBe('dumps 1 and 2 would both be stored as sqlite/x.sql');
  });

  it('restores only dump entries, into a database name or a new SQLite file', () => {
    expect(dumpRestoreSchema.safeParse({ entry: 'pgsql/app.sql', into: 'app_copy' }).success).toBe(true);
    expect(dumpRestoreSchema.safeParse({ entry: 'sqlite/app.sql', into: '/srv/new.db' }).success).toBe(true);
    expect(dumpRestoreSchema.safeParse({ entry: 'etc/passwd', into: 'x' }).success).toBe(false);
    expect(dumpRestoreSchema.safeParse({ entry: 'pgsql/all.sql', into: 'x' }).success).toBe(false);
    expect(dumpRestoreSchema.safeParse({ entry: 'sqlite/app.sql', into: 'relative.db' }).success).toBe(false);
    expect(dumpRestoreSchema.safeParse({ entry: 'mysql/a.sql', into: 'x;drop' }).success).toBe(false);
  });
});
