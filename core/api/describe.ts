/**
 * Reports in words, the same for every front end (the CLI prints them, the console shows them). Pure: sizes are
 * printed by the caller's `bytes`, so the renderer needs nothing of the engine's.
 */
import type { MirrorUpdateReport } from './types.js';

/** What one `mirror update` (or resync) did: a line, and one warning per downstream destination that lost its base. */
export function describeMirrorUpdate(r: MirrorUpdateReport, bytes: (n: number) => string): { line: string; warnings: string[] } {
  if (r.transfer === 'none') return { line: `${r.name}: already at ${r.to}`, warnings: [] };
  const how = r.replaced
    ? `replaced the old mirror${r.replaced.length ? ` (snapshots ${r.replaced.join(', ')})` : ''} with a full image of ${r.to}`
    : r.transfer === 'full'
      ? `initialized with a full image of ${r.to}`
      : `sent ${r.from} → ${r.to} (blocks chosen by ${r.selection === 'marks' ? 'the mark-on-allocate image' : 'subtraction'})`;
  const parts = [
    `${r.name}: ${how}: ${r.blocks} blocks, ${bytes(r.bytes)} in ${r.seconds.toFixed(1)} s`,
    r.resumedFromVbn !== null ? `, resumed at VBN ${r.resumedFromVbn}` : '',
    r.finished ? `; on the way it finished the interrupted update to ${r.finished}` : '',
    r.carried?.length ? `; with ${r.carried.length === 1 ? 'snapshot' : 'snapshots'} ${r.carried.join(', ')}` : '',
    r.dropped?.length ? `; the mirror deleted ${r.dropped.join(', ')} (deleted on the source)` : '',
    r.deltaBlocks !== undefined ? `; the sparse incremental structure holds ${r.deltaBlocks} blocks (${bytes(r.deltaBytes ?? 0)} on disk)` : '',
  ];
  const warnings = (r.downstream ?? [])
    .filter((d) => !d.kept && d.base !== null)
    .map((d) => `${r.name}: the copy lacks ${d.base}, the base of ${d.destination} (which the mirror replicates to): it needs a full copy into a new, empty volume`);
  return { line: parts.join(''), warnings };
}
