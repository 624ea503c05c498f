// Every workflow the worker hosts (Temporal bundles this file and what it imports).
export { backup } from './backup.js';
export { orphanCleanup } from './orphan-cleanup.js';
export { prune } from './prune.js';
export { restore } from './restore.js';
export { check } from './check.js';
export { scheduledBackup, scheduledMaintenance } from './scheduled.js';
export { alertsSweep } from './alerts-sweep.js';
export { deliverAlert } from './alert-delivery.js';
