/** Debian's Chromium, headless, driven by playwright-core (one launch per test file or benchmark). */
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = process.env.SNAPPLANE_CHROMIUM ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}
