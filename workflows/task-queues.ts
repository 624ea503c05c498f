// Task queues. Workflows and the activities that talk to clients run on the main queue; the
// activities that touch a repository's files run on its storage host's queue (DESIGN.md §2).
export const mainTaskQueue = 'borgcube';
export const storageTaskQueue = (storageHost: string) => `storage-${storageHost}`;
