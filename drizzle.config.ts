import { defineConfig } from 'drizzle-kit';

// `npm run db:generate` writes a new migration from db/schema.ts; never edit the output.
export default defineConfig({
  dialect: 'postgresql',
  schema: './db/schema.ts',
  out: './db/migrations',
  dbCredentials: { url: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/borgcube' },
});
