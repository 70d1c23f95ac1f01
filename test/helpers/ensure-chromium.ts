/**
 * Vitest global setup: the browser tests need Debian's Chromium. A fresh machine of this project's kind does not
 * have it, so when it is missing and we may install packages (root, apt-get present, no SNAPPLANE_CHROMIUM
 * override) it is installed once here, before any test starts; otherwise the run stops with what to do.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { CHROMIUM } from './browser.js';

export default function setup(): void {
  if (existsSync(CHROMIUM)) return;
  const canInstall = !process.env.SNAPPLANE_CHROMIUM && process.getuid?.() === 0 && existsSync('/usr/bin/apt-get');
  if (!canInstall) throw new Error(`no browser at ${CHROMIUM} for the browser tests: install Debian's Chromium (apt-get install -y chromium) or set SNAPPLANE_CHROMIUM to another Chromium binary`);
  process.stderr.write(`${CHROMIUM} is missing: installing Debian's chromium package for the browser tests (once) ...\n`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: ['ignore', 'ignore', 'inherit'], env });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'chromium'], { stdio: ['ignore', 'ignore', 'inherit'], env });
  if (!existsSync(CHROMIUM)) throw new Error(`apt-get installed chromium but ${CHROMIUM} is still missing`);
}
