/** Start-up: pick the transport (Electron's bridge when present, else the web host's WebSocket) and render. */
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import type { SnapplaneBridge } from '../../core/api/index.js';
import { App } from './App.js';
import { errorText, type Client } from './client/client.js';
import { setClient } from './client/current.js';
import { IpcClient } from './client/ipc-client.js';
import { WsClient, webSocketUrl } from './client/ws-client.js';
import { connectEvents } from './stores/events.js';
import './styles.css';

declare global {
  interface Window {
    snapplane?: SnapplaneBridge;
  }
}

const root = createRoot(document.getElementById('root')!);
try {
  const client: Client = window.snapplane ? new IpcClient(window.snapplane) : new WsClient(webSocketUrl(window.location, window.sessionStorage));
  // The token has done its work: keep it out of the address bar (and of screenshots and history).
  if (window.location.hash) history.replaceState(null, '', window.location.pathname);
  setClient(client);
  connectEvents(client);
  root.render(
    <StrictMode>
      <App />
    </StrictMode>,
  );
} catch (e) {
  root.render(<p className="fatal">{errorText(e)}</p>);
}
