import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeKey } from '../helpers/replication.js';
import { runReplicationDrills } from '../helpers/replication-drills.js';
import { runMirrorDrills } from '../helpers/mirror-drills.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-repl-soak-'));
  process.env.SNAPPLANE_HOME = join(dir, 'home');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('replication fault soak', () => {
  it('1,000 drills (SNAPPLANE_DRILLS to change)', async () => {
    const count = Number(process.env.SNAPPLANE_DRILLS ?? 1000);
    const outcomes = await runReplicationDrills(dir, await makeKey(dir), count, Number(process.env.SNAPPLANE_DRILL_SEED ?? 7));
    console.log(`replication soak: ${JSON.stringify(outcomes)}`);
    expect(outcomes.ok + outcomes.failed).toBe(count);
    expect(outcomes.failed).toBeGreaterThan(0);
  });

  it('500 mirror-update drills (SNAPPLANE_MIRROR_DRILLS to change)', async () => {
    const count = Number(process.env.SNAPPLANE_MIRROR_DRILLS ?? 500);
    const outcomes = await runMirrorDrills(dir, await makeKey(dir, 'mirror-key'), count, Number(process.env.SNAPPLANE_DRILL_SEED ?? 7));
    console.log(`mirror soak: ${JSON.stringify(outcomes)}`);
    expect(outcomes.ok + outcomes.failed).toBe(count);
    expect(outcomes.failed).toBeGreaterThan(0);
  });
});
