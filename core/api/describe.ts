/**
 * Reports in words, the same for every front end (the CLI prints them, the console shows them). Pure: sizes are
 * printed by the caller's `bytes`, so the renderer needs nothing of the engine's.
 */
import type { MirrorSetReport, MirrorSetting, MirrorUpdateReport, ReplicateReport, TransferProgress } from './types.js';

/** What one `mirror update` (or resync) did: a line, and one warning per downstream destination that lost its base. */
export function describeMirrorUpdate(r: MirrorUpdateReport, bytes: (n: number) => string): { line: string; warnings: string[] } {
  if (r.transfer === 'none') return { line: `${r.name}: already at ${r.to}`, warnings: [] };
  const resumed = r.resumedFromVbn !== null ? `, resumed at VBN ${r.resumedFromVbn}` : '';
  const chosen = `(blocks chosen by ${r.selection === 'marks' ? 'the mark-on-allocate image' : 'subtraction'})`;
  // A report that finished an interrupted update first: its kind, base and resume are that update's, `to` the last.
  const upTo = r.finished ?? r.to;
  const first = r.replaced
    ? `replaced the old mirror${r.replaced.length ? ` (snapshots ${r.replaced.join(', ')})` : ''} with a full image of ${upTo}`
    : r.transfer === 'full'
      ? r.finished
        ? `finished its initialization with a full image of ${upTo}`
        : `initialized with a full image of ${upTo}`
      : r.finished
        ? `finished the interrupted update ${r.from} → ${upTo}`
        : `sent ${r.from} → ${upTo} ${chosen}`;
  const how = r.finished ? `${first}${resumed}, then sent ${r.finished} → ${r.to} ${chosen}` : first;
  const parts = [
    `${r.name}: ${how}: ${r.blocks} blocks, ${bytes(r.bytes)} in ${r.seconds.toFixed(1)} s`,
    r.finished ? '' : resumed,
    r.carried?.length ? `; with ${r.carried.length === 1 ? 'snapshot' : 'snapshots'} ${r.carried.join(', ')}` : '',
    r.dropped?.length ? `; the mirror deleted ${r.dropped.join(', ')} (deleted on the source)` : '',
    r.deltaBlocks !== undefined ? `; the sparse incremental structure holds ${r.deltaBlocks} blocks (${bytes(r.deltaBytes ?? 0)} on disk)` : '',
  ];
  const warnings = (r.downstream ?? [])
    .filter((d) => !d.kept && d.base !== null)
    .map((d) => `${r.name}: the copy lacks ${d.base}, the base of ${d.destination} (which the mirror replicates to): it needs a full copy into a new, empty volume`);
  return { line: parts.join(''), warnings };
}

/** What a mirror update would send (a `mirror update --dry-run` report), in one line. */
export function describeMirrorUpdatePreview(r: MirrorUpdateReport, bytes: (n: number) => string): string {
  const size = `${r.blocks} blocks, ${bytes(r.bytes)}`;
  if (r.kind === 'replica') {
    if (r.transfer === 'none') return `${r.name}: up to date: the replica already has the newest master '${r.to}'; nothing was sent`;
    return `${r.name}: would replicate ${r.transfer === 'full' ? `a full copy of ${r.to}` : `${r.from} → ${r.to}`}: ${size}${r.resumedFromVbn !== null ? `, resuming at VBN ${r.resumedFromVbn}` : ''}; nothing was sent`;
  }
  const what = r.transfer === 'full' ? `initialize the mirror with a full image of the source (as snapshot ${r.to})` : `send ${r.from} → ${r.to} (a new snapshot of the source)`;
  const first = r.finished ? `, after finishing the interrupted update to ${r.finished}` : '';
  const along = r.carried?.length ? `; with ${r.carried.length === 1 ? 'snapshot' : 'snapshots'} ${r.carried.join(', ')}` : '';
  const drops = r.dropped?.length ? `; the mirror would delete ${r.dropped.join(', ')} (deleted on the source) unless held there or needed by its own destinations` : '';
  return `${r.name}: would ${what}${first}: about ${size} as the source stands${along}${drops}; nothing was sent`;
}

/** What a replication would send (a `replicate --dry-run` report), in one line. */
export function describeReplicatePreview(r: ReplicateReport, bytes: (n: number) => string): string {
  if (r.kind === 'none') return `${r.destination} is up to date: ${r.reason}`;
  const what = r.kind === 'full' ? `a full copy of ${r.to} (${r.reason})` : `${r.from} → ${r.to}`;
  const resumed = r.resumedFromVbn !== null ? `, resuming an interrupted receive at VBN ${r.resumedFromVbn}` : '';
  const offline = r.offline ? `; the destination would be off-line meanwhile (${r.offline})` : '';
  const drops = r.dropped?.length ? `; the destination would delete ${r.dropped.join(', ')} (no longer ${r.dropped.length === 1 ? 'a master' : 'masters'} on the source) unless held there or needed by its own destinations` : '';
  return `would replicate ${what} to ${r.destination}: ${r.blocks} blocks, ${bytes(r.bytes)} (a stream of ${bytes(r.streamBytes ?? 0)})${resumed}${offline}${drops}; nothing was sent`;
}

/**
 * What `mirror set` changed, each setting before → after ("nightly: schedule every 1d → every 15m; limit none →
 * 50.0 MiB/s"), with when the next update is due once the schedule changed; or that nothing did. `date` writes a
 * time for the reader (the CLI keeps ISO text, which scripts parse).
 */
export function describeMirrorSet(r: MirrorSetReport, bytes: (n: number) => string, date: (iso: string) => string = (iso) => iso): string {
  const m = r.mirror;
  const value = (setting: MirrorSetting, v: string | number | null): string => {
    if (setting === 'schedule') return v === null ? 'on demand' : String(v);
    if (setting === 'limit') return typeof v === 'number' ? `${bytes(v)}/s` : 'none';
    return v === null ? 'none' : String(v);
  };
  const key = r.keyCheck ? `; ${r.keyCheck.message}` : '';
  if (r.changed.length === 0) return `${m.name}: nothing changed (schedule ${value('schedule', m.every)}, limit ${value('limit', m.limit)}${m.keyFile ? `, key file ${m.keyFile}` : ''})${key}`;
  const parts = r.changed.map((c) => `${c.setting === 'keyFile' ? 'key file' : c.setting} ${value(c.setting, c.from)} → ${value(c.setting, c.to)}`);
  const due = m.nextAt && Date.parse(m.nextAt) <= Date.now() ? 'now' : m.nextAt ? date(m.nextAt) : '';
  const next = r.changed.some((c) => c.setting === 'schedule') && due ? ` (next update due ${due})` : '';
  return `${m.name}: ${parts.join('; ')}${next}${key}`;
}

/** How far a running transfer got, in whole percent (null while its total is not known). */
export function transferPercent(p: TransferProgress): number | null {
  return p.total > 0 ? Math.floor((p.done / p.total) * 100) : null;
}

/** A running transfer's progress in words: "1.20 GiB of 4.01 GiB (30%)" (the base image's, for an incremental mirror's first copy). */
export function describeTransferProgress(p: TransferProgress, bytes: (n: number) => string): string {
  const pct = transferPercent(p) !== null ? ` (${transferPercent(p)}%)` : '';
  const amount = p.unit === 'bytes' ? `${bytes(p.done)} of ${bytes(p.total)}` : `${p.done} of ${p.total} ${p.unit}`;
  return `${amount}${pct}${p.phase === 'base' ? ' of the base image' : ''}`;
}
