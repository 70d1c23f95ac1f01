import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OPERATIONS, runCrashWorkload, type Operation } from '../../helpers/crash-harness.js';
import { rng } from '../../helpers/recording-device.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-crash-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function allWorkloads(maxLength: number): Operation[][] {
  const out: Operation[][] = [];
  let level: Operation[][] = [[]];
  for (let n = 1; n <= maxLength; n++) {
    level = level.flatMap((w) => OPERATIONS.map((op) => [...w, op]));
    out.push(...level);
  }
  return out;
}

describe('crash consistency', () => {
  it('every workload of up to 3 operations, crashed at every flush boundary of every CP', async () => {
    const workloads = allWorkloads(3);
    expect(workloads.length).toBe(8 + 64 + 512);
    let images = 0;
    for (let i = 0; i < workloads.length; i++) {
      images += await runCrashWorkload({ dir, ops: workloads[i], seed: i, pointsPerEpoch: 0, subsets: 0 });
    }
    expect(images).toBeGreaterThan(workloads.length * 3);
  }, 600_000);

  it('50 seeded random workloads, crashed inside epochs with random subsets of unsynced writes and torn blocks', async () => {
    const count = Number(process.env.SNAPPLANE_CRASH_SEEDS ?? 50);
    let images = 0;
    for (let seed = 1; seed <= count; seed++) {
      const random = rng(seed * 7919);
      const length = 4 + Math.floor(random() * 5);
      const ops = Array.from({ length }, () => OPERATIONS[Math.floor(random() * OPERATIONS.length)]);
      images += await runCrashWorkload({ dir, ops, seed, pointsPerEpoch: 2, subsets: 2 });
    }
    expect(images).toBeGreaterThan(count * 10);
  }, 600_000);
});
