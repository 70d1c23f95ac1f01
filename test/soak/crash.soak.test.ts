import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OPERATIONS, runCrashWorkload } from '../helpers/crash-harness.js';
import { rng } from '../helpers/recording-device.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-soak-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('crash consistency soak', () => {
  it('1,000 seeded random workloads (SNAPPLANE_SOAK_SEEDS to change)', async () => {
    const count = Number(process.env.SNAPPLANE_SOAK_SEEDS ?? 1000);
    const first = Number(process.env.SNAPPLANE_SOAK_FIRST_SEED ?? 1000);
    let images = 0;
    for (let seed = first; seed < first + count; seed++) {
      const random = rng(seed * 7919);
      const length = 4 + Math.floor(random() * 9);
      const ops = Array.from({ length }, () => OPERATIONS[Math.floor(random() * OPERATIONS.length)]);
      images += await runCrashWorkload({ dir, ops, seed, pointsPerEpoch: 3, subsets: 3 });
    }
    expect(images).toBeGreaterThan(count * 10);
  });
});
