/**
 * Full-mirror updates between processes over TCP (`mirror update` children, a `serve` child, a proxy that drops
 * connections) with processes killed at random points, by byte count and by time.
 */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { makeKey } from '../helpers/replication.js';
import { runMirrorDrills } from '../helpers/mirror-drills.js';
import { useTempDir } from '../helpers/temp-dir.js';

const DRILLS = Number(process.env.SNAPPLANE_MDRILLS ?? 30);
const temp = useTempDir('mdrill');

describe('mirror updates under faults', () => {
  it(`${DRILLS} drills, full resyncs among them: the mirror always equals one source state, moves only forward, keeps no stray snapshots, and converges`, async () => {
    process.env.SNAPPLANE_HOME = join(temp(), 'home');
    const outcomes = await runMirrorDrills(temp(), await makeKey(temp()), DRILLS, 2026);
    console.log(`mirror drills: ${JSON.stringify(outcomes)}`);
    expect(outcomes.failed, JSON.stringify(outcomes)).toBeGreaterThan(DRILLS / 5);
    expect(outcomes.ok).toBeGreaterThan(0);
    expect(outcomes.serverKills + outcomes.clientKills + outcomes.timedKills).toBeGreaterThan(0);
    // Some drills were full resyncs (the source lost the common snapshot), and some of those copies replaced the mirror.
    expect(outcomes.fullResyncs).toBeGreaterThan(0);
    expect(outcomes.replaced).toBeGreaterThan(0);
  }, 600_000);
});
