/**
 * Replication state kept beside a volume, so it travels with the volume and any process opening it sees it:
 * the mirror marker of a destination, the destinations a source knows (for master holds), and the off-line flag
 * of a destination being updated from a shadow master.
 */
import { readJsonFile, removeFile, writeFileAtomic } from '../common/atomic-file.js';
import { sidecarPath } from '../fs/sidecar.js';
import { withFileLock } from '../fs/lock.js';
import type { KnownDestination, MirrorMarker, SnapshotRef } from '../api/types.js';

/** The mirror marker of a destination volume, or null. */
export async function readMarker(volume: string): Promise<MirrorMarker | null> {
  return readJsonFile<MirrorMarker>(await sidecarPath(volume, 'mirror.json'));
}

/** Sets (or with null removes) the mirror marker. */
export async function writeMarker(volume: string, marker: MirrorMarker | null): Promise<void> {
  const path = await sidecarPath(volume, 'mirror.json');
  if (marker) await writeFileAtomic(path, JSON.stringify(marker, null, 2));
  else await removeFile(path);
}

/** Why a relationship's update stops at a mirror its own host took over. */
export function takenOverMessage(volume: string, marker: MirrorMarker): string {
  return `'${volume}' was taken over on its host at ${marker.brokenAt} (\`mirror break\` there): it is no longer the mirror of '${marker.source}', so relationship '${marker.relationship}' is broken; \`snapplane mirror resync ${marker.relationship}\` rolls it back to the newest snapshot both sides have and mirrors again (it refuses while the volume holds writes or snapshots of its own; \`--discard\` drops them)`;
}

/** Why the volume is off-line, or null. */
export async function readOffline(volume: string): Promise<string | null> {
  return (await readJsonFile<{ reason: string }>(await sidecarPath(volume, 'offline.json')))?.reason ?? null;
}

/** Takes the volume off-line with a reason, or (null) back on-line. */
export async function writeOffline(volume: string, reason: string | null): Promise<void> {
  const path = await sidecarPath(volume, 'offline.json');
  if (reason) await writeFileAtomic(path, JSON.stringify({ reason, since: new Date().toISOString() }));
  else await removeFile(path);
}

/** The destinations this source volume has replicated to. */
export async function readDestinations(volume: string): Promise<KnownDestination[]> {
  return (await readJsonFile<KnownDestination[]>(await sidecarPath(volume, 'destinations.json'))) ?? [];
}

/** Replaces the destinations this source volume knows. */
export async function writeDestinations(volume: string, list: KnownDestination[]): Promise<void> {
  await changeDestinations(volume, () => list);
}

/**
 * Changes the destinations this source volume knows under `destinations.json.lock`: replications from one source
 * to several destinations run at once (a script's fan-out, the console's jobs), and a change made from a copy read
 * before another's write would drop that destination's record, and with it the holds on the masters it needs.
 * `change` returns the new list, or null to leave the file as it is.
 */
async function changeDestinations(volume: string, change: (list: KnownDestination[]) => KnownDestination[] | null): Promise<boolean> {
  const path = await sidecarPath(volume, 'destinations.json');
  return withFileLock(path, async () => {
    const next = change((await readJsonFile<KnownDestination[]>(path)) ?? []);
    if (next === null) return false;
    await writeFileAtomic(path, JSON.stringify(next, null, 2));
    return true;
  });
}

/**
 * Records that `destination` now holds `master` as its newest master snapshot. With its identity `id`, the record
 * of the same destination reached by another address is replaced too (one destination, one set of holds).
 */
export async function recordDestination(volume: string, destination: string, master: SnapshotRef | null, now: Date, id?: string): Promise<void> {
  await changeDestinations(volume, (known) => {
    const list = known.filter((d) => d.destination !== destination && (id === undefined || d.id !== id));
    list.push(id === undefined ? { destination, master, updatedAt: now.toISOString() } : { destination, id, master, updatedAt: now.toISOString() });
    return list.sort((a, b) => a.destination.localeCompare(b.destination));
  });
}

/** Forgets a destination (its holds go with it). */
export async function forgetDestination(volume: string, destination: string): Promise<boolean> {
  return changeDestinations(volume, (list) => {
    const rest = list.filter((d) => d.destination !== destination);
    return rest.length === list.length ? null : rest;
  });
}

/**
 * Which master snapshots known destinations still need: a destination at master M needs M (the base of its next
 * incremental) and every newer master (it has not moved past them). A destination that holds no master needs none:
 * it gets a full copy. Masters older than every destination's newest are free to go.
 */
export function neededMasters(masters: { name: string; generation: number }[], destinations: KnownDestination[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const m of masters) {
    const by = destinations.filter((d) => d.master !== null && d.master.generation <= m.generation).map((d) => d.destination);
    if (by.length > 0) out.set(m.name, by);
  }
  return out;
}
