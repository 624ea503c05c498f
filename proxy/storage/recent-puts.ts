// Objects written through the repository's upstream that no archive in the chunk store references
// yet (DESIGN.md §5): a put of one of them is verified but not written again. Those of the open
// transaction are tracked apart, because borg serve rolls them back if it ends before the next
// commit; from then on they must not count as stored, or a later put of the same id would be
// skipped and an archive would reference a missing object (issue 21 point 10).

export interface StoredSizes {
  size: number;
  csize: number;
}

export class RecentPuts {
  private readonly all = new Map<string, StoredSizes>();
  private readonly uncommitted = new Set<string>();

  get(idHex: string): StoredSizes | undefined {
    return this.all.get(idHex);
  }

  /** An object borg serve accepted in the current transaction. */
  stored(idHex: string, sizes: StoredSizes): void {
    this.all.set(idHex, sizes);
    this.uncommitted.add(idHex);
  }

  /** Now referenced by an archive (the chunk store answers for it), or deleted. */
  delete(idHex: string): void {
    this.all.delete(idHex);
    this.uncommitted.delete(idHex);
  }

  /** Runs borg serve's commit: what was stored before it is committed once it answers. */
  async commit(send: () => Promise<unknown>): Promise<void> {
    const included = [...this.uncommitted];
    try {
      await send();
    } catch (err) {
      // Whether borg serve got to commit is unknown: what it may have dropped is not stored.
      this.rolledBack();
      throw err;
    }
    for (const h of included) this.uncommitted.delete(h);
  }

  /** The transaction is gone (borg serve ended, or a commit failed): so is what it held. */
  rolledBack(): void {
    for (const h of this.uncommitted) this.all.delete(h);
    this.uncommitted.clear();
  }
}
