// Task queues. Workflows and the activities that talk to clients run on the main queue (its
// name is configuration, BORGCUBE_TASK_QUEUE; workflows send their own activities to the queue
// they run on); the activities that touch a repository's files run on its storage host's queue
// (DESIGN.md §2).
export const storageTaskQueue = (storageHost: string) => `storage-${storageHost}`;
