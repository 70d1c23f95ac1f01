/** `snapplane volume create|info`. */
import type { Command } from 'commander';
import { formatBytes, parseSize, type VolumeInfo } from '../../core/service/index.js';
import { printFields, printJson, printTable } from '../output.js';
import { parseInteger, withService } from '../run.js';
import { resolveVolumeRef } from '../../core/service/index.js';

/** Human summary of a volume. */
export function printVolumeInfo(info: VolumeInfo): void {
  const pct = (n: number): string => `${((100 * n) / info.blockCount).toFixed(1)}%`;
  printFields([
    ['volume', info.path + (info.snapshot ? `@${info.snapshot} (a snapshot: the size, active and free below are the whole volume's)` : '')],
    ...snapshotFields(info),
    ['uuid', info.uuid],
    ['device', `${info.device.kind}${info.device.degraded ? ' (DEGRADED)' : ''}`],
    ['size', `${formatBytes(info.sizeBytes)} (${info.blockCount} blocks of ${info.blockSize} B)`],
    ['active', `${formatBytes(info.activeBytes)} (${pct(info.activeBlocks)})`],
    ['snapshots only', `${formatBytes(info.snapshotOnlyBytes)} (${pct(info.snapshotOnlyBlocks)})`],
    ['free', `${formatBytes(info.freeBytes)} (${pct(info.freeBlocks)})`],
    ['snapshots', info.damage ? `UNREADABLE: ${info.damage}` : info.snapshotCount],
    ['inodes', info.inodeCount],
    ['consistency point', `#${info.generation} at ${info.lastCpAt}`],
    ['format', `version ${info.formatVersion}`],
    ...mirrorField(info),
  ]);
  if (info.device.kind === 'raid4') {
    process.stdout.write('\n');
    printTable(
      ['MEMBER', 'ROLE', 'STATE', 'IMAGE'],
      info.device.members.map((m) => [m.index, m.role, m.state, m.path]),
    );
    for (const m of info.device.members) {
      if (!m.failure) continue;
      // A missing member's own image still serves if it is back before anything is written to the group.
      const way = m.state === 'missing' ? 'put its image back before the group is written, or `snapplane raid replace` rebuilds it' : '`snapplane raid replace` rebuilds it';
      process.stdout.write(`member ${m.index} ${m.state}: ${m.failure}; ${way}\n`);
    }
  }
}

/** At `vol@snap`: the snapshot's own figures, before the volume's. */
function snapshotFields(info: VolumeInfo): [string, string][] {
  const f = info.snapshotFigures;
  if (!f) return [];
  return [
    ['snapshot taken', f.createdAt],
    ['snapshot holds', `${formatBytes(f.bytes)} (${f.blocks} blocks); only it: ${formatBytes(f.uniqueBytes)} (what deleting it frees)`],
  ];
}

function mirrorField(info: VolumeInfo): [string, string][] {
  const m = info.mirrorOf;
  const r = info.replacement;
  const copy: [string, string][] = r
    ? [['full resync', `a whole copy for relationship ${r.relationship} ${r.swapAsked ? 'has landed beside it and takes its place at the next request' : `is being received beside it since ${r.started}; this volume stays as it is until the copy lands`}`]]
    : [];
  if (!m) return copy;
  if (m.brokenAt) return [['mirror', `taken over at ${m.brokenAt} (was the mirror of ${m.source}, relationship ${m.relationship})`], ...copy];
  return [['mirror', `of ${m.source} (relationship ${m.relationship}) since ${m.since}; read-only until \`mirror break\``], ...copy];
}

export function registerVolume(program: Command): void {
  const volume = program.command('volume').description('create and describe volumes');
  volume
    .command('create <vol>')
    .description('create a volume on a new sparse image file, or with --raid on a new RAID-4 group folder')
    .requiredOption('--size <size>', 'image size (or size of each member with --raid), e.g. 64M, 10G, 1T')
    .option('--raid <N>', 'a RAID-4 group of N data members plus one parity member')
    .option('--json', 'print a JSON report')
    .action((vol: string, opts: { size: string; raid?: string; json?: boolean }) =>
      withService(async (s) => {
        const size = parseSize(opts.size);
        const raid = opts.raid === undefined ? undefined : parseInteger(opts.raid, '--raid');
        const info = await s.createVolume(vol, size, { raid });
        if (opts.json) printJson(info);
        else process.stdout.write(`created ${info.device.kind === 'raid4' ? `RAID-4 volume (${raid}+1 members)` : 'volume'} ${vol}: ${formatBytes(info.sizeBytes)}, ${info.blockCount} blocks\n`);
      }),
    );
  volume
    .command('info <vol>')
    .description('capacity split, consistency point, snapshots and device health (vol@snap for a snapshot)')
    .option('--json', 'print a JSON report')
    .action((vol: string, opts: { json?: boolean }) =>
      withService(async (s) => {
        const info = await s.volumeInfo(await resolveVolumeRef(vol));
        if (opts.json) printJson(info);
        else printVolumeInfo(info);
      }),
    );
}
