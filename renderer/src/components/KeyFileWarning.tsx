/** The warning `replicate` prints when other users can read a pre-shared key file, under a form's Key file field. */
import { useEffect, useState } from 'react';
import { client } from '../client/current.js';

/** Asked once typing pauses: every keystroke would be a call for a path not yet whole. */
const PAUSE_MS = 300;

export function KeyFileWarning({ keyFile }: { keyFile: string }) {
  const [warning, setWarning] = useState<string | null>(null);
  useEffect(() => {
    setWarning(null);
    const path = keyFile.trim();
    if (!path) return;
    let live = true;
    const timer = setTimeout(() => {
      // A path the host refuses (relative, half typed) is the form's business when it is submitted, not a warning.
      client()
        .call('keyFileWarning', { keyFile: path })
        .then((r) => live && setWarning(r.warning), () => undefined);
    }, PAUSE_MS);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [keyFile]);
  return warning ? (
    <p className="warn" data-testid="key-file-warning">
      Warning: {warning}
    </p>
  ) : null;
}
