import { desc } from 'drizzle-orm';
import type { Db } from '../client.js';
import { auditEventsTable, type AuditEvent } from '../schema.js';

export async function insertAuditEvent(db: Db, row: typeof auditEventsTable.$inferInsert): Promise<AuditEvent> {
  const [r] = await db.insert(auditEventsTable).values(row).returning();
  return r!;
}

export async function listAuditEvents(db: Db, limit = 200): Promise<AuditEvent[]> {
  return db.select().from(auditEventsTable).orderBy(desc(auditEventsTable.time)).limit(limit);
}
