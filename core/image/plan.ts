/**
 * Level planning (the seed's "Examples of Incremental Images"): given a volume's snapshots and a policy of level
 * cadences, which snapshots are backup points, each point's level-N image expression and exact size from the
 * real planes, and the chain of images that restores any date.
 */
import { SnapplaneError } from '../common/errors.js';
import { BLOCK_SIZE } from '../common/units.js';
import { SnapshotFlag, type SnapshotEntry } from '../fs/format.js';
import type { BlockMap } from '../fs/block-map.js';
import { parseInterval } from '../common/units.js';
import { bindNames, evaluateBound } from './evaluate.js';
import { formatImageExpr, needsQuotes, parseImageExpr } from './expression.js';
import type { BackupPlan, BackupPoint, LevelPolicy } from '../api/types.js';

/** Parses a policy: inline `0=7d,1=1d,2=6h` or the JSON `{"levels":[{"level":0,"every":"7d"},...]}`. */
export function parseLevelPolicy(text: string): LevelPolicy {
  const trimmed = text.trim();
  let levels: { level: number; every: string }[];
  if (trimmed.startsWith('{')) {
    let doc: unknown;
    try {
      doc = JSON.parse(trimmed);
    } catch (e) {
      throw new SnapplaneError('INVALID', `backup policy is not valid JSON: ${(e as Error).message}`);
    }
    const l = (doc as { levels?: unknown }).levels;
    if (!Array.isArray(l)) throw new SnapplaneError('INVALID', 'backup policy JSON needs a "levels" array of {"level": n, "every": "7d"}');
    levels = l.map((x: { level?: unknown; every?: unknown }) => ({ level: Number(x.level), every: String(x.every) }));
  } else {
    levels = trimmed.split(',').map((part) => {
      const m = /^\s*(\d+)\s*=\s*(\S+)\s*$/.exec(part);
      if (!m) throw new SnapplaneError('INVALID', `bad policy part '${part}': use level=interval, e.g. 0=7d,1=1d,2=6h`);
      return { level: Number(m[1]), every: m[2] };
    });
  }
  levels.sort((a, b) => a.level - b.level);
  levels.forEach((l, i) => {
    if (l.level !== i) throw new SnapplaneError('INVALID', `policy levels must be 0, 1, 2, ... without gaps (found level ${l.level})`);
  });
  if (levels.length === 0 || levels.length > 10) throw new SnapplaneError('INVALID', 'a backup policy has 1 to 10 levels');
  const out = levels.map((l) => ({ level: l.level, every: l.every, everyMs: parseInterval(l.every) }));
  for (let i = 1; i < out.length; i++) {
    if (out[i].everyMs > out[i - 1].everyMs) throw new SnapplaneError('INVALID', `level ${i} (every ${out[i].every}) must not be rarer than level ${i - 1} (every ${out[i - 1].every})`);
  }
  return { levels: out };
}

/**
 * Assigns levels to snapshots, oldest first: a snapshot is a level-L point when at least level L's interval has
 * passed since the last point of level ≤ L (the first snapshot is level 0). Snapshots that are no point are
 * carried by the next point's image, so every snapshot survives in the backups.
 */
export function assignLevels(entries: SnapshotEntry[], policy: LevelPolicy): { entry: SnapshotEntry; level: number | null }[] {
  const last: (number | null)[] = policy.levels.map(() => null);
  return entries.map((entry) => {
    let level: number | null = null;
    for (const l of policy.levels) {
      const since = last.slice(0, l.level + 1).reduce<number | null>((m, t) => (t === null ? m : m === null ? t : Math.max(m, t)), null);
      if (l.level === 0 ? last[0] === null || entry.createdAtMs - last[0] >= l.everyMs : since !== null && entry.createdAtMs - since >= l.everyMs) {
        level = l.level;
        break;
      }
    }
    if (level !== null) last[level] = entry.createdAtMs;
    return { entry, level };
  });
}

/** Plans the backups of a volume's real snapshots under `policy`, with exact sizes; `at` picks a restore date. */
export async function planBackups(map: BlockMap, all: SnapshotEntry[], policy: LevelPolicy, volume: string, at?: number): Promise<BackupPlan> {
  const entries = all.filter((e) => !(e.flags & (SnapshotFlag.shadow | SnapshotFlag.stale))).sort((a, b) => a.generation - b.generation);
  const assigned = assignLevels(entries, policy);
  const points: BackupPoint[] = [];
  // The top of the newest point of each level so far, and the snapshots not yet in any image (unplanned).
  const lastTop: (SnapshotEntry | null)[] = policy.levels.map(() => null);
  let carried: SnapshotEntry[] = [];
  for (const { entry, level } of assigned) {
    carried.push(entry);
    if (level === null) continue;
    // The base is the newest point of any lower level; the sum is every snapshot taken after it.
    let base: SnapshotEntry | null = null;
    for (let l = 0; l < level; l++) if (lastTop[l] && (!base || lastTop[l]!.generation > base.generation)) base = lastTop[l];
    const tops = level === 0 ? entries.filter((e) => e.generation <= entry.generation) : entries.filter((e) => e.generation > base!.generation && e.generation <= entry.generation);
    const text = [...tops].reverse().map((e) => quote(e.name)).join(' + ') + (level > 0 && base ? ` - ${quote(base.name)}` : '');
    const expr = parseImageExpr(text);
    const image = await evaluateBound(expr, bindNames(expr, text, all, volume), map);
    // The two reserved fsinfo blocks (VBNs 0 and 1) never travel as blocks (send.ts drops them likewise).
    const blocks = image.blocks - (image.plane.has(0) ? 1 : 0) - (image.plane.has(1) ? 1 : 0);
    image.plane.release();
    points.push({
      snapshot: entry.name,
      at: new Date(entry.createdAtMs).toISOString(),
      level,
      expression: formatImageExpr(expr),
      base: level > 0 && base ? base.name : null,
      snapshots: tops.map((e) => e.name),
      blocks,
      bytes: blocks * BLOCK_SIZE,
    });
    lastTop[level] = entry;
    for (let l = level + 1; l < lastTop.length; l++) lastTop[l] = null;
    carried = [];
  }
  const plan: BackupPlan = { volume, policy, points, unplanned: carried.map((e) => e.name), totals: policy.levels.map((l) => ({ level: l.level, points: 0, bytes: 0 })) };
  for (const p of points) {
    plan.totals[p.level].points++;
    plan.totals[p.level].bytes += p.bytes;
  }
  if (at !== undefined) plan.restore = restoreChain(points, at);
  return plan;
}

/** The chain that restores the newest backup point at or before `at`: its level 0, then one point per level. */
export function restoreChain(points: BackupPoint[], at: number): { at: string; snapshot: string | null; chain: string[]; bytes: number } {
  const usable = points.filter((p) => Date.parse(p.at) <= at);
  if (usable.length === 0) return { at: new Date(at).toISOString(), snapshot: null, chain: [], bytes: 0 };
  const target = usable[usable.length - 1];
  const chain: BackupPoint[] = [target];
  let cur = target;
  while (cur.base !== null) {
    const base = cur.base;
    const prev = usable.filter((p) => p.snapshot === base).at(-1);
    if (!prev) break;
    chain.unshift(prev);
    cur = prev;
  }
  return { at: new Date(at).toISOString(), snapshot: target.snapshot, chain: chain.map((p) => `${p.snapshot}.level${p.level}`), bytes: chain.reduce((s, p) => s + p.bytes, 0) };
}

function quote(name: string): string {
  return needsQuotes(name) ? `'${name}'` : name;
}
