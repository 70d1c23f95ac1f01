/**
 * The demo volume: a real volume with a week of generated history (files changing day by day, a snapshot each
 * evening), so a new user of the CLI or the console sees something real at once.
 */
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SnapplaneService } from './service.js';

const DAY = 86_400_000;

function text(seed: number, lines: number): string {
  const words = ['plane', 'block', 'snapshot', 'mirror', 'stripe', 'parity', 'tape', 'image', 'consistency', 'point'];
  let x = seed;
  const out: string[] = [];
  for (let l = 0; l < lines; l++) {
    const w: string[] = [];
    for (let k = 0; k < 12; k++) {
      x = (x * 1103515245 + 12345) >>> 0;
      w.push(words[x % words.length]);
    }
    out.push(w.join(' '));
  }
  return out.join('\n') + '\n';
}

/** Builds the demo volume at `volume` (a new 256 MiB image) with snapshots June1 … June7. */
export async function buildDemoVolume(volume: string): Promise<void> {
  const start = Date.UTC(2026, 5, 1, 18, 0, 0);
  let clock = start;
  const s = new SnapplaneService({ cpIntervalMs: 0, now: () => clock });
  const work = await mkdtemp(join(tmpdir(), 'snapplane-demo-'));
  try {
    await s.createVolume(volume, 256 * 2 ** 20);
    await s.mkdir(volume, '/home', true);
    for (let day = 1; day <= 7; day++) {
      clock = start + (day - 1) * DAY;
      const today = join(work, `day${day}`);
      await mkdir(join(today, 'reports'), { recursive: true });
      await mkdir(join(today, 'photos'), { recursive: true });
      await writeFile(join(today, 'reports', `june${day}.txt`), text(day, 400));
      await writeFile(join(today, 'photos', `img${day}.raw`), Buffer.alloc(256 * 1024 * day, day));
      await s.put(volume, today, '/home');
      const notes = join(work, `notes${day}.md`);
      await writeFile(notes, `# Notes\n\nDay ${day} of June.\n` + text(day * 7, 20));
      await s.put(volume, notes, '/home/notes.md');
      if (day === 3) await s.rm(volume, '/home/day1/photos', true);
      if (day === 5) await s.mv(volume, '/home/day2', '/archive');
      await s.snapCreate(volume, `June${day}`);
    }
    await s.closeAll();
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Builds the demo volume at `volume` unless it exists; true when it was built now. */
export async function ensureDemoVolume(volume: string): Promise<boolean> {
  const exists = await stat(volume).then(
    () => true,
    () => false,
  );
  if (exists) return false;
  await mkdir(join(volume, '..'), { recursive: true });
  await buildDemoVolume(volume);
  return true;
}
