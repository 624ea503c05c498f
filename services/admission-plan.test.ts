import { describe, expect, it } from 'vitest';
import { fairOrder, planAdmissions, type HostQueueState, type QueuedBackup } from './admission-plan.js';

const t = (s: number) => new Date(Date.UTC(2026, 0, 1, 2, 0, s));
const job = (id: string, clientId: string, repositoryId: string, at: number): QueuedBackup => ({ id, clientId, repositoryId, createdAt: t(at) });

function state(over: Partial<HostQueueState> & Pick<HostQueueState, 'queued'>): HostQueueState {
  return { hostLimit: 8, repositoryLimit: () => 4, runningPerRepository: new Map(), lastAdmittedAt: new Map(), ...over };
}

describe('fair order of queued backups', () => {
  it('takes clients in turn: a client with many queued jobs does not go ahead of the others', () => {
    // Client "busy" queued five backups first (five policies at 02:00), then a and b one each.
    const queued = [...[1, 2, 3, 4, 5].map((i) => job(`busy${i}`, 'busy', 'r', i)), job('a1', 'a', 'r', 10), job('b1', 'b', 'r', 11)];
    expect(fairOrder(queued, new Map()).map((q) => q.id)).toEqual(['busy1', 'a1', 'b1', 'busy2', 'busy3', 'busy4', 'busy5']);
  });

  it('puts the client admitted least recently first among clients at the same depth', () => {
    const queued = [job('often', 'often', 'r', 1), job('rarely', 'rarely', 'r', 2), job('never', 'never', 'r', 3)];
    const last = new Map<string, Date | null>([
      ['often', t(-60)],
      ['rarely', t(-86_400)],
      ['never', null],
    ]);
    expect(fairOrder(queued, last).map((q) => q.id)).toEqual(['never', 'rarely', 'often']);
  });

  it('is first come, first served between equals, with the id breaking ties of the same instant', () => {
    const queued = [job('y', 'c2', 'r', 5), job('x', 'c1', 'r', 5), job('w', 'c0', 'r', 4)];
    expect(fairOrder(queued, new Map()).map((q) => q.id)).toEqual(['w', 'x', 'y']);
  });
});

describe('admission plan', () => {
  it('admits up to the host limit and numbers the rest from 1', () => {
    const queued = ['a', 'b', 'c', 'd'].map((c, i) => job(c, c, `r${i}`, i));
    const plan = planAdmissions(state({ hostLimit: 3, runningPerRepository: new Map([['rx', 1]]), queued }));
    expect(plan.admit).toEqual(['a', 'b']);
    expect([...plan.positions]).toEqual([
      ['c', 1],
      ['d', 2],
    ]);
  });

  it('holds a repository at its own limit and passes over its jobs to other repositories', () => {
    const queued = [job('full1', 'c1', 'full', 1), job('full2', 'c2', 'full', 2), job('other', 'c3', 'other', 3)];
    const plan = planAdmissions(state({ hostLimit: 8, repositoryLimit: (r) => (r === 'full' ? 2 : 4), runningPerRepository: new Map([['full', 1]]), queued }));
    expect(plan.admit).toEqual(['full1', 'other']);
    expect(plan.positions.get('full2')).toBe(1);
  });

  it('admits nothing while the host is full, whatever the repositories allow', () => {
    const plan = planAdmissions(state({ hostLimit: 2, runningPerRepository: new Map([['r1', 2]]), queued: [job('a', 'a', 'r2', 1)] }));
    expect(plan.admit).toEqual([]);
    expect(plan.positions.get('a')).toBe(1);
  });

  it('admits in fair order when slots are scarce: one job each before a second of any client', () => {
    const queued = [job('busy1', 'busy', 'r', 1), job('busy2', 'busy', 'r', 2), job('a1', 'a', 'r', 3)];
    expect(planAdmissions(state({ hostLimit: 2, queued })).admit).toEqual(['busy1', 'a1']);
  });
});
