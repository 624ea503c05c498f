// Every workflow the worker hosts (Temporal bundles this file and what it imports).
export { backup } from './backup.js';
