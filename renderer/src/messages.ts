/**
 * Engine messages as the console says them. The engine's advice names CLI commands (scripts and logs read it too);
 * where the console has a button that does the same, the message names the button instead.
 */
import { errorText } from './client/client.js';

const BUTTONS: [RegExp, string][] = [
  [/release it first \(snapplane snap release\)/, 'release it first (the “release” button in its row)'],
  [/`snapplane snap release` it first/, 'release it first (the “release” button in its row)'],
  [/`snapplane master release \S+ <destination>`/, '“release” next to it under Relationships → Master snapshots'],
  [/`snapplane mirror delete (\S+)`/, 'delete relationship $1 under Relationships'],
];

/** An error's text for the screen, with CLI advice replaced by the console's own buttons. */
export function consoleErrorText(e: unknown): string {
  let text = errorText(e);
  for (const [cli, here] of BUTTONS) text = text.replace(cli, here);
  return text;
}
