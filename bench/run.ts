/**
 * `npm run bench [-- <name> ...] [--quick]`: runs benchmarks, prints a table and appends it to bench/RESULTS.md.
 * Every figure is a ratio against a baseline measured in the same run on the same machine.
 */
import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { snapshotCreate, writeRead, residentMemory } from './engine.js';
import { raid } from './raid.js';
import { space } from './space.js';
import { streams } from './streams.js';
import { image } from './image.js';
import { replication } from './replication.js';
import { consoleBench } from './console.js';
import { machine, row, startShell, stopShell, type Result } from './lib/measure.js';

const suites: Record<string, (quick: boolean) => Promise<Result[]>> = {
  snapshot: snapshotCreate,
  io: writeRead,
  rss: residentMemory,
  raid,
  space,
  streams,
  image,
  replication,
  console: consoleBench,
};

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const chosen = args.filter((a) => !a.startsWith('--'));
const names = chosen.length ? chosen : Object.keys(suites);
for (const n of names) if (!suites[n]) throw new Error(`unknown benchmark '${n}' (have: ${Object.keys(suites).join(', ')})`);

// Before anything is measured: the bench forks no more once it runs (measure.ts, startShell).
startShell();
const results: Result[] = [];
for (const n of names) {
  process.stderr.write(`running ${n}${quick ? ' (quick)' : ''} ...\n`);
  const r = await suites[n](quick);
  for (const x of r) process.stderr.write(`  ${row(x)}\n`);
  results.push(...r);
}
const header = `\n## ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC — ${machine()}${quick ? ' — quick sizes' : ''}\n\n| benchmark | figures | ratio | target | | notes |\n|---|---|---|---|---|---|\n`;
const table = header + results.map(row).join('\n') + '\n';
stopShell();
process.stdout.write(table);
await appendFile(join(process.cwd(), 'bench', 'RESULTS.md'), table);
