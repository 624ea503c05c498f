// Connection to Temporal, shared by every composition root that starts or signals workflows.
import { Client, Connection } from '@temporalio/client';
import type { Config } from './config.js';

export interface TemporalHandle {
  connection: Connection;
  client: Client;
  close(): Promise<void>;
}

export async function connectTemporal(cfg: Pick<Config, 'temporal'>): Promise<TemporalHandle> {
  const connection = await Connection.connect({ address: cfg.temporal.address, connectTimeout: '10s' });
  const client = new Client({ connection, namespace: cfg.temporal.namespace });
  return { connection, client, close: () => connection.close() };
}

/** Link to a workflow in the Temporal Web UI. */
export function temporalWorkflowUrl(cfg: Pick<Config, 'temporal'>, workflowId: string): string {
  return `${cfg.temporal.uiUrl}/namespaces/${encodeURIComponent(cfg.temporal.namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}
