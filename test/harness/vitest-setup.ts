// Setup file of every vitest project (vitest.config.ts): the file's cleanup list runs after its
// tests, also when they failed. Registered before the file's own hooks, so it runs after them
// (vitest runs after-hooks in reverse order).
import { afterAll } from 'vitest';
import { runCleanups } from './cleanup.js';

afterAll(runCleanups, 120_000);
