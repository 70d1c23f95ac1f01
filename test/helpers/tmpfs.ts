/** Small tmpfs mounts for tests of a full host file system (root only, where the container allows mounts). */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Whether this process may mount a tmpfs (root in a container that allows it). */
export function canMountTmpfs(): boolean {
  const probe = mkdtempSync(join(tmpdir(), 'snapplane-mount-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe], { stdio: 'ignore' });
    execFileSync('umount', [probe], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

/** Mounts made by this test file, newest last. */
const mounted: string[] = [];

/** Mounts a tmpfs of `mib` MiB on the folder `at` (made if missing); returns `at`. */
export function mountTmpfs(at: string, mib: number): string {
  mkdirSync(at, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${mib}m`, 'tmpfs', at]);
  mounted.push(at);
  return at;
}

/** Unmounts every tmpfs this test file mounted (call it in afterAll, before the folders go). */
export function unmountTmpfs(): void {
  while (mounted.length > 0) execFileSync('umount', [mounted.pop()!]);
}
